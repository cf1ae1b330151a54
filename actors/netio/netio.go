// Package netio is the miner-side I/O model: one shared event loop (epoll via
// lesismal/nbio on Linux, nbio's goroutine fallback elsewhere) reads every
// miner socket, so an idle miner costs no goroutine and no read buffer, and
// every write is non-blocking into a bounded per-connection queue. A miner
// that stops reading overflows its queue and is closed; nobody else waits.
// The socket's kernel send buffer is fixed at the same size (the kernel
// doubles it), so a stuck miner holds at most about three times
// MaxWriteBuffered.
package netio

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
	nblog "github.com/lesismal/nbio/logging"
	"github.com/sirupsen/logrus"
)

// Handler receives a connection's events on the event loop. OnData must not
// block and must copy what it keeps: data is the loop's shared buffer.
type Handler interface {
	OnData(c *Conn, data []byte)
	OnClose(c *Conn, err error)
}

// Config sizes the engine.
type Config struct {
	Pollers          int // event loop goroutines; 0 = 1 (a farm's traffic is light)
	ReadBuffer       int // the loop's shared read buffer; 0 = 16 KiB
	MaxWriteBuffered int // bytes queued per connection before it is closed; 0 = 32 KiB
	Log              logrus.FieldLogger
}

// Engine owns the event loop.
type Engine struct {
	e      *nbio.Engine
	log    logrus.FieldLogger
	sndbuf int // SO_SNDBUF of every connection: the kernel's share of the output bound
}

// Conn is one miner connection on the engine.
type Conn struct {
	nc     *nbio.Conn
	h      Handler
	remote netip.AddrPort
	closed atomic.Bool
	// ready publishes the fully built Conn to the event loop. The loop learns
	// of the socket through epoll, which the race detector cannot see as a
	// synchronisation; this atomic makes the hand-over explicit.
	ready   atomic.Bool
	written atomic.Int64
	read    atomic.Int64
}

// ErrWriteOverflow reports a miner whose unread output passed the cap.
var ErrWriteOverflow = errors.New("netio: write queue overflow (peer not reading)")

// NewEngine starts the event loop.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Pollers <= 0 {
		cfg.Pollers = 1
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 16 * 1024
	}
	if cfg.MaxWriteBuffered <= 0 {
		cfg.MaxWriteBuffered = 32 * 1024
	}
	log := cfg.Log
	if log == nil {
		log = logrus.StandardLogger()
	}
	// nbio prints its own start/stop lines on stderr; ours go through logrus.
	nblog.SetLevel(nblog.LevelError)
	e := nbio.NewEngine(nbio.Config{
		Name:               "btcagent-miners",
		NPoller:            cfg.Pollers,
		ReadBufferSize:     cfg.ReadBuffer,
		MaxWriteBufferSize: cfg.MaxWriteBuffered,
	})
	e.OnData(func(nc *nbio.Conn, data []byte) {
		if c, ok := nc.Session().(*Conn); ok && c.ready.Load() {
			c.read.Add(int64(len(data)))
			c.h.OnData(c, data)
		}
	})
	e.OnClose(func(nc *nbio.Conn, err error) {
		if c, ok := nc.Session().(*Conn); ok && c.ready.Load() && c.closed.CompareAndSwap(false, true) {
			c.h.OnClose(c, err)
		}
	})
	if err := e.Start(); err != nil {
		return nil, fmt.Errorf("netio: start event loop: %w", err)
	}
	log.WithField("pollers", cfg.Pollers).Debug("miner event loop started")
	return &Engine{e: e, log: log, sndbuf: cfg.MaxWriteBuffered}, nil
}

// Stop closes every connection and the loop. nbio can miss the stop signal
// of a loop that has only just started, so the wait is bounded: a process
// that is shutting down must not hang on it.
func (e *Engine) Stop() {
	done := make(chan struct{})
	go func() { e.e.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		e.log.Warn("miner event loop did not stop within 3 s; continuing shutdown")
	}
}

// Add moves an accepted connection onto the loop. The handler is installed
// before the socket is watched, so no byte can arrive unhandled.
func (e *Engine) Add(nc net.Conn, h Handler) (*Conn, error) { return e.AddPending(nc, h, nil) }

// AddPending is Add with a callback that runs after the Conn exists but
// before the loop watches it: whatever the callback sends is guaranteed to
// precede the connection's first OnData.
func (e *Engine) AddPending(nc net.Conn, h Handler, before func(*Conn)) (*Conn, error) {
	remote := addrPort(nc.RemoteAddr())
	if tc, ok := nc.(*net.TCPConn); ok {
		// Without a fixed send buffer the kernel autotunes it up to
		// tcp_wmem's maximum (MBs) for a peer that does not read, and the
		// bounded write queue would only start filling after that.
		_ = tc.SetWriteBuffer(e.sndbuf)
	}
	c, err := nbio.NBConn(nc) // dups the fd and closes nc
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("netio: adopt connection: %w", err)
	}
	conn := &Conn{nc: c, h: h, remote: remote}
	c.SetSession(conn)
	if before != nil {
		before(conn)
	}
	conn.ready.Store(true)
	if _, err := e.e.AddConn(c); err != nil {
		return nil, fmt.Errorf("netio: watch connection: %w", err)
	}
	return conn, nil
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Remote is the peer address.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Write queues b without blocking; the bytes are copied if they cannot be
// written at once. An error means the connection is closed (or closing).
func (c *Conn) Write(b []byte) error {
	if c.closed.Load() {
		return net.ErrClosed
	}
	n, err := c.nc.Write(b)
	if n > 0 {
		c.written.Add(int64(n))
	}
	if err != nil {
		if errors.Is(err, nbio.ErrOverflow) {
			return ErrWriteOverflow
		}
		return err
	}
	return nil
}

// Close closes the connection; OnClose follows on the loop.
func (c *Conn) Close() error { return c.nc.Close() }

// CloseAfter writes a last message and closes the connection once nbio has
// flushed what it can; a peer that is not reading is simply cut.
func (c *Conn) CloseAfter(b []byte) {
	_ = c.Write(b)
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_ = c.nc.CloseWithError(nil)
}

// BytesWritten and BytesRead count application bytes.
func (c *Conn) BytesWritten() int64 { return c.written.Load() }

// BytesRead counts application bytes read.
func (c *Conn) BytesRead() int64 { return c.read.Load() }
