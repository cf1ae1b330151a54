package codec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the default cap on one JSON line. Real Stratum lines are
// a few hundred bytes (a notify with many branches ~2 KB); anything longer is a
// broken or hostile peer, and the cap keeps its buffer from growing forever.
const DefaultMaxLine = 16 * 1024

// ErrLineTooLong is returned when a line exceeds the configured cap.
var ErrLineTooLong = errors.New("codec: line exceeds the length cap")

// Chunk is one unit of a stream: a JSON line (without its LF and any CR) or,
// on streams that carry ex-messages, a frame. Both alias the splitter's memory.
type Chunk struct {
	Line    []byte
	Frame   Frame
	IsFrame bool
}

// next extracts one chunk from the front of b. It returns n == 0 when b does
// not yet hold a whole chunk. frames selects the pool-link demultiplexing rule:
// a first byte of 0x7F starts an ex-message, anything else a JSON line.
func next(b []byte, maxLine int, frames bool) (Chunk, int, error) {
	if len(b) == 0 {
		return Chunk{}, 0, nil
	}
	if frames && b[0] == Magic {
		f, n, err := DecodeFrame(b)
		if err == ErrIncomplete {
			return Chunk{}, 0, nil
		}
		if err != nil {
			return Chunk{}, 0, err
		}
		return Chunk{Frame: f, IsFrame: true}, n, nil
	}
	lim := len(b)
	if lim > maxLine+1 {
		lim = maxLine + 1
	}
	i := bytes.IndexByte(b[:lim], '\n')
	if i < 0 {
		if len(b) > maxLine {
			return Chunk{}, 0, fmt.Errorf("%w (%d bytes)", ErrLineTooLong, maxLine)
		}
		return Chunk{}, 0, nil
	}
	line := b[:i]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return Chunk{Line: line}, i + 1, nil
}

// Splitter is the push-model framer for event-driven connections: feed it
// whatever the socket produced and it calls emit for each complete chunk.
// It keeps only the unfinished tail between calls, so an idle connection
// holds no buffer at all.
type Splitter struct {
	MaxLine int  // 0 means DefaultMaxLine
	Frames  bool // demultiplex 0x7F ex-messages (pool link) as well as lines
	pending []byte
}

// Feed consumes data. Chunks passed to emit are valid only during the call.
// An error from emit stops the feed and is returned; so is a framing error,
// after which the stream cannot be trusted and should be closed.
func (s *Splitter) Feed(data []byte, emit func(Chunk) error) error {
	max := s.MaxLine
	if max <= 0 {
		max = DefaultMaxLine
	}
	b := data
	if len(s.pending) > 0 {
		s.pending = append(s.pending, data...)
		b = s.pending
	}
	for {
		c, n, err := next(b, max, s.Frames)
		if err != nil {
			s.pending = nil
			return err
		}
		if n == 0 {
			break
		}
		if err := emit(c); err != nil {
			s.keep(b[n:])
			return err
		}
		b = b[n:]
	}
	s.keep(b)
	return nil
}

func (s *Splitter) keep(rest []byte) {
	if len(rest) == 0 {
		// Drop the buffer entirely: thousands of idle miners should cost nothing.
		s.pending = nil
		return
	}
	if cap(s.pending) >= len(rest) {
		// append copies with memmove semantics, so rest may alias pending.
		s.pending = append(s.pending[:0], rest...)
		return
	}
	p := make([]byte, len(rest), max(len(rest), 256))
	copy(p, rest)
	s.pending = p
}

// Pending reports how many unfinished bytes are buffered.
func (s *Splitter) Pending() int { return len(s.pending) }

// Reader is the pull-model framer for blocking connections (pool links,
// simulators). Its buffer starts small and grows only as far as the largest
// chunk seen (at most one full ex-message or one capped line).
type Reader struct {
	r       io.Reader
	maxLine int
	frames  bool
	buf     []byte
	start   int
	end     int
}

// NewReader returns a Reader; frames turns on ex-message demultiplexing.
func NewReader(r io.Reader, maxLine int, frames bool) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{r: r, maxLine: maxLine, frames: frames, buf: make([]byte, 2048)}
}

// Next returns the next chunk; it is valid until the following call.
func (r *Reader) Next() (Chunk, error) {
	for {
		c, n, err := next(r.buf[r.start:r.end], r.maxLine, r.frames)
		if err != nil {
			return Chunk{}, err
		}
		if n > 0 {
			r.start += n
			return c, nil
		}
		if r.start > 0 {
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		if r.end == len(r.buf) {
			limit := max(r.maxLine+1, MaxFrameLen)
			if len(r.buf) >= limit {
				return Chunk{}, fmt.Errorf("%w (%d bytes)", ErrLineTooLong, r.maxLine)
			}
			nb := make([]byte, min(2*len(r.buf), limit))
			copy(nb, r.buf[:r.end])
			r.buf = nb
		}
		m, err := r.r.Read(r.buf[r.end:])
		r.end += m
		if m > 0 {
			continue
		}
		if err != nil {
			if err == io.EOF && r.end > 0 {
				return Chunk{}, io.ErrUnexpectedEOF
			}
			return Chunk{}, err
		}
	}
}

// SetSource switches the underlying reader while keeping whatever is
// already buffered (for example after a handshake, to add read deadlines).
func (r *Reader) SetSource(src io.Reader) { r.r = src }
