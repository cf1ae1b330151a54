package poolsim

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// conn is one accepted TCP connection: a plain miner or an agent upstream.
// Fields below mu are guarded by Pool.mu; the output queue by wmu.
type conn struct {
	p      *Pool
	id     uint64
	nc     net.Conn
	remote string
	en1    uint32
	en1b   [4]byte
	en1Hex string
	since  time.Time
	done   chan struct{} // closed once the connection is gone from the pool

	// set by SetExtranonce (guarded by Pool.mu): jobs published before seq
	// en1From keep the previous extranonce1; en2Size 0 means Config.EN2Size.
	prevEN1  uint32
	prevEN1b [4]byte
	en1From  uint64
	en2Size  int

	bytesIn  atomic.Uint64
	bytesOut atomic.Uint64

	// guarded by Pool.mu
	subscribed bool
	authorized bool
	agent      bool
	subres     bool
	configured bool
	verMask    uint32 // granted by mining.configure (plain miners)
	userAgent  string
	user       string
	subAccount string             // user up to its first dot, as sserver reads it
	workers    map[uint16]*worker // agent connections: registered sessions
	plain      *worker            // plain miners: the authorized worker
	submitIdx  uint16             // next SUBMIT_RESPONSE index
	validated  uint64
	accepted   uint64
	rejected   map[codec.Status]uint64
	dropped    uint64 // shares dropped without a verdict
	ignored    uint64 // ex-messages ignored (before authorize, bad register, unknown command)
	badLines   uint64
	linesIn    uint64
	linesOut   uint64
	framesIn   map[byte]uint64
	framesOut  map[byte]uint64
	suppressed uint64 // bytes not sent because the pool was silent
	sharesLeft int    // CloseAfterShares budget; 0 = off
	closeNow   bool   // set when the budget ran out: flush and close
	recent     frameRing
	sv2        *sv2Conn // SV2 connections only

	// output queue, guarded by wmu
	wmu      sync.Mutex
	queue    net.Buffers
	flushing bool
	delayed  []delayedWrite
	lastDue  time.Time
	timer    *time.Timer
	dead     bool
	closing  bool  // close once the queue is written (CloseAfterShares)
	closeErr error // why a write failed, for the close reason
}

// delayedWrite is output held back by SetReplyDelay.
type delayedWrite struct {
	due  time.Time
	bufs [][]byte
}

// recentFrames is how many raw ex-messages each connection remembers for
// Stats (enough to see what just happened, cheap enough for 20k links).
const recentFrames = 16

// frameRing keeps the last few raw frames, reusing its buffers.
type frameRing struct {
	buf [recentFrames][]byte
	pos int
	n   int
}

func (r *frameRing) add(f codec.Frame) {
	b := r.buf[r.pos][:0]
	n := f.Len()
	b = append(b, codec.Magic, f.Cmd, byte(n), byte(n>>8))
	b = append(b, f.Body...)
	r.buf[r.pos] = b
	r.pos = (r.pos + 1) % recentFrames
	if r.n < recentFrames {
		r.n++
	}
}

func (r *frameRing) hex() []string {
	out := make([]string, 0, r.n)
	for i := 0; i < r.n; i++ {
		k := (r.pos - r.n + i + recentFrames) % recentFrames
		out = append(out, hex.EncodeToString(r.buf[k]))
	}
	return out
}

func (p *Pool) newConnLocked(nc net.Conn) *conn {
	p.connSeq++
	en1 := p.serverID<<24 | p.en1Next&0xffffff
	p.en1Next = (p.en1Next + 1) & 0xffffff
	c := &conn{
		p:          p,
		id:         p.connSeq,
		nc:         nc,
		remote:     nc.RemoteAddr().String(),
		en1:        en1,
		en1Hex:     codec.Hex32(en1),
		since:      time.Now(),
		done:       make(chan struct{}),
		rejected:   make(map[codec.Status]uint64),
		framesIn:   make(map[byte]uint64),
		framesOut:  make(map[byte]uint64),
		sharesLeft: p.closeAfter,
	}
	c.en1b = [4]byte{byte(en1 >> 24), byte(en1 >> 16), byte(en1 >> 8), byte(en1)}
	p.conns[c.id] = c
	p.tot.connsAccepted++
	p.eventLocked(c.id, "connect", c.remote+" en1 "+c.en1Hex)
	p.signalLocked()
	return c
}

// errCloseAfterShares is the close reason recorded for CloseAfterShares.
var errCloseAfterShares = errors.New("share budget of CloseAfterShares used up")

// serve is the connection's reader goroutine: it owns all input processing,
// which keeps every per-connection sequence (submit index, reply order)
// naturally ordered.
func (p *Pool) serve(c *conn) {
	defer p.wg.Done()
	r := codec.NewReader(connReader{c}, codec.DefaultMaxLine, true)
	var req codec.Request
	var err error
	for {
		var ch codec.Chunk
		ch, err = r.Next()
		if err != nil {
			break
		}
		if ch.IsFrame {
			p.handleFrame(c, ch.Frame)
		} else {
			p.handleLine(c, ch.Line, &req)
		}
		p.mu.Lock()
		closeNow := c.closeNow
		p.mu.Unlock()
		if closeNow {
			err = errCloseAfterShares
			break
		}
	}
	p.finish(c, err)
}

// finish ends a connection's serve loop: after CloseAfterShares it writes
// what is pending first, otherwise it shuts the connection down; then the
// pool forgets it.
func (p *Pool) finish(c *conn, err error) {
	if err == errCloseAfterShares {
		c.closeAfterFlush()
	} else {
		c.shutdown()
	}
	p.removeConn(c, err)
}

// closeAfterFlush writes everything still pending, delayed replies
// included, and then closes: the last verdict before a CloseAfterShares
// close must reach the peer. If a fan-out goroutine is writing right now,
// it closes the connection when it is done.
func (c *conn) closeAfterFlush() {
	c.wmu.Lock()
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	for _, d := range c.delayed {
		c.queue = append(c.queue, d.bufs...)
	}
	c.delayed = nil
	c.closing = true
	busy := c.flushing
	c.wmu.Unlock()
	if !busy {
		c.flush()
		c.shutdown()
	}
}

// connReader counts input bytes and flushes pending output right before
// the reader blocks: replies produced from one batch of input leave in one
// write, as with sserver's libevent output buffers.
type connReader struct{ c *conn }

func (r connReader) Read(b []byte) (int, error) {
	r.c.flush()
	n, err := r.c.nc.Read(b)
	if n > 0 {
		r.c.bytesIn.Add(uint64(n))
		r.c.p.bytesCounted()
	}
	return n, err
}

// shutdown closes the socket; the reader goroutine then removes the
// connection. Safe to call more than once.
func (c *conn) shutdown() {
	c.wmu.Lock()
	c.dead = true
	c.queue = nil
	c.delayed = nil
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	c.wmu.Unlock()
	c.nc.Close()
}

// removeConn forgets a closed connection; its workers go offline.
func (p *Pool) removeConn(c *conn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c.id)
	for _, w := range c.workers {
		p.retireWorkerLocked(w)
	}
	if c.plain != nil {
		p.retireWorkerLocked(c.plain)
	}
	if c.sv2 != nil {
		for _, ch := range c.sv2.channels {
			p.retireWorkerLocked(ch.w)
		}
	}
	c.wmu.Lock()
	if c.closeErr != nil {
		err = fmt.Errorf("write: %w", c.closeErr)
	}
	c.wmu.Unlock()
	reason := "closed"
	switch {
	case err == nil || errors.Is(err, io.EOF):
		reason = "peer closed"
	case errors.Is(err, net.ErrClosed):
		reason = "closed by pool"
	case err != nil:
		reason = err.Error()
	}
	cs := c.statsLocked()
	cs.Closed = time.Now()
	cs.CloseReason = reason
	p.closedCS = append(p.closedCS, cs)
	if len(p.closedCS) > maxClosed {
		p.closedCS = p.closedCS[len(p.closedCS)-maxClosed:]
	}
	p.tot.connsClosed++
	p.tot.closedBytesIn += c.bytesIn.Load()
	p.tot.closedBytesOut += c.bytesOut.Load()
	p.eventLocked(c.id, "close", reason)
	p.signalLocked()
	close(c.done)
}

// send queues output; callers hold Pool.mu, so the queue order is the order
// in which the pool decided things. reply marks protocol replies, which
// SetReplyDelay holds back. Nothing is written until flush.
func (c *conn) send(reply bool, bufs ...[]byte) {
	p := c.p
	if p.silent {
		for _, b := range bufs {
			c.suppressed += uint64(len(b))
		}
		return
	}
	delay := p.replyDelay
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return
	}
	if (reply && delay > 0) || len(c.delayed) > 0 {
		due := time.Now()
		if reply {
			due = due.Add(delay)
		}
		if due.Before(c.lastDue) {
			due = c.lastDue
		}
		c.lastDue = due
		c.delayed = append(c.delayed, delayedWrite{due: due, bufs: bufs})
		if c.timer == nil {
			c.timer = time.AfterFunc(time.Until(c.delayed[0].due), c.releaseDelayed)
		}
		return
	}
	c.queue = append(c.queue, bufs...)
}

// releaseDelayed moves due output to the queue and writes it.
func (c *conn) releaseDelayed() {
	c.wmu.Lock()
	c.timer = nil
	if c.dead {
		c.wmu.Unlock()
		return
	}
	now := time.Now()
	i := 0
	for ; i < len(c.delayed) && !c.delayed[i].due.After(now); i++ {
		c.queue = append(c.queue, c.delayed[i].bufs...)
	}
	c.delayed = append(c.delayed[:0], c.delayed[i:]...)
	if len(c.delayed) > 0 {
		c.timer = time.AfterFunc(time.Until(c.delayed[0].due), c.releaseDelayed)
	}
	c.wmu.Unlock()
	c.flush()
}

// flush writes everything queued, in one writev per batch. Only one
// goroutine writes at a time; others leave their data to it.
func (c *conn) flush() {
	c.wmu.Lock()
	if c.flushing || len(c.queue) == 0 || c.dead {
		c.wmu.Unlock()
		return
	}
	c.flushing = true
	for len(c.queue) > 0 && !c.dead {
		q := c.queue
		c.queue = nil
		c.wmu.Unlock()
		// A peer that stops reading must not pin a fan-out worker forever.
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.p.cfg.WriteTimeout))
		n, err := q.WriteTo(c.nc)
		c.bytesOut.Add(uint64(n))
		c.p.bytesCounted()
		c.wmu.Lock()
		if err != nil {
			c.flushing = false
			c.closeErr = err
			c.wmu.Unlock()
			c.shutdown()
			return
		}
	}
	c.flushing = false
	closing := c.closing
	c.wmu.Unlock()
	if closing {
		c.shutdown()
	}
}

// ---- JSON ----

// handleLine processes one JSON-RPC line.
func (p *Pool) handleLine(c *conn, line []byte, req *codec.Request) {
	if err := codec.ScanRequest(line, req); err != nil {
		p.mu.Lock()
		c.linesIn++
		c.badLines++
		p.eventLocked(c.id, "bad-line", err.Error())
		p.signalLocked()
		p.mu.Unlock()
		return
	}
	if string(req.Method) == codec.MethodSubmit {
		p.plainSubmit(c, req)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c.linesIn++
	defer p.signalLocked()
	if req.IsResponse() {
		return // replies to our notifications carry nothing we need
	}
	switch string(req.Method) {
	case codec.MethodGetCapabilities:
		p.getCapabilitiesLocked(c, req)
	case codec.MethodSubscribe:
		p.subscribeLocked(c, req)
	case codec.MethodConfigure:
		p.configureLocked(c, req)
	case codec.MethodAuthorize:
		p.authorizeLocked(c, req)
	case codec.MethodSuggestDifficulty, codec.MethodSuggestTarget, codec.MethodExtranonceSub, codec.MethodMultiVersion:
		// Answered so that no miner waits forever; the hints are not used
		// (sserver applies them to the whole agent link, agents never send them).
		c.replyLine(codec.AppendTrue(nil, req.ID))
	default:
		c.replyLine(codec.AppendError(nil, req.ID, statusUnknownMethod, "Unknown method "+strconv.Quote(string(req.Method))))
	}
}

// statusUnknownMethod is Stratum's generic "other/unknown" error code.
const statusUnknownMethod codec.Status = 20

// replyLine queues one reply line and counts it.
func (c *conn) replyLine(b []byte) {
	c.linesOut++
	c.send(true, b)
}

func (p *Pool) getCapabilitiesLocked(c *conn, req *codec.Request) {
	// The pool turns subres on only for an agent whose dispatcher exists,
	// i.e. after authorize (docs/PROTOCOL.md §3.2); that is why agents ask twice.
	if !p.cfg.NoSubres && c.agent && c.authorized && !c.subres && wantsSubres(req.Param(0)) {
		c.subres = true
		p.eventLocked(c.id, "subres", "on")
	}
	b := append([]byte(`{"id":`), idOrNull(req.ID)...)
	b = append(b, `,"result":`...)
	b = append(b, p.capsJSON...)
	b = append(b, "}\n"...)
	c.replyLine(b)
}

func idOrNull(id []byte) []byte {
	if len(id) == 0 {
		return []byte("null")
	}
	return id
}

func wantsSubres(v codec.Value) bool {
	if v.Kind != codec.KindArray {
		return false
	}
	var caps []string
	if json.Unmarshal(v.Raw, &caps) != nil {
		return false
	}
	for _, s := range caps {
		if s == codec.CapSubmitResponse {
			return true
		}
	}
	return false
}

func (p *Pool) subscribeLocked(c *conn, req *codec.Request) {
	if !c.subscribed {
		ua := ""
		if v := req.Param(0); v.Kind == codec.KindString {
			ua, _ = v.String()
		}
		// sserver cuts to 30 characters first and filters afterwards (docs/PROTOCOL.md §3.1).
		if len(ua) > codec.MaxAgentLen {
			ua = ua[:codec.MaxAgentLen]
		}
		ua = codec.FilterName(ua)
		c.subscribed = true
		c.userAgent = ua
		c.agent = strings.HasPrefix(ua, codec.AgentUserAgentPrefix)
		kind := "plain"
		if c.agent {
			kind = "agent"
			p.tot.agentConns++
		}
		p.eventLocked(c.id, "subscribe", kind+" "+strconv.Quote(ua))
	}
	c.replyLine(codec.AppendSubscribeResult(nil, req.ID, c.en1Hex, c.en2SizeLocked()))
}

func (p *Pool) configureLocked(c *conn, req *codec.Request) {
	var exts []string
	if v := req.Param(0); v.Kind == codec.KindArray {
		_ = json.Unmarshal(v.Raw, &exts)
	}
	var opts map[string]json.RawMessage
	if v := req.Param(1); v.Kind == codec.KindObject {
		_ = json.Unmarshal(v.Raw, &opts)
	}
	result := []byte{'{'}
	rolling := false
	for _, e := range exts {
		if e == codec.VersionRollingExtension {
			rolling = true
		}
	}
	var granted uint32
	if rolling {
		requested := uint32(0xffffffff) // BIP310: an absent mask means "any"
		var s string
		if raw, ok := opts[codec.VersionRollingMaskKey]; ok && json.Unmarshal(raw, &s) == nil {
			if v, ok := codec.ParseHex32([]byte(s)); ok {
				requested = v
			}
		}
		granted = requested & p.cfg.VersionMask
		c.verMask = granted
		c.configured = true
		result = append(result, `"version-rolling":true,"version-rolling.mask":"`...)
		result = codec.AppendHex32(result, granted)
		result = append(result, '"')
	}
	for _, e := range exts {
		if e == codec.VersionRollingExtension {
			continue
		}
		if len(result) > 1 {
			result = append(result, ',')
		}
		result = strconv.AppendQuote(result, e)
		result = append(result, ":false"...)
	}
	result = append(result, '}')
	// sserver sends the mask notification right after the result, so an
	// agent knows its mask before the authorize reply (docs/PROTOCOL.md §3.5).
	c.replyLine(codec.AppendResult(nil, req.ID, string(result)))
	if rolling {
		c.replyLine(codec.AppendSetVersionMask(nil, granted))
	}
}

func (p *Pool) authorizeLocked(c *conn, req *codec.Request) {
	if !c.subscribed {
		c.replyLine(codec.AppendError(nil, req.ID, codec.StatusNotSubscribed, codec.StatusNotSubscribed.Text()))
		return
	}
	user := ""
	if v := req.Param(0); v.Kind == codec.KindString {
		user, _ = v.String()
	}
	user = codec.FilterName(user)
	if p.authFail {
		b := append([]byte(`{"id":`), idOrNull(req.ID)...)
		b = append(b, `,"result":false,"error":[29,"Invalid username",null]}`+"\n"...)
		c.replyLine(b)
		p.eventLocked(c.id, "authorize-refused", strconv.Quote(user))
		return
	}
	if c.authorized {
		// One identity per connection, as in sserver; a second authorize
		// is acknowledged and changes nothing.
		c.replyLine(codec.AppendTrue(nil, req.ID))
		return
	}
	c.authorized = true
	c.user = user
	c.subAccount = subAccountOf(user)
	if c.subAccount != "" {
		p.subAuth[c.subAccount]++
	}
	if c.agent {
		c.workers = make(map[uint16]*worker)
	} else {
		name := user
		if name == "" {
			name = codec.DefaultWorkerName
		}
		_, part, _ := strings.Cut(user, ".")
		c.plain = p.newWorkerLocked(c, name, part, 0, false, c.userAgent)
	}
	p.eventLocked(c.id, "authorize", strconv.Quote(user))
	// Reply, then the difficulty, then the current job with clean_jobs
	// true: the order sserver produces and miners expect (docs/PROTOCOL.md §3.5).
	out := codec.AppendTrue(nil, req.ID)
	out = codec.AppendSetDifficulty(out, p.startDiff)
	c.linesOut += 3
	c.send(true, out, p.cur.clean)
	p.tot.notifies++
}
