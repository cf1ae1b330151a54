//go:build !linux || netio_portable

package netio

// The portable fallback (Windows, macOS, BSDs): a reader goroutine per
// connection and a writer goroutine while there is output, and one ticker
// goroutine that runs the Flushers. It keeps the API and the guarantees
// (non-blocking writes, bounded output, OnData never concurrent for one
// connection) but not the cost profile of the Linux loop; farms run the
// agent on Linux.

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/internal/writeq"
)

// Engine owns the connections.
type Engine struct {
	cfg      Config
	fl       flushers
	mu       sync.Mutex
	conns    map[*Conn]struct{}
	stopping atomic.Bool
	stop     chan struct{}
	wg       sync.WaitGroup
	rxAt     int64 // always 0: receive timestamps are Linux only (ReceivedAt)
}

// Conn is one miner connection.
type Conn struct {
	e       *Engine
	nc      net.Conn
	h       Handler
	remote  netip.AddrPort
	q       writeq.Queue
	closed  atomic.Bool
	written atomic.Int64
	read    atomic.Int64
}

// NewEngine starts the flusher ticker.
func NewEngine(cfg Config) (*Engine, error) {
	cfg.defaults()
	e := &Engine{cfg: cfg, conns: map[*Conn]struct{}{}, stop: make(chan struct{})}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				e.fl.run(now, cfg.MaxWait)
			case <-e.stop:
				return
			}
		}
	}()
	return e, nil
}

// Stop closes every connection.
func (e *Engine) Stop() {
	if e.stopping.Swap(true) {
		return
	}
	close(e.stop)
	e.mu.Lock()
	cs := make([]*Conn, 0, len(e.conns))
	for c := range e.conns {
		cs = append(cs, c)
	}
	e.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
	}
}

// Add starts serving nc.
func (e *Engine) Add(nc net.Conn, h Handler) (*Conn, error) {
	if e.stopping.Load() {
		_ = nc.Close()
		return nil, ErrClosed
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(e.cfg.MaxWriteBuffered)
	}
	c := &Conn{e: e, nc: nc, h: h, remote: addrPort(nc.RemoteAddr())}
	c.q = writeq.Queue{Conn: nc, Timeout: 30 * time.Second, Max: e.cfg.MaxWriteBuffered, Written: c.wrote}
	e.mu.Lock()
	e.conns[c] = struct{}{}
	e.mu.Unlock()
	e.wg.Add(1)
	go c.readLoop()
	return c, nil
}

func (c *Conn) readLoop() {
	defer c.e.wg.Done()
	buf := make([]byte, 4096)
	var err error
	for {
		var n int
		n, err = c.nc.Read(buf)
		if n > 0 {
			c.read.Add(int64(n))
			c.h.OnData(c, buf[:n])
		}
		if err != nil {
			break
		}
	}
	if errors.Is(err, io.EOF) {
		err = nil // the peer closed: the same report as the Linux loop's
	}
	_ = c.Close()
	c.e.mu.Lock()
	delete(c.e.conns, c)
	c.e.mu.Unlock()
	if c.closed.CompareAndSwap(false, true) {
		c.h.OnClose(c, err)
	}
}

// Write queues b without blocking.
func (c *Conn) Write(b []byte) error {
	switch err := c.q.Send(b, nil); {
	case errors.Is(err, writeq.ErrOverflow):
		_ = c.nc.Close()
		return ErrWriteOverflow
	case err != nil:
		return ErrClosed
	}
	return nil
}

// wrote counts what the drain goroutine wrote; a failed write ends the
// connection (its reader then reports the close).
func (c *Conn) wrote(n int, err error) {
	c.written.Add(int64(n))
	if err != nil {
		_ = c.nc.Close()
	}
}

// Close closes the connection; OnClose follows from its reader.
func (c *Conn) Close() error {
	c.q.Close()
	return c.nc.Close()
}

// CloseAfter writes a last message and closes the connection.
func (c *Conn) CloseAfter(b []byte) {
	_ = c.Write(b)
	go func() {
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if !c.q.Busy() {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling a peer's drain, bounded
		}
		_ = c.Close()
	}()
}
