package codec

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func collect(t *testing.T, s *Splitter, parts ...[]byte) ([]string, error) {
	t.Helper()
	var out []string
	for _, p := range parts {
		err := s.Feed(p, func(c Chunk) error {
			if c.IsFrame {
				out = append(out, "F"+CmdName(c.Frame.Cmd))
			} else {
				out = append(out, "L"+string(c.Line))
			}
			return nil
		})
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func TestSplitterDemuxesLinesAndFrames(t *testing.T) {
	stream := []byte("{\"a\":1}\n")
	stream = AppendSetDiff(stream, 14, []uint16{1, 2})
	stream = append(stream, "{\"b\":2}\r\n"...)
	stream = AppendSubmitResponse(stream, 1, StatusAccept)
	want := []string{`L{"a":1}`, "FMINING_SET_DIFF", `L{"b":2}`, "FSUBMIT_RESPONSE"}
	// Every split point, including mid-header and mid-line, gives the same result.
	for cut := 0; cut <= len(stream); cut++ {
		s := &Splitter{Frames: true}
		got, err := collect(t, s, stream[:cut], stream[cut:])
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("cut %d: %v %v", cut, got, err)
		}
		if s.Pending() != 0 {
			t.Fatalf("cut %d: %d bytes left", cut, s.Pending())
		}
	}
	// Byte by byte.
	s := &Splitter{Frames: true}
	var parts [][]byte
	for i := range stream {
		parts = append(parts, stream[i:i+1])
	}
	got, err := collect(t, s, parts...)
	if err != nil || len(got) != 4 {
		t.Fatalf("byte by byte: %v %v", got, err)
	}
}

func TestSplitterLineCap(t *testing.T) {
	s := &Splitter{MaxLine: 64}
	_, err := collect(t, s, bytes.Repeat([]byte("x"), 40), bytes.Repeat([]byte("y"), 40))
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want ErrLineTooLong, got %v", err)
	}
	// Exactly at the cap is fine.
	s = &Splitter{MaxLine: 64}
	got, err := collect(t, s, append(bytes.Repeat([]byte("z"), 64), '\n'))
	if err != nil || len(got) != 1 {
		t.Fatalf("64-byte line: %v %v", got, err)
	}
	// Without frame mode a 0x7F byte is just part of a line.
	s = &Splitter{}
	got, _ = collect(t, s, []byte("\x7fabc\n"))
	if len(got) != 1 || got[0] != "L\x7fabc" {
		t.Fatalf("0x7f in line mode: %q", got)
	}
}

func TestSplitterBadFrame(t *testing.T) {
	s := &Splitter{Frames: true}
	_, err := collect(t, s, []byte{0x7f, 0x05, 0x02, 0x00, 1, 2, 3})
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Cmd != CmdMiningSetDiff {
		t.Fatalf("want frame error, got %v", err)
	}
}

type trickle struct {
	b []byte
	n int
}

func (t *trickle) Read(p []byte) (int, error) {
	if len(t.b) == 0 {
		return 0, io.EOF
	}
	n := min(t.n, len(p), len(t.b))
	copy(p, t.b[:n])
	t.b = t.b[n:]
	return n, nil
}

func TestReaderGrowsForBigFrames(t *testing.T) {
	ids := make([]uint16, 20000)
	stream := AppendSetDiff(nil, 12, ids) // a 40 KB frame, bigger than the initial buffer
	stream = append(stream, "{\"id\":1}\n"...)
	stream = append(stream, "{\"id\":2}"...) // unterminated at EOF
	r := NewReader(&trickle{b: stream, n: 1000}, 0, true)
	c, err := r.Next()
	if err != nil || !c.IsFrame || c.Frame.Len() != 7+40000 {
		t.Fatalf("frame: %v %+v", err, c.Frame.Len())
	}
	c, err = r.Next()
	if err != nil || string(c.Line) != `{"id":1}` {
		t.Fatalf("line: %v %q", err, c.Line)
	}
	if _, err = r.Next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("want unexpected EOF, got %v", err)
	}
	r = NewReader(strings.NewReader(strings.Repeat("a", 5000)), 1024, false)
	if _, err := r.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("want too long, got %v", err)
	}
}
