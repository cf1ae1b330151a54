package reliability

import (
	"context"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/netio"
)

// emfileListener fails Accept with EMFILE while failing is set, like a
// process at its open-files limit, and counts the calls.
type emfileListener struct {
	net.Listener
	mu      sync.Mutex
	failing bool
	calls   []time.Time
	changed chan struct{}
}

func (l *emfileListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.calls = append(l.calls, time.Now())
	failing := l.failing
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if failing {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

func (l *emfileListener) waitCalls(ctx context.Context, n int) ([]time.Time, error) {
	for {
		l.mu.Lock()
		calls, ch := append([]time.Time(nil), l.calls...), l.changed
		l.mu.Unlock()
		if len(calls) >= n {
			return calls, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return calls, ctx.Err()
		}
	}
}

// Out of file descriptors: the accept loop backs off (5 ms doubling to 1 s)
// instead of spinning on a listener that stays readable, logs it once, and
// accepts again as soon as descriptors are free. (The real limit is not
// lowered: that would be process-wide and hit every other test.)
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	real, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &emfileListener{Listener: real, failing: true, changed: make(chan struct{})}
	log, logs := newLogger(t, 4)
	accepted := make(chan net.Conn, 1)
	done := make(chan error, 1)
	go func() { done <- netio.AcceptLoop(ln, log, func(c net.Conn) { accepted <- c }) }()
	ctx := ctxFor(t, 30*time.Second)
	// a connection waits in the backlog meanwhile
	c, err := net.Dial("tcp", real.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	calls, err := ln.waitCalls(ctx, 8)
	if err != nil {
		t.Fatal(err)
	}
	// 7 waits of 5, 10, ... 320 ms: 635 ms at least; a spinning loop
	// would make thousands of calls in that time
	if span := calls[7].Sub(calls[0]); span < 600*time.Millisecond {
		t.Errorf("8 failing accepts within %v: not backing off (%v)", span, gaps(calls))
	}
	if n := logs.Count("accept failed"); n != 1 {
		t.Errorf("accept failure logged %d times, want once", n)
	}
	ln.mu.Lock()
	ln.failing = false
	ln.mu.Unlock()
	select {
	case got := <-accepted:
		_ = got.Close()
	case <-ctx.Done():
		t.Fatal("accept loop did not recover when descriptors were free again")
	}
	_ = real.Close()
	if err := <-done; err != nil {
		t.Errorf("accept loop ended with %v", err)
	}
}
