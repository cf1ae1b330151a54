package upstream

import (
	"bytes"
	"context"
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
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
)

// PoolEN2Size is the only extranonce2 size the BTCAgent protocol works with:
// 4 bytes of session id space plus the miner's 4 (docs/PROTOCOL.md §4.1).
const PoolEN2Size = 8

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

// handshakeResult is what a successful handshake learned.
type handshakeResult struct {
	EN1         string
	Mask        uint32
	Subres      bool
	DefaultDiff float64
	FirstJob    *codec.Notify
	// Frames and lines that arrived during the handshake after the first job.
	Backlog []any
}

// link is one TCP (or TLS) connection to the pool after its handshake, in
// any of the three protocols. The fields below the writer are share and job
// bookkeeping owned by the slot actor: each link keeps its own, so a link
// that is being replaced (failback, client.reconnect) can still deliver the
// verdicts of the shares it carried while the new one serves the miners.
type link struct {
	conn    net.Conn
	reader  *codec.Reader
	pool    msg.PoolAddr
	poolIdx int    // position in the route's pool list
	proto   string // protoAgent, protoStratum or protoPerMiner
	name    string
	hs      handshakeResult // agent links
	shs     *stratumHS      // stratum links (aggregated, per-miner control, per-miner)
	gen     uint64

	// per-miner links: the miner this connection serves
	perMiner bool
	sid      uint16

	once sync.Once
	wErr atomic.Pointer[error] // set by a failed write, read by the reader

	// Writes: inline and non-blocking on the caller's goroutine when the
	// socket takes them (plain TCP on Linux), otherwise through a writer
	// goroutine that exists only while there is output (per-miner links are
	// many and mostly idle). See send.
	raw       syscall.RawConn // nil: always through the writer
	rawFn     func(fd uintptr) bool
	rawBuf    []byte // the bytes rawFn writes, and what it did (under wmu)
	rawN      int
	rawErr    error
	rawStats  *stats.Listener // counts inline writes (the socket's wrapper counts the rest)
	wmu       sync.Mutex
	wpend     []byte
	writing   bool
	closed    bool
	onWritten func(int)
	wTimeout  time.Duration

	sink *agentSink // agent links: the share path's half (see sink.go)

	// ---- owned by the slot actor ----
	out        []byte                  // stratum: requests not yet written
	reqs       map[uint64]wire.Pending // stratum: by our JSON request id
	nextReq    uint64
	flushArmed bool
	members    map[uint16]struct{} // miners registered (agent) or served (stratum) on this link
	users      int                 // attached miners whose current link this is
	retiring   bool
	retiredAt  time.Time
	broken     bool // stratum: the pool changed the extranonce so that later jobs cannot be mapped

	diff      float64  // difficulty for the next job
	mask      uint32   // granted version-rolling mask
	latest    *msg.Job // newest job (for miners that join)
	latestDif float64  // the difficulty in force when latest was received
	ring      []jobRec // stratum: recent jobs by local short id
	nextShort uint8    // stratum: local short id of the next job
	emap      *enMap   // stratum: extranonce mapping for the next job
}

// pendingCount is how many shares on this link still wait for a verdict.
func (l *link) pendingCount() int {
	if l.sink != nil {
		return l.sink.pending()
	}
	return len(l.reqs)
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
	}
}

// busy reports whether earlier output is still being written.
func (l *link) busy() bool {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.writing
}

// send writes b without blocking the caller. On a plain TCP socket it
// writes inline what the kernel takes (almost always everything: a flush
// window of shares is a few hundred bytes); the rest, and everything on a
// TLS link, is copied for the writer goroutine. A pool that stops reading
// makes that queue grow until the write deadline closes the connection.
func (l *link) send(b []byte) {
	l.wmu.Lock()
	if l.closed {
		l.wmu.Unlock()
		return
	}
	if !l.writing && l.raw != nil {
		l.rawBuf = b
		if cerr := l.raw.Write(l.rawFn); cerr != nil {
			l.rawErr = cerr
		}
		n, err := l.rawN, l.rawErr
		l.rawBuf, l.rawErr = nil, nil
		if n > 0 && l.rawStats != nil {
			l.rawStats.BytesUp.Add(int64(n))
		}
		if n > 0 && l.onWritten != nil {
			l.onWritten(n)
		}
		if err != nil {
			l.wErr.Store(&err)
			l.closed = true
			l.wmu.Unlock()
			_ = l.conn.Close()
			return
		}
		if b = b[n:]; len(b) == 0 {
			l.wmu.Unlock()
			return
		}
	}
	l.wpend = append(l.wpend, b...)
	if l.writing {
		l.wmu.Unlock()
		return
	}
	l.writing = true
	l.wmu.Unlock()
	go l.drain()
}

func (l *link) drain() {
	var buf []byte
	for {
		l.wmu.Lock()
		if len(l.wpend) == 0 || l.closed {
			l.writing = false
			l.wpend = l.wpend[:0]
			l.wmu.Unlock()
			return
		}
		buf, l.wpend = l.wpend, buf[:0]
		l.wmu.Unlock()
		_ = l.conn.SetWriteDeadline(time.Now().Add(l.wTimeout))
		n, err := l.conn.Write(buf)
		if l.onWritten != nil {
			l.onWritten(n)
		}
		if err != nil {
			l.wErr.Store(&err)
			_ = l.conn.Close()
			l.wmu.Lock()
			l.closed = true
			l.writing = false
			l.wmu.Unlock()
			return
		}
	}
}

type dialParams struct {
	Pool             msg.PoolAddr
	Stats            *stats.Listener // counts the link's bytes; nil: not counted
	User             string
	UserAgent        string
	Subres           bool
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	MaxLine          int
	BadJob           func(pool string, err error) // a malformed job was skipped
}

func poolName(p msg.PoolAddr) string { return net.JoinHostPort(p.Host, strconv.Itoa(p.Port)) }

// dial connects and runs the agent handshake (docs/PROTOCOL.md §3.3): subscribe
// with a btccom-agent/ user agent, configure for version rolling with mask
// ffffffff, capabilities before and after authorize, authorize with the pool
// user and an empty password. Requests are pipelined and replies matched by
// id, whatever their order. It returns once the first job arrived.
func dial(ctx context.Context, p dialParams) (*link, error) {
	conn, name, err := dialConn(ctx, p.Pool, p.DialTimeout, p.Stats)
	if err != nil {
		return nil, err
	}
	l := &link{conn: conn, pool: p.Pool, name: name, proto: protoAgent}
	l.reader = codec.NewReader(conn, p.MaxLine, true)
	_ = conn.SetDeadline(time.Now().Add(p.HandshakeTimeout))
	hs, err := handshake(conn, l.reader, p, name)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	l.hs = *hs
	return l, nil
}

func capsParams(subres bool) string {
	if subres {
		return `[["verrol","subres"]]`
	}
	return `[["verrol"]]`
}

func handshake(conn net.Conn, r *codec.Reader, p dialParams, name string) (*handshakeResult, error) {
	user := string(jsonQuote(p.User))
	var req []byte
	req = codec.AppendRequest(req, []byte(`"sub"`), codec.MethodSubscribe, `[`+string(jsonQuote(p.UserAgent))+`]`)
	req = codec.AppendRequest(req, []byte(`"conf"`), codec.MethodConfigure, `[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]`)
	req = codec.AppendRequest(req, []byte(`"caps"`), codec.MethodGetCapabilities, capsParams(p.Subres))
	req = codec.AppendRequest(req, []byte(`"auth"`), codec.MethodAuthorize, `[`+user+`,""]`)
	req = codec.AppendRequest(req, []byte(`"caps_again"`), codec.MethodGetCapabilities, capsParams(p.Subres))
	if _, err := conn.Write(req); err != nil {
		return nil, &HandshakeError{Pool: name, Reason: "write handshake", Err: err}
	}
	hs := &handshakeResult{}
	var gotSub, gotAuth, gotCapsAgain, poolSubres bool
	var bad skipped
	var rq codec.Request
	for !(gotSub && gotAuth && gotCapsAgain && hs.FirstJob != nil) {
		c, err := r.Next()
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				switch {
				case !gotSub:
					return nil, &HandshakeError{Pool: name, Reason: "no subscribe reply in time"}
				case !gotAuth:
					return nil, &HandshakeError{Pool: name, Reason: "no authorize reply in time"}
				case hs.FirstJob == nil:
					return nil, bad.noJob(name)
				}
				return nil, &HandshakeError{Pool: name, Reason: "no capabilities reply in time"}
			}
			return nil, &HandshakeError{Pool: name, Reason: "connection lost during handshake", Err: err}
		}
		if c.IsFrame {
			// SET_DIFF before any miner is registered carries nothing for us;
			// anything else before authorize is a protocol oddity we skip.
			continue
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			return nil, &HandshakeError{Pool: name, Reason: "malformed JSON from pool", Err: err}
		}
		if rq.IsResponse() {
			switch string(rq.ID) {
			case `"sub"`:
				en1, size, err := parseSubscribe(&rq)
				if err != nil {
					return nil, &HandshakeError{Pool: name, Reason: err.Error()}
				}
				if size != PoolEN2Size {
					return nil, &HandshakeError{Pool: name, Reason: fmt.Sprintf("extranonce2 size is %d; the BTCAgent protocol needs 8 (is this a btcpool sserver?)", size)}
				}
				hs.EN1, gotSub = en1, true
			case `"auth"`:
				if string(rq.Result.Raw) != "true" {
					return nil, &HandshakeError{Pool: name, Reason: fmt.Sprintf("authorize refused for user %q: %s", p.User, errText(&rq))}
				}
				gotAuth = true
			case `"caps"`, `"caps_again"`:
				if bytes.Contains(rq.Result.Raw, []byte(`"subres"`)) {
					poolSubres = true
				}
				if string(rq.ID) == `"caps_again"` {
					gotCapsAgain = true
				}
			case `"conf"`:
				if hs.Mask == 0 {
					hs.Mask = parseConfigureMask(rq.Result.Raw)
				}
			}
			continue
		}
		switch string(rq.Method) {
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				hs.Mask = v
			}
		case codec.MethodSetDifficulty:
			if hs.DefaultDiff == 0 {
				if d, err := strconv.ParseFloat(string(rq.Param(0).Raw), 64); err == nil && d > 0 {
					hs.DefaultDiff = d
				}
			}
		case codec.MethodNotify:
			n, err := checkJob(&rq, true)
			if err != nil {
				bad.add(name, err, p.BadJob)
				continue
			}
			if hs.FirstJob == nil {
				hs.FirstJob = n
			} else {
				hs.Backlog = append(hs.Backlog, n)
			}
		}
	}
	hs.Subres = p.Subres && poolSubres
	if hs.DefaultDiff == 0 {
		return nil, &HandshakeError{Pool: name, Reason: "no mining.set_difficulty before the first job"}
	}
	return hs, nil
}

func errText(r *codec.Request) string {
	if r.Error.Kind == codec.KindInvalid || r.Error.Kind == codec.KindNull {
		return "no reason given"
	}
	return string(r.Error.Raw)
}

func parseSubscribe(r *codec.Request) (string, int, error) {
	if r.Result.Kind != codec.KindArray {
		return "", 0, fmt.Errorf("subscribe refused: %s", errText(r))
	}
	var res codec.Request
	if err := codec.ScanRequest(append(append([]byte(`{"params":`), r.Result.Raw...), '}'), &res); err != nil {
		return "", 0, fmt.Errorf("subscribe reply has an unexpected shape: %w", err)
	} else if res.NParams < 3 {
		return "", 0, fmt.Errorf("subscribe reply has %d elements, want 3", res.NParams)
	}
	en1, err := res.Param(1).String()
	if err != nil || len(en1) != 8 || !codec.IsHex(en1) {
		return "", 0, fmt.Errorf("subscribe reply: extranonce1 %q is not 4 bytes of hex", en1)
	}
	size, err := strconv.Atoi(string(res.Param(2).Raw))
	if err != nil {
		return "", 0, fmt.Errorf("subscribe reply: bad extranonce2 size")
	}
	return en1, size, nil
}

func parseConfigureMask(raw []byte) uint32 {
	i := bytes.Index(raw, []byte(`"version-rolling.mask"`))
	if i < 0 {
		return 0
	}
	rest := raw[i+len(`"version-rolling.mask"`):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 || len(rest) < q+9 {
		return 0
	}
	v, _ := codec.ParseHex32(rest[q+1 : q+9])
	return v
}

func (l *link) close() {
	l.once.Do(func() {
		l.wmu.Lock()
		l.closed = true
		l.wmu.Unlock()
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
