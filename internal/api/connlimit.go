package api

import (
	"net"
	"sync"
)

// limitListener caps the connections being served. It waits for a free slot
// before accepting, so connections over the cap stay in the kernel's accept
// queue and use no file descriptor of the agent, whose open-files budget
// belongs to the miners. The cap can change while serving (reload).
type limitListener struct {
	net.Listener

	mu     sync.Mutex
	cond   sync.Cond
	active int
	max    int
	closed bool
}

func newLimitListener(ln net.Listener, max int) *limitListener {
	l := &limitListener{Listener: ln, max: max}
	l.cond.L = &l.mu
	return l
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	for l.active >= l.max && !l.closed {
		l.cond.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return nil, net.ErrClosed
	}
	l.active++
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	if err != nil {
		l.release()
		return nil, err
	}
	return &limitConn{Conn: c, l: l}, nil
}

func (l *limitListener) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
	l.cond.Signal()
}

// Close also wakes an Accept waiting for a slot, so the server can stop.
func (l *limitListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.cond.Broadcast()
	return l.Listener.Close()
}

func (l *limitListener) setMax(n int) {
	l.mu.Lock()
	l.max = n
	l.mu.Unlock()
	l.cond.Broadcast()
}

// Active is the number of connections being served.
func (l *limitListener) Active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.l.release)
	return err
}
