package noise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/btcagent/btcagent/codec/sv2"
)

// Transport framing sizes: the header is encrypted alone (6 + 16 bytes),
// then the payload in chunks of at most MaxChunk plaintext bytes, each
// with its own tag and nonce.
const (
	EncryptedHeaderSize = sv2.HeaderSize + TagSize
	MaxChunk            = 65535 - TagSize // 65519
)

// EncryptedPayloadLen is the ciphertext length of an n-byte payload.
func EncryptedPayloadLen(n int) int { return n + TagSize*((n+MaxChunk-1)/MaxChunk) }

// Seal appends the encrypted form of f (its Header.Length is taken from the
// payload). Frames must be sealed in the order they are sent.
func (s *Session) Seal(dst []byte, f sv2.Frame) ([]byte, error) {
	if len(f.Payload) > sv2.MaxPayload {
		return dst, fmt.Errorf("sv2 noise: %s payload of %d bytes exceeds U24", sv2.MsgName(f.MsgType), len(f.Payload))
	}
	h := f.Header
	h.Length = uint32(len(f.Payload))
	var hb [sv2.HeaderSize]byte
	sv2.AppendHeader(hb[:0], h)
	dst, err := s.send.seal(dst, nil, hb[:])
	if err != nil {
		return dst, err
	}
	for p := f.Payload; len(p) > 0; {
		n := min(len(p), MaxChunk)
		if dst, err = s.send.seal(dst, nil, p[:n]); err != nil {
			return dst, err
		}
		p = p[n:]
	}
	return dst, nil
}

// OpenHeader decrypts the 22-byte encrypted header.
func (s *Session) OpenHeader(ct []byte) (sv2.Header, error) {
	if len(ct) != EncryptedHeaderSize {
		return sv2.Header{}, fmt.Errorf("sv2 noise: encrypted header is %d bytes, want %d", len(ct), EncryptedHeaderSize)
	}
	var hb [sv2.HeaderSize]byte
	if _, err := s.recv.open(hb[:0], nil, ct); err != nil {
		return sv2.Header{}, err
	}
	return sv2.ParseHeader(hb[:])
}

// OpenPayload decrypts a payload of EncryptedPayloadLen(n) bytes in place
// and returns the n plaintext bytes.
func (s *Session) OpenPayload(ct []byte, n int) ([]byte, error) {
	if len(ct) != EncryptedPayloadLen(n) {
		return nil, fmt.Errorf("sv2 noise: encrypted payload is %d bytes, want %d", len(ct), EncryptedPayloadLen(n))
	}
	out := ct[:0]
	for len(ct) > 0 {
		c := min(len(ct), MaxChunk+TagSize)
		// Each chunk is decrypted in place (AEADs allow only exact
		// overlap) and then moved down over the previous chunks' tags.
		pt, err := s.recv.open(ct[:0], nil, ct[:c])
		if err != nil {
			return nil, err
		}
		out = append(out, pt...)
		ct = ct[c:]
	}
	return out, nil
}

// DefaultMaxPayload bounds what a Conn allocates for one frame: SV2
// messages a translator sees are far smaller, and a peer must not make us
// reserve 16 MB per frame.
const DefaultMaxPayload = 1 << 20

// Conn is an SV2 connection after the handshake: encrypted frames over a
// net.Conn. Reads and writes may run concurrently with each other; after
// any error in one direction that direction stays failed.
type Conn struct {
	nc   net.Conn
	s    *Session
	peer PeerInfo
	// MaxPayload bounds an incoming frame's payload; 0 means DefaultMaxPayload.
	MaxPayload int

	rmu  sync.Mutex
	rerr error
	hbuf [EncryptedHeaderSize]byte
	wmu  sync.Mutex
	werr error
	wbuf []byte
}

// Client runs the initiator handshake on nc. The caller sets deadlines.
func Client(nc net.Conn, cfg ClientConfig) (*Conn, error) {
	in, err := NewInitiator(cfg)
	if err != nil {
		return nil, err
	}
	a1, err := in.ActOne()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(a1); err != nil {
		return nil, fmt.Errorf("sv2 noise: send act 1 to %s: %w", nc.RemoteAddr(), err)
	}
	a2 := make([]byte, ActTwoSize)
	if _, err := io.ReadFull(nc, a2); err != nil {
		return nil, fmt.Errorf("sv2 noise: read act 2 from %s: %w", nc.RemoteAddr(), err)
	}
	s, info, err := in.ReadActTwo(a2)
	if err != nil {
		return nil, fmt.Errorf("%w (server %s)", err, nc.RemoteAddr())
	}
	return &Conn{nc: nc, s: s, peer: info}, nil
}

// Server runs the responder handshake on nc. The caller sets deadlines.
func Server(nc net.Conn, cfg ServerConfig) (*Conn, error) {
	r, err := NewResponder(cfg)
	if err != nil {
		return nil, err
	}
	a1 := make([]byte, ActOneSize)
	if _, err := io.ReadFull(nc, a1); err != nil {
		return nil, fmt.Errorf("sv2 noise: read act 1 from %s: %w", nc.RemoteAddr(), err)
	}
	if err := r.ReadActOne(a1); err != nil {
		return nil, err
	}
	a2, s, err := r.ActTwo()
	if err != nil {
		return nil, err
	}
	if _, err := nc.Write(a2); err != nil {
		return nil, fmt.Errorf("sv2 noise: send act 2 to %s: %w", nc.RemoteAddr(), err)
	}
	return &Conn{nc: nc, s: s}, nil
}

// Dial connects over TCP and runs the client handshake; ctx bounds both.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (*Conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sv2 noise: dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	c, err := Client(nc, cfg)
	stopped := stop()
	if err == nil && !stopped {
		err = fmt.Errorf("sv2 noise: handshake with %s: %w", addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// Peer is what the handshake learnt about the server (client side only).
func (c *Conn) Peer() PeerInfo { return c.peer }

// NetConn is the underlying connection (deadlines, addresses).
func (c *Conn) NetConn() net.Conn { return c.nc }

// Close closes the underlying connection.
func (c *Conn) Close() error { return c.nc.Close() }

// ReadFrame reads and decrypts one frame. The payload is a fresh slice.
func (c *Conn) ReadFrame() (sv2.Frame, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return sv2.Frame{}, c.rerr
	}
	f, err := c.readFrame()
	if err != nil {
		if errors.Is(err, ErrTampered) {
			err = fmt.Errorf("sv2 noise: frame from %s: %w", c.nc.RemoteAddr(), err)
		}
		c.rerr = err
	}
	return f, err
}

func (c *Conn) readFrame() (sv2.Frame, error) {
	if _, err := io.ReadFull(c.nc, c.hbuf[:]); err != nil {
		return sv2.Frame{}, err
	}
	h, err := c.s.OpenHeader(c.hbuf[:])
	if err != nil {
		return sv2.Frame{}, err
	}
	limit := c.MaxPayload
	if limit <= 0 {
		limit = DefaultMaxPayload
	}
	if int(h.Length) > limit {
		return sv2.Frame{}, fmt.Errorf("sv2 noise: %s frame of %d bytes exceeds the %d-byte limit", sv2.MsgName(h.MsgType), h.Length, limit)
	}
	buf := make([]byte, EncryptedPayloadLen(int(h.Length)))
	if _, err := io.ReadFull(c.nc, buf); err != nil {
		return sv2.Frame{}, fmt.Errorf("sv2 noise: %s payload: %w", sv2.MsgName(h.MsgType), err)
	}
	p, err := c.s.OpenPayload(buf, int(h.Length))
	if err != nil {
		return sv2.Frame{}, err
	}
	return sv2.Frame{Header: h, Payload: p}, nil
}

// ReadMessage reads one frame and decodes it (unknown types come back as
// *sv2.Unknown).
func (c *Conn) ReadMessage() (sv2.Message, error) {
	f, err := c.ReadFrame()
	if err != nil {
		return nil, err
	}
	return sv2.Decode(f)
}

// WriteFrame encrypts and writes one frame.
func (c *Conn) WriteFrame(f sv2.Frame) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	b, err := c.s.Seal(c.wbuf[:0], f)
	if err == nil {
		_, err = c.nc.Write(b)
	}
	if cap(b) <= 1<<16 {
		c.wbuf = b[:0]
	}
	if err != nil {
		c.werr = fmt.Errorf("sv2 noise: write %s: %w", sv2.MsgName(f.MsgType), err)
	}
	return c.werr
}

// WriteMessage encodes, encrypts and writes one message.
func (c *Conn) WriteMessage(m sv2.Message) error { return c.WriteFrame(sv2.FrameOf(m)) }

// Seal encrypts f for a caller that queues its own output (a server that
// batches writes). Frames sealed here and written with WriteFrame share one
// nonce sequence, so the caller must write them in sealing order.
func (c *Conn) Seal(dst []byte, f sv2.Frame) ([]byte, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return dst, c.werr
	}
	out, err := c.s.Seal(dst, f)
	if err != nil {
		c.werr = err
	}
	return out, err
}
