// Package netio is the miner-side I/O layer: one event loop goroutine reads
// every miner socket, so an idle miner costs no goroutine and no read buffer,
// and every write is non-blocking into a bounded per-connection queue (a
// miner that stops reading overflows it and is closed; nobody else waits).
//
// The loop is also the agent's clock for the share path. Whatever must
// happen "a little later" on that path — writing the coalesced share frames
// of a pool link — is registered as a Flusher, and the loop's own wait
// timeout brings it due. No timer fires, no goroutine is woken and no
// mailbox is activated per share: bytes arrive, the miner's session runs,
// the share is encoded into the link's buffer, and the same goroutine writes
// that buffer when its window closes. docs/ARCHITECTURE.md has the whole
// picture.
//
// On Linux the loop is a hand-written epoll loop that calls epoll_wait,
// read and write through RawSyscall, out of the Go scheduler's sight (see
// loop_linux.go for why and for what that costs). Elsewhere a portable
// fallback runs one goroutine per connection behind the same API.
package netio

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// Handler receives a connection's events on the event loop. OnData must not
// block and must copy what it keeps: data is the loop's shared buffer.
type Handler interface {
	OnData(c *Conn, data []byte)
	OnClose(c *Conn, err error)
}

// Flusher is deferred work the loop brings due: Due reports the unix-nano
// time at which Flush should run (0 = nothing pending). Due is read on
// every loop iteration, so it must be cheap (an atomic load). Flush runs on
// the loop goroutine and must not block.
type Flusher interface {
	Due() int64
	Flush(now time.Time)
}

// Config sizes the engine.
type Config struct {
	ReadBuffer       int // the loop's shared read buffer; 0 = 16 KiB
	MaxWriteBuffered int // bytes queued per connection before it is closed; 0 = 32 KiB
	// MaxWait bounds one wait of the loop (0 = 20 ms). Flushers armed from
	// another goroutine are noticed within it.
	MaxWait time.Duration
	// ReceiveTimestamps asks the kernel to stamp every segment it receives
	// (SO_TIMESTAMPNS), and Conn.ReceivedAt then says when the bytes being
	// delivered reached the socket. It is for simulators that measure
	// latency while sharing the CPU with what they measure: the time a
	// reader gets round to a socket is theirs, the stamp is the network's.
	// It costs a recvmsg instead of a read, and a clock read per received
	// segment for the whole machine while any socket asks for it. Linux
	// only; elsewhere ReceivedAt is 0.
	ReceiveTimestamps bool
	Log               logrus.FieldLogger
}

func (c *Config) defaults() {
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = 16 * 1024
	}
	if c.MaxWriteBuffered <= 0 {
		c.MaxWriteBuffered = 32 * 1024
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 20 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = logrus.StandardLogger()
	}
}

// ErrWriteOverflow reports a miner whose unread output passed the cap.
var ErrWriteOverflow = errors.New("netio: write queue overflow (peer not reading)")

// ErrClosed is returned by writes to a closed connection.
var ErrClosed = errors.New("netio: connection closed")

// flushers is the copy-on-write set of registered Flushers: added and
// removed by link actors, read lock-free by the loop on every iteration.
type flushers struct {
	mu   sync.Mutex
	list atomic.Pointer[[]Flusher]
}

func (f *flushers) add(x Flusher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var cur []Flusher
	if p := f.list.Load(); p != nil {
		cur = *p
	}
	next := append(append(make([]Flusher, 0, len(cur)+1), cur...), x)
	f.list.Store(&next)
}

func (f *flushers) remove(x Flusher) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.list.Load()
	if p == nil {
		return
	}
	next := make([]Flusher, 0, len(*p))
	for _, y := range *p {
		if y != x {
			next = append(next, y)
		}
	}
	f.list.Store(&next)
}

// run flushes whatever is due and returns how long the loop may wait.
func (f *flushers) run(now time.Time, max time.Duration) time.Duration {
	p := f.list.Load()
	if p == nil {
		return max
	}
	wait := max
	nowN := now.UnixNano()
	for _, x := range *p {
		d := x.Due()
		if d == 0 {
			continue
		}
		if d <= nowN {
			x.Flush(now)
			if d = x.Due(); d == 0 || d <= nowN {
				continue // flushed, or still busy: the next iteration looks again
			}
		}
		if w := time.Duration(d - nowN); w < wait {
			wait = w
		}
	}
	return wait
}

// AddFlusher registers deferred work with the loop.
func (e *Engine) AddFlusher(f Flusher) { e.fl.add(f) }

// RemoveFlusher unregisters it.
func (e *Engine) RemoveFlusher(f Flusher) { e.fl.remove(f) }

// addrPort is a connection's remote address as a value (no *net.TCPAddr
// kept per miner).
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Remote is the peer address.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// BytesWritten counts application bytes written.
func (c *Conn) BytesWritten() int64 { return c.written.Load() }

// ReceivedAt is the kernel's receive time, in unix nanoseconds, of the
// newest segment among the bytes OnData is being given, or 0 when the
// engine does not ask for receive timestamps (Config.ReceiveTimestamps) or
// the kernel gave none. Valid only inside OnData.
func (c *Conn) ReceivedAt() int64 { return c.e.rxAt }

// BytesRead counts application bytes read.
func (c *Conn) BytesRead() int64 { return c.read.Load() }
