package upstream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/writeq"
)

// HandshakeError is a refusal during the handshake; Reason is the one-line
// explanation logged and shown in the status API.
type HandshakeError struct {
	Pool   string
	Reason string
	Err    error
}

func (e *HandshakeError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("pool %s: %s: %v", e.Pool, e.Reason, e.Err)
	}
	return fmt.Sprintf("pool %s: %s", e.Pool, e.Reason)
}

func (e *HandshakeError) Unwrap() error { return e.Err }

// link is one connection to a pool after its handshake, whatever the
// protocol: the socket and its writer, and the slot's bookkeeping of jobs
// and miners. What depends on the protocol is in proto. Each link keeps its
// own state, so a link that is being replaced (failback, client.reconnect)
// still delivers the verdicts of the shares it carried while the new one
// serves the miners.
type link struct {
	conn     net.Conn
	reader   *codec.Reader
	pool     msg.PoolAddr
	poolIdx  int    // position in the route's pool list
	protocol string // the pool entry's protocol, for the API and logs
	name     string
	proto    linkProto
	gen      uint64

	// A solo link serves one miner (sid) on its own connection; the slot's
	// other links serve every miner placed on them.
	solo bool
	sid  uint16

	once sync.Once
	wErr atomic.Pointer[error] // set by a failed write, read by the reader

	// Writes: inline and non-blocking on the caller's goroutine when the
	// socket takes them (plain TCP on Linux), otherwise through the queue's
	// drain goroutine, which exists only while there is output (solo links
	// are many and mostly idle). See send.
	out       writeq.Queue
	raw       syscall.RawConn // nil: always through the queue
	rawFn     func(fd uintptr) bool
	inlineFn  func([]byte) (int, error)
	rawBuf    []byte // the bytes rawFn writes, and what it did (under the queue's lock)
	rawN      int
	rawErr    error
	rawStats  *stats.Listener // counts inline writes (the socket's wrapper counts the rest)
	onWritten func(int)

	// ---- owned by the slot actor ----
	members   map[uint16]struct{} // miners registered or served on this link
	users     int                 // attached miners whose current link this is
	retiring  bool
	retiredAt time.Time
	broken    bool     // later jobs cannot be served (the pool changed the extranonce); a replacement is on its way
	diff      float64  // difficulty for the next job
	mask      uint32   // granted version-rolling mask
	latest    *msg.Job // newest job (for miners that join)
	latestDif float64  // the difficulty in force when latest was received
}

// newLink wraps a connection whose handshake is about to start.
func newLink(conn net.Conn, p msg.PoolAddr, name, protocol string, maxLine int, frames bool) *link {
	return &link{conn: conn, pool: p, name: name, protocol: protocol, reader: codec.NewReader(conn, maxLine, frames)}
}

// setRaw enables inline writes when the connection is a plain TCP socket.
func (l *link) setRaw() {
	c := l.conn
	if cc, ok := c.(countConn); ok {
		// Inline writes bypass the counting wrapper: send counts them.
		c, l.rawStats = cc.Conn, cc.st
	}
	if tc, ok := c.(*net.TCPConn); ok && haveRawWrite {
		l.raw, _ = tc.SyscallConn()
		// Bound once: a closure made per write would escape into the
		// RawConn interface, an allocation per flush.
		l.rawFn = func(fd uintptr) bool { l.rawN, l.rawErr = rawWrite(fd, l.rawBuf); return true }
		l.inlineFn = l.inline
	}
}

// busy reports whether earlier output is still being written.
func (l *link) busy() bool { return l.out.Busy() }

// startWriter makes the link ready for send: the queue's drain counts its
// writes, and a failed write ends the link (its reader reports it).
func (l *link) startWriter(timeout time.Duration, onWritten func(int)) {
	l.onWritten = onWritten
	l.out.Conn, l.out.Timeout = l.conn, timeout
	l.out.Written = func(n int, err error) {
		l.onWritten(n)
		if err != nil {
			l.wErr.Store(&err)
			_ = l.conn.Close()
		}
	}
	l.setRaw()
}

// send writes b without blocking the caller. On a plain TCP socket it
// writes inline what the kernel takes (almost always everything: a flush
// window of shares is a few hundred bytes); the rest, and everything on a
// TLS link, is copied for the queue. A pool that stops reading makes the
// queue grow until the write deadline closes the connection.
func (l *link) send(b []byte) {
	err := l.out.Send(b, l.inlineFn)
	if err != nil && !errors.Is(err, writeq.ErrClosed) {
		l.wErr.Store(&err)
		_ = l.conn.Close()
	}
}

// inline is the non-blocking raw write (under the queue's lock).
func (l *link) inline(b []byte) (int, error) {
	l.rawBuf = b
	if cerr := l.raw.Write(l.rawFn); cerr != nil {
		l.rawErr = cerr
	}
	n, err := l.rawN, l.rawErr
	l.rawBuf, l.rawErr = nil, nil
	if n > 0 && l.rawStats != nil {
		l.rawStats.BytesUp.Add(int64(n))
	}
	if n > 0 {
		l.onWritten(n)
	}
	return n, err
}

func (l *link) close() {
	l.once.Do(func() {
		l.out.Close()
		_ = l.conn.Close()
	})
}

// countConn counts every byte that crosses a pool link, at the socket:
// handshake, frames, lines and partial reads alike, whichever protocol the
// link speaks, so the listener's counters match what the pool saw. TLS runs
// above it, so TLS links count what goes over the wire.
type countConn struct {
	net.Conn
	st *stats.Listener
}

func (c countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.st.BytesDown.Add(int64(n))
	return n, err
}

func (c countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.st.BytesUp.Add(int64(n))
	return n, err
}

func poolName(p msg.PoolAddr) string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// dialConn connects to the pool; with st set, the connection counts its
// bytes into st.
func dialConn(ctx context.Context, p msg.PoolAddr, timeout time.Duration, st *stats.Listener) (net.Conn, string, error) {
	name := poolName(p)
	if p.Proxy != nil {
		return dialViaProxy(ctx, p, name, timeout)
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 60 * time.Second}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// TCP first, then TLS: a failure is named by the stage it happened in,
	// never by the wording of the error.
	conn, err := d.DialContext(dctx, "tcp", name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, name, &HandshakeError{Pool: name, Reason: "DNS lookup failed", Err: err}
		}
		return nil, name, &HandshakeError{Pool: name, Reason: "connect failed", Err: err}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if st != nil {
		conn = countConn{Conn: conn, st: st}
	}
	if p.TLS {
		tc := tls.Client(conn, poolTLS(p))
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return nil, name, &HandshakeError{Pool: name, Reason: "TLS handshake failed", Err: err}
		}
		conn = tc
	}
	return conn, name, nil
}

func poolTLS(p msg.PoolAddr) *tls.Config {
	return &tls.Config{ServerName: p.Host, InsecureSkipVerify: p.TLSSkipVerify, MinVersion: tls.VersionTLS12}
}

// dialViaProxy opens the connection through the pool's proxies (TLS with
// the pool runs inside the tunnel). The failure's reason is the plan's
// summary, so that repeated failures group in the log by cause.
func dialViaProxy(ctx context.Context, p msg.PoolAddr, name string, timeout time.Duration) (net.Conn, string, error) {
	var tlsCfg *tls.Config
	if p.TLS {
		tlsCfg = poolTLS(p)
	}
	conn, err := p.Proxy.Dial(ctx, name, timeout, tlsCfg)
	if err != nil {
		reason := "proxy connect failed"
		var se interface{ Summary() string }
		if errors.As(err, &se) {
			reason = se.Summary()
		}
		return nil, name, &HandshakeError{Pool: name, Reason: reason, Err: err}
	}
	return conn, name, nil
}
