//go:build linux && !netio_portable

package netio

// Why a hand-written loop, and why RawSyscall.
//
// A Go goroutine that blocks in epoll_wait through syscall.Syscall tells the
// scheduler it is in a syscall. sysmon then keeps retaking its P (handoffp,
// startm, a futex wake each time) and stays at its 20 µs tick, so an idle
// farm pays a thread hand-off and several nanosleeps for every share. The
// same loop calling epoll_pwait, read and write through RawSyscall is
// invisible to the scheduler: its P stays "running", sysmon backs off to its
// 10 ms tick, and the only runtime traffic left is sysmon's preemption
// signal every 10 ms (docs/BENCHMARKS.md has the strace counts).
//
// What that costs, and why it is acceptable here:
//   - The loop holds its P while it waits. The daemon therefore runs with
//     one P more than there are CPUs (cmd/btcagent), so the rest of the
//     runtime — link actors, the fan-out, GC workers — keeps a P per core.
//   - A stop-the-world must stop this P too. The runtime does that with a
//     preemption signal, which interrupts epoll_pwait (EINTR) at once; the
//     loop then reaches a safe point within microseconds. The wait timeout
//     (at most Config.MaxWait) is only the bound if a signal were lost.
//     GC pauses are measured in docs/BENCHMARKS.md.
//   - Every call made through RawSyscall here is non-blocking by
//     construction: sockets are O_NONBLOCK and epoll_pwait has a timeout.

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// yieldEvery bounds how long the loop goroutine runs without passing
// through the scheduler. sysmon preempts a goroutine that has held its P
// for 10 ms (a signal, then a Gosched, whose wakep wakes an idle thread
// that finds nothing and sleeps again: ~3 futex calls, 50 times a second
// even when idle). Yielding first, to this P's own run queue, resets
// sysmon's clock without waking anyone: runtime.goyield, unlike
// runtime.Gosched, makes no wakep call. The wait is bounded by the same
// interval, so the loop never sits in epoll_pwait past it.
const yieldEvery = 4 * time.Millisecond

// goyield puts the calling goroutine at the back of its P's run queue and
// runs the scheduler once; the runtime's own loops use it.
//
//go:linkname goyield runtime.goyield
func goyield()

const (
	evRead  = syscall.EPOLLIN | syscall.EPOLLRDHUP
	evWrite = evRead | syscall.EPOLLOUT
	wakeFD  = -1 // epoll data of the eventfd
)

// Engine owns the event loop.
type Engine struct {
	cfg    Config
	epfd   int
	wakefd int
	fl     flushers

	mu    sync.Mutex // guards adds and linger
	adds  []*Conn
	woken atomic.Bool

	stopping atomic.Bool
	done     chan struct{}

	linger lingerList // guarded by mu

	// Owned by the loop goroutine.
	conns []*Conn // by fd
	buf   []byte
	rx    *rxStamp // nil unless Config.ReceiveTimestamps
	rxAt  int64    // receive time of the data being delivered (ReceivedAt)
}

// Conn is one miner connection on the engine.
type Conn struct {
	e      *Engine
	h      Handler
	remote netip.AddrPort

	mu         sync.Mutex
	fd         int    // -1 once closed; changed only by the loop, under mu
	out        []byte // output the socket did not take yet (nil when drained)
	closing    bool   // shut down; the loop closes the fd when it sees the hang-up
	closeAfter bool   // shut down once out is drained

	closed  atomic.Bool
	written atomic.Int64
	read    atomic.Int64
}

// NewEngine starts the event loop.
func NewEngine(cfg Config) (*Engine, error) {
	cfg.defaults()
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("netio: epoll_create1: %w", err)
	}
	r, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if errno != 0 {
		_ = syscall.Close(epfd)
		return nil, fmt.Errorf("netio: eventfd: %w", errno)
	}
	wakefd := int(r)
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: wakeFD}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		_ = syscall.Close(epfd)
		_ = syscall.Close(wakefd)
		return nil, fmt.Errorf("netio: watch eventfd: %w", err)
	}
	e := &Engine{cfg: cfg, epfd: epfd, wakefd: wakefd, done: make(chan struct{}), buf: make([]byte, cfg.ReadBuffer)}
	if cfg.ReceiveTimestamps {
		e.rx = newRxStamp(e.buf)
	}
	go e.loop()
	cfg.Log.Debug("miner event loop started")
	return e, nil
}

// wake interrupts the loop's wait; repeated wakes before the loop runs cost
// one write.
func (e *Engine) wake() {
	if e.woken.Swap(true) {
		return
	}
	one := uint64(1)
	_, _ = syscall.Write(e.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// Stop closes every connection (each gets OnClose) and the loop. The wait
// is bounded: a process that is shutting down must not hang on it.
func (e *Engine) Stop() {
	if e.stopping.Swap(true) {
		<-e.done
		return
	}
	e.wake()
	select {
	case <-e.done:
	case <-time.After(3 * time.Second):
		e.cfg.Log.Warn("miner event loop did not stop within 3 s; continuing shutdown")
	}
}

// Add moves an accepted connection onto the loop. The net.Conn is closed:
// the engine keeps a duplicate of its descriptor, so no net.TCPConn, netFD
// or runtime poll descriptor stays alive per miner.
func (e *Engine) Add(nc net.Conn, h Handler) (*Conn, error) {
	if e.stopping.Load() {
		_ = nc.Close()
		return nil, ErrClosed
	}
	remote := addrPort(nc.RemoteAddr())
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_ = nc.Close()
		return nil, fmt.Errorf("netio: %T has no file descriptor", nc)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("netio: adopt connection: %w", err)
	}
	fd := -1
	var derr error
	cerr := rc.Control(func(ofd uintptr) {
		// Without a fixed send buffer the kernel autotunes it up to
		// tcp_wmem's maximum (MBs) for a peer that does not read, and the
		// bounded queue would only start filling after that.
		_ = syscall.SetsockoptInt(int(ofd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, e.cfg.MaxWriteBuffered)
		if e.cfg.ReceiveTimestamps {
			_ = syscall.SetsockoptInt(int(ofd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		}
		fd, derr = dupCloexec(int(ofd))
	})
	_ = nc.Close()
	if cerr != nil {
		derr = cerr
	}
	if derr != nil {
		return nil, fmt.Errorf("netio: adopt connection: %w", derr)
	}
	if err := syscall.SetNonblock(fd, true); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("netio: non-blocking: %w", err)
	}
	c := &Conn{e: e, h: h, remote: remote, fd: fd}
	e.mu.Lock()
	e.adds = append(e.adds, c)
	e.mu.Unlock()
	e.wake()
	return c, nil
}

func dupCloexec(fd int) (int, error) {
	r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(r), nil
}

// ---- the loop ----

func (e *Engine) loop() {
	defer close(e.done)
	evs := make([]syscall.EpollEvent, 256)
	nextLinger := time.Now().Add(time.Second)
	lastYield := time.Now()
	for {
		now := time.Now()
		if now.Sub(lastYield) >= yieldEvery {
			// Through the scheduler before sysmon's 10 ms preemption
			// would: see yieldEvery.
			goyield()
			lastYield = now
		}
		wait := min(e.fl.run(now, e.cfg.MaxWait), yieldEvery)
		ms := int((wait + time.Millisecond - 1) / time.Millisecond)
		r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(e.epfd),
			uintptr(unsafe.Pointer(&evs[0])), uintptr(len(evs)), uintptr(ms), 0, 0)
		if errno != 0 {
			if errno == syscall.EINTR {
				continue
			}
			e.cfg.Log.WithError(errno).Error("epoll_pwait failed; miner event loop stops")
			e.shutdown()
			return
		}
		for i := 0; i < int(r); i++ {
			ev := &evs[i]
			if ev.Fd == wakeFD {
				if e.onWake() {
					e.shutdown()
					return
				}
				continue
			}
			e.onEvent(int(ev.Fd), ev.Events)
		}
		if !now.Before(nextLinger) {
			e.mu.Lock()
			cut := e.linger.expired(now)
			e.mu.Unlock()
			for _, c := range cut {
				_ = c.Close()
			}
			nextLinger = now.Add(time.Second)
		}
	}
}

// onWake drains the eventfd and takes new connections; it reports a stop.
func (e *Engine) onWake() (stop bool) {
	var b [8]byte
	_, _, _ = syscall.RawSyscall(syscall.SYS_READ, uintptr(e.wakefd), uintptr(unsafe.Pointer(&b[0])), 8)
	e.woken.Store(false)
	if e.stopping.Load() {
		return true
	}
	e.mu.Lock()
	adds := e.adds
	e.adds = nil
	e.mu.Unlock()
	for _, c := range adds {
		for c.fd >= len(e.conns) {
			e.conns = append(e.conns, make([]*Conn, len(e.conns)+64)...)
		}
		e.conns[c.fd] = c
		ev := syscall.EpollEvent{Events: evRead, Fd: int32(c.fd)}
		if err := syscall.EpollCtl(e.epfd, syscall.EPOLL_CTL_ADD, c.fd, &ev); err != nil {
			e.closeConn(c, fmt.Errorf("netio: watch connection: %w", err))
		}
	}
	return false
}

func (e *Engine) onEvent(fd int, events uint32) {
	if fd < 0 || fd >= len(e.conns) {
		return
	}
	c := e.conns[fd]
	if c == nil {
		return
	}
	if events&syscall.EPOLLOUT != 0 {
		c.drain()
	}
	if events&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
		return
	}
	var n uintptr
	var errno syscall.Errno
	if e.rx != nil {
		n, e.rxAt, errno = e.rx.recv(fd)
	} else {
		n, _, errno = syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&e.buf[0])), uintptr(len(e.buf)))
	}
	switch {
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return
	case errno != 0:
		e.closeConn(c, errno)
	case n == 0:
		e.closeConn(c, nil)
	default:
		c.read.Add(int64(n))
		c.h.OnData(c, e.buf[:n])
	}
}

// closeConn releases the descriptor (only the loop does, so a descriptor
// number is never reused while the loop may still read it) and tells the
// handler once.
func (e *Engine) closeConn(c *Conn, err error) {
	c.mu.Lock()
	fd := c.fd
	if fd < 0 {
		c.mu.Unlock()
		return
	}
	c.fd, c.out, c.closing = -1, nil, true
	_ = syscall.Close(fd) // also removes it from the epoll set
	c.mu.Unlock()
	if fd < len(e.conns) && e.conns[fd] == c {
		e.conns[fd] = nil
	}
	if c.closed.CompareAndSwap(false, true) {
		c.h.OnClose(c, err)
	}
}

// shutdown closes every connection as the loop ends.
func (e *Engine) shutdown() {
	for _, c := range e.conns {
		if c != nil {
			e.closeConn(c, ErrClosed)
		}
	}
	e.mu.Lock()
	adds := e.adds
	e.adds = nil
	e.mu.Unlock()
	for _, c := range adds {
		e.closeConn(c, ErrClosed)
	}
	_ = syscall.Close(e.epfd)
	_ = syscall.Close(e.wakefd)
}

// ---- writes (any goroutine) ----

// Write queues b without blocking: what the socket does not take at once is
// copied and written when it becomes writable. An error means the
// connection is closed or closing; ErrWriteOverflow means this write would
// have passed the per-connection cap, and the connection is being closed.
func (c *Conn) Write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 || c.closing {
		return ErrClosed
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > c.e.cfg.MaxWriteBuffered {
			c.shutdownLocked()
			return ErrWriteOverflow
		}
		c.out = append(c.out, b...)
		return nil
	}
	n, err := c.rawWrite(b)
	if err != nil {
		c.shutdownLocked()
		return err
	}
	if n < len(b) {
		if len(b)-n > c.e.cfg.MaxWriteBuffered {
			c.shutdownLocked()
			return ErrWriteOverflow
		}
		c.out = append(make([]byte, 0, max(len(b)-n, 512)), b[n:]...)
		ev := syscall.EpollEvent{Events: evWrite, Fd: int32(c.fd)}
		_ = syscall.EpollCtl(c.e.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
	}
	return nil
}

// rawWrite writes what the socket takes now and counts it.
func (c *Conn) rawWrite(b []byte) (int, error) {
	n, err := RawWrite(uintptr(c.fd), b)
	c.written.Add(int64(n))
	return n, err
}

// drain writes queued output when the socket became writable (loop).
func (c *Conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 || len(c.out) == 0 {
		return
	}
	n, err := c.rawWrite(c.out)
	if err != nil {
		c.shutdownLocked()
		return
	}
	c.out = c.out[n:]
	if len(c.out) > 0 {
		return
	}
	c.out = nil
	if c.closeAfter {
		c.shutdownLocked()
		return
	}
	ev := syscall.EpollEvent{Events: evRead, Fd: int32(c.fd)}
	_ = syscall.EpollCtl(c.e.epfd, syscall.EPOLL_CTL_MOD, c.fd, &ev)
}

// shutdownLocked ends both directions; the loop sees the hang-up and
// releases the descriptor. Output already in the kernel is still sent.
func (c *Conn) shutdownLocked() {
	if c.closing || c.fd < 0 {
		return
	}
	c.closing = true
	_ = syscall.Shutdown(c.fd, syscall.SHUT_RDWR)
}

// Close closes the connection; OnClose follows on the loop.
func (c *Conn) Close() error {
	c.mu.Lock()
	c.shutdownLocked()
	c.mu.Unlock()
	return nil
}

// CloseAfter writes a last message and closes the connection once it is
// written; a peer that does not read it within 2 s is simply cut.
func (c *Conn) CloseAfter(b []byte) {
	_ = c.Write(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 || c.closing {
		return
	}
	if len(c.out) == 0 {
		c.shutdownLocked()
		return
	}
	c.closeAfter = true
	c.e.mu.Lock()
	c.e.linger.add(c, time.Now().Add(2*time.Second))
	c.e.mu.Unlock()
}

// lingerList holds connections closing after their last write, so one that
// never drains is cut after its deadline. Guarded by Engine.mu.
type lingerList struct {
	conns []*Conn
	until []time.Time
}

func (l *lingerList) add(c *Conn, until time.Time) {
	l.conns = append(l.conns, c)
	l.until = append(l.until, until)
}

// expired removes and returns the connections past their deadline.
func (l *lingerList) expired(now time.Time) (cut []*Conn) {
	if len(l.conns) == 0 {
		return nil
	}
	keep := 0
	for i, c := range l.conns {
		if now.After(l.until[i]) {
			cut = append(cut, c)
			continue
		}
		l.conns[keep], l.until[keep] = c, l.until[i]
		keep++
	}
	clear(l.conns[keep:])
	l.conns, l.until = l.conns[:keep], l.until[:keep]
	return cut
}
