// Package miner is the Stratum V1 server side: one actor per miner
// connection. It owns everything about its miner — subscription, worker name,
// version mask, difficulty, recent jobs, line framing and request rate — and
// talks to the rest of the agent only through typed messages: it asks the
// coordinator to place it, hands shares to the upstream link that serves it,
// and writes what the link sends (difficulty, jobs, verdicts) to its socket
// in the order it arrives.
//
// A session is an actor without a protoactor mailbox. Its mailbox is a lock
// and a run flag: a message is handled on the goroutine that delivers it
// when the session is idle (the event loop for the miner's bytes, a link's
// goroutine for jobs and verdicts) and queued for the running goroutine
// otherwise, so the session still handles one message at a time and never
// shares its state. That is protoactor's synchronized dispatcher without the
// per-actor context, queue nodes and message allocations, which at 10,000
// miners cost 0.85 KB each and three allocations per share
// (docs/ARCHITECTURE.md).
package miner

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/netio"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/subaccount"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// EN2Size is the extranonce2 size miners get: 4 of the pool's 8 bytes, the
// other 4 being the session id (docs/PROTOCOL.md §4.1).
const EN2Size = 4

// DefaultVersionMask is what a miner is offered before any upstream has told
// us the pool's mask; it is btcpool's default.
const DefaultVersionMask = 0x1fffe000

// jobRing is how many recent jobs a miner may still submit to.
const jobRing = 8

// Env is shared by all miners of a listener (read-only).
type Env struct {
	Listener     string
	Port         int
	PoolUser     string
	Root         *actor.RootContext // sends to the coordinator and link actors
	Coordinator  *actor.PID
	MaxLine      int // longest request line (0: codec.DefaultMaxLine)
	RateLimit    int // requests per second per miner (0: unlimited)
	Chain        *plugins.Chain
	Stats        *stats.Listener
	LoginTimeout time.Duration
	IdleTimeout  time.Duration
	Log          logrus.FieldLogger
	Debug        bool   // per-connection lines are debug-level: thousands of miners
	Limiter      Logger // rate-limited warnings for miner misbehaviour
	// PoolMask returns the version mask last granted by any upstream (0 if none yet).
	PoolMask func() uint32
	// MultiUser: the miner's name chooses its sub-account, within Allow
	// (nil admits every valid name), and the coordinator admits it
	// (wire.Admitted) before its authorize is answered.
	MultiUser bool
	Allow     *subaccount.AllowList
}

// Logger is the rate-limited logger interface (internal/logging.RateLimited).
type Logger interface {
	Warn(kind string, fields logrus.Fields, msg string)
}

// Conn is what a session needs of its socket (netio.Conn in production, a
// recorder in tests). Write must not block.
type Conn interface {
	Write(b []byte) error
	Close() error
	// CloseAfter writes a last message and closes the connection once it
	// is written (or after a short bound): a client.reconnect must reach
	// the miner, which a Write followed by Close does not promise when the
	// write is still queued.
	CloseAfter(b []byte)
	Remote() netip.AddrPort
}

// Start gives a session its connection; the accept path sends it right
// after the connection is on the event loop.
type Start struct{ Conn Conn }

// Data is a chunk of the miner's bytes that arrived while another goroutine
// was running the session (copied off the loop's buffer).
type Data struct{ B []byte }

// Closed reports the socket is gone.
type Closed struct{ Err error }

// Ping asks a session to answer on Reply once everything before it was
// handled (tests).
type Ping struct{ Reply chan Pong }

// Pong is the answer to Ping.
type Pong struct{ Authorized, Closing bool }

type jobEntry struct {
	job  *msg.Job
	diff float64
}

// Session is the miner actor.
//
// Field order matters for the job broadcast, which visits 10,000 sessions
// that are cold in the cache: everything it reads or writes (connection,
// mailbox, flags, job ring position, difficulty, latest job) sits in the
// first 80 bytes, so a miner costs two or three cache lines, not five
// (TestSessionBroadcastFieldsAreNear pins it).
type Session struct {
	env  *Env
	conn Conn

	// The mailbox: see the package comment.
	mu    sync.Mutex
	queue *[]any // messages that arrived while running (rare: nil otherwise)

	// The small fields together, so they share words. The flags:
	// running — a goroutine is handling a message (the mailbox);
	// started — a first non-blank byte arrived; done — torn down, the
	// coordinator has been told; parked — no link serves the miner.
	sid                             uint16
	en1                             [4]byte
	en2n                            uint8 // extranonce2 size; 0 means EN2Size (a link may change both, see setExtranonce)
	jobPos                          uint8
	stale                           uint8 // bit i: jobs[i] is from before the newest block
	badLines                        uint8
	running, started, done, parked  bool
	subscribed, authorized, closing bool
	extranonceSub, configured       bool
	lingering                       bool // closing after a last write (CloseAfter): no Close to cut it short

	diff   float64 // applies to the next job
	latest *msg.Job
	jobs   [jobRing]jobEntry

	split codec.Splitter
	emit  func(codec.Chunk) error // s.line, bound once
	rate  rateLimit

	en1s string
	info msg.MinerInfo

	upstream *actor.PID
	sink     wire.Sink  // the serving link's share buffer (agent links)
	multi    *multiAuth // multi-user listeners: the sub-account, once chosen

	scratch   msg.Scratch
	st        *stats.Miner
	connected int64 // unix nanos
	lastReq   int64 // unix nanos of the last request line

	askMask, sentMask, poolMask uint32
}

// Scratch space is pooled, not kept per session: a scanned request is ~700
// bytes and a reply buffer a few hundred, which at 10,000 idle miners would
// be megabytes held for nothing. Writes never keep the buffer (the event
// loop copies whatever the socket does not take at once).
var (
	reqPool = sync.Pool{New: func() any { return new(codec.Request) }}
	bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// New returns a session for a new connection with session id sid. It does
// nothing until it is delivered a Start (or its first bytes).
func New(env *Env, sid uint16, st *stats.Miner) *Session {
	s := &Session{env: env, sid: sid, st: st}
	s.split.MaxLine = env.MaxLine
	s.emit = s.line
	s.rate.init(env.RateLimit)
	s.en1 = [4]byte{0, 0, byte(sid >> 8), byte(sid)}
	s.en1s = codec.Hex32(uint32(sid))
	s.connected = time.Now().UnixNano()
	s.lastReq = s.connected
	s.info = msg.MinerInfo{SessionID: sid, Listener: env.Listener, Port: env.Port}
	if st != nil {
		s.info.Remote = st.Remote
	}
	return s
}

// ---- the mailbox ----

// enter claims the session for the calling goroutine, or queues m for the
// goroutine that is running it.
func (s *Session) enter(m func() any) bool {
	s.mu.Lock()
	if s.running {
		if s.queue == nil {
			s.queue = new([]any)
		}
		*s.queue = append(*s.queue, m())
		s.mu.Unlock()
		return false
	}
	s.running = true
	s.mu.Unlock()
	return true
}

// leave handles what was queued meanwhile, then releases the session.
func (s *Session) leave() {
	for {
		s.mu.Lock()
		if s.queue == nil || len(*s.queue) == 0 {
			s.running = false
			s.queue = nil
			s.mu.Unlock()
			return
		}
		q := *s.queue
		m := q[0]
		q[0] = nil
		*s.queue = q[1:]
		s.mu.Unlock()
		s.receive(m)
	}
}

// Tell delivers one message (see wire.Miner).
func (s *Session) Tell(m any) {
	if !s.enter(func() any { return m }) {
		return
	}
	s.receive(m)
	s.leave()
}

// AnswerShare relays a share's verdict (see wire.Miner).
func (s *Session) AnswerShare(reqID []byte, status codec.Status, text string) {
	if !s.enter(func() any {
		return &wire.ShareAnswered{ReqID: append([]byte(nil), reqID...), Status: status, Text: text}
	}) {
		return
	}
	func() {
		defer s.recoverPanic()
		s.answer(reqID, status, text)
	}()
	s.leave()
}

// OnData is the event loop's delivery of the miner's bytes.
func (s *Session) OnData(c *netio.Conn, data []byte) {
	if !s.enter(func() any { return &Data{B: append([]byte(nil), data...)} }) {
		return
	}
	if s.conn == nil {
		s.start(c)
	}
	s.onData(data)
	s.leave()
}

// OnClose is the event loop's report that the socket is gone.
func (s *Session) OnClose(_ *netio.Conn, err error) { s.Tell(&Closed{Err: err}) }

// recoverPanic stops only this miner when its handling panics (a plugin's
// panics are already caught by the chain; this is for the session's own).
func (s *Session) recoverPanic() {
	if r := recover(); r != nil {
		s.env.Log.WithFields(logrus.Fields{"sid": s.sid, "panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("miner session panicked; closing that miner")
		s.close("internal error")
	}
}

func (s *Session) receive(m any) {
	defer s.recoverPanic()
	switch m := m.(type) {
	case *Start:
		s.start(m.Conn)
	case *Data:
		s.onData(m.B)
	case *wire.ShareAnswered:
		s.answer(m.ReqID, m.Status, m.Text)
	case *wire.DifficultySet:
		s.diff = m.Difficulty
		s.st.Difficulty.Store(m.Difficulty)
		s.reply(func(d []byte) []byte { return codec.AppendSetDifficulty(d, m.Difficulty) })
	case *wire.JobNotified:
		s.onJob(m)
	case *wire.VersionMaskSet:
		s.onPoolMask(m.Mask)
	case *wire.Attached:
		// A slot that replaces its own link (failback, pool-requested
		// reconnect) keeps the old one open for late shares: jobs from the
		// same slot stay submittable and the slot routes them by generation.
		sameSlot := s.upstream != nil && m.Upstream != nil && s.upstream.Equal(m.Upstream)
		s.upstream, s.sink, s.parked = m.Upstream, m.Sink, false
		s.st.SetUpstream(m.Pool)
		if s.setExtranonce(m.EN1, m.EN2Size) || !sameSlot {
			// Jobs of another slot, or of another extranonce, can never be valid here.
			s.jobs = [jobRing]jobEntry{}
		}
	case *wire.Parked:
		s.upstream, s.sink, s.parked = nil, nil, true
		s.st.SetUpstream("")
	case *wire.Admitted:
		s.admitted(m)
	case *wire.Replay:
		s.upstream, s.sink, s.parked = nil, nil, true
		s.st.SetUpstream("")
		// A multi-user authorize still unanswered went with the old
		// coordinator: it is asked again too.
		if (s.authorized || s.multi != nil && s.multi.req != nil) && !s.done {
			s.env.Root.Send(s.env.Coordinator, s.authorizedMsg())
		}
	case *wire.Disconnect:
		if m.Reconnect && s.conn != nil && !s.closing {
			s.lingering = true
			s.conn.CloseAfter(codec.AppendReconnect(nil))
		}
		s.close(m.Reason)
	case *wire.Tick:
		s.tick(time.Unix(0, m.UnixNano))
	case *Closed:
		s.closing = true
		s.teardown()
	case *Ping:
		m.Reply <- Pong{Authorized: s.authorized, Closing: s.closing}
	}
}

func (s *Session) start(c Conn) {
	if s.conn != nil || c == nil {
		return
	}
	s.conn = c
	s.info.Remote = c.Remote()
	if s.st != nil {
		s.env.Stats.AddMiner(s.st)
	}
	if s.done {
		_ = c.Close() // closed before its connection was handed over
	}
}

// ---- bytes and lines ----

func (s *Session) onData(data []byte) {
	defer s.recoverPanic()
	if s.closing {
		return
	}
	if !s.started {
		// A Stratum client's first byte is '{'. TLS hellos, binary probes and
		// the like may never send a newline: close them now instead of
		// holding the connection and its session id until the login timeout.
		rest := bytes.TrimLeft(data, " \t\r\n")
		if len(rest) == 0 {
			return
		}
		s.started = true
		if rest[0] != '{' {
			s.env.Limiter.Warn("not-stratum", logrus.Fields{"remote": s.info.Remote.String()}, "non-Stratum data from a miner connection; closing it")
			s.close("not stratum")
			return
		}
	}
	err := s.split.Feed(data, s.emit)
	if err == nil || s.closing {
		return
	}
	switch {
	case errors.Is(err, codec.ErrLineTooLong):
		s.env.Limiter.Warn("line-too-long", logrus.Fields{"remote": s.info.Remote.String()}, "miner sent a line over the length cap; closing")
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, nil, codec.StatusIllegalParams, "request line too long")
		})
	case errors.Is(err, errFlood):
		s.env.Limiter.Warn("request-flood", logrus.Fields{"remote": s.info.Remote.String()}, "miner kept exceeding the request rate limit; closing")
	}
	s.close(err.Error())
}

var errFlood = errors.New("sustained request flood")

// line handles one framed line (the splitter's callback).
func (s *Session) line(ch codec.Chunk) error {
	if s.closing {
		return errClosing
	}
	now := time.Now()
	switch s.rate.take(now) {
	case rateDrop:
		s.env.Stats.RateDropped.Add(1)
		return nil
	case rateKick:
		return errFlood
	}
	s.handleLine(ch.Line, now)
	return nil
}

var errClosing = errors.New("closing")

// reply builds a message in a pooled buffer and writes it.
func (s *Session) reply(build func(dst []byte) []byte) {
	bp := bufPool.Get().(*[]byte)
	b := build((*bp)[:0])
	s.write(b)
	*bp = b[:0]
	bufPool.Put(bp)
}

func (s *Session) write(b []byte) {
	if s.conn == nil || s.closing {
		return
	}
	if err := s.conn.Write(b); err != nil {
		s.closing = true
		if errors.Is(err, netio.ErrWriteOverflow) {
			s.env.Limiter.Warn("slow-miner", logrus.Fields{"remote": s.info.Remote.String(), "worker": s.info.Worker}, "miner stopped reading; its output queue overflowed, disconnecting it")
		}
		_ = s.conn.Close()
	}
}

func (s *Session) close(reason string) {
	if s.closing {
		return
	}
	s.closing = true
	if s.conn != nil && !s.lingering {
		_ = s.conn.Close()
	}
	if s.env.Debug {
		s.env.Log.WithFields(logrus.Fields{"sid": s.sid, "remote": s.info.Remote.String(), "reason": reason}).Debug("miner disconnected")
	}
	s.teardown()
}

// teardown tells the coordinator (which frees the session id) and the
// plugins that the miner is gone; it runs once, on the first of close and
// the loop's Closed.
func (s *Session) teardown() {
	if s.done {
		return
	}
	s.done = true
	if s.conn != nil && !s.lingering {
		_ = s.conn.Close()
	}
	if s.st != nil {
		s.env.Stats.RemoveMiner(s.sid)
	}
	s.sink, s.upstream = nil, nil
	s.env.Root.Send(s.env.Coordinator, &wire.MinerGone{SessionID: s.sid, Reason: "closed"})
	s.env.Chain.OnMinerGone(&s.info)
}

func (s *Session) tick(now time.Time) {
	if s.conn == nil {
		// The coordinator knows the session before its Start arrives: a
		// tick in between must not read the zero connect time as a timeout.
		return
	}
	if !s.authorized && s.env.LoginTimeout > 0 && now.Sub(time.Unix(0, s.connected)) > s.env.LoginTimeout {
		s.env.Limiter.Warn("login-timeout", logrus.Fields{"remote": s.info.Remote.String()}, "miner did not subscribe and authorize in time; closing")
		s.close("login timeout")
		return
	}
	if s.authorized && s.env.IdleTimeout > 0 && now.Sub(time.Unix(0, s.lastReq)) > s.env.IdleTimeout {
		s.env.Limiter.Warn("idle-timeout", logrus.Fields{"remote": s.info.Remote.String(), "worker": s.info.Worker}, "miner silent past the idle timeout; closing")
		s.close("idle timeout")
	}
}

// String is for debugging.
func (s *Session) String() string { return fmt.Sprintf("miner(%d %s)", s.sid, s.info.Worker) }
