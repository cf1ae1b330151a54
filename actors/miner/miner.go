// Package miner is the Stratum V1 server side: one actor per miner
// connection. It owns everything about its miner — subscription, worker name,
// version mask, difficulty, recent jobs — and talks to the rest of the agent
// only through typed messages: it asks the coordinator to place it, sends
// shares to the upstream link that serves it, and writes what the link sends
// (difficulty, jobs, verdicts) to its socket in the order it arrives.
package miner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/netio"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// EN2Size is the extranonce2 size miners get: 4 of the pool's 8 bytes, the
// other 4 being the session id (agent-protocol.md §4.1).
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
	Coordinator  *actor.PID
	Chain        *plugins.Chain
	Stats        *stats.Listener
	LoginTimeout time.Duration
	IdleTimeout  time.Duration
	Log          logrus.FieldLogger
	Debug        bool   // per-connection lines are debug-level: thousands of miners
	Limiter      Logger // rate-limited warnings for miner misbehaviour
	// PoolMask returns the version mask last granted by any upstream (0 if none yet).
	PoolMask func() uint32
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
	Remote() netip.AddrPort
}

// Start is the first message a session gets: its connection and identity.
type Start struct {
	Conn      Conn
	SessionID uint16
	Stats     *stats.Miner
}

// Line is one request line from the miner (copied off the event loop).
type Line struct{ B []byte }

// Closed reports the socket is gone.
type Closed struct{ Err error }

// Ping asks a session to answer Pong once everything before it was handled (tests).
type Ping struct{}

// Pong is the answer to Ping.
type Pong struct{ Authorized, Closing bool }

// Kick closes a misbehaving connection from the event loop side.
type Kick struct{ Reason string }

type jobEntry struct {
	job        *msg.Job
	diff       float64
	staleBlock bool
}

// Session is the miner actor.
type Session struct {
	env  *Env
	conn Conn
	sid  uint16
	en1  [4]byte
	en1s string
	en2n int // extranonce2 size; 0 means EN2Size (a link may change both, see setExtranonce)

	subscribed, authorized, closing bool
	extranonceSub                   bool
	info                            msg.MinerInfo
	askMask, sentMask, poolMask     uint32
	configured                      bool

	upstream *actor.PID
	gen      uint64
	parked   bool

	diff      float64 // applies to the next job
	jobs      [jobRing]jobEntry
	jobPos    int
	latest    *msg.Job
	scratch   msg.Scratch
	st        *stats.Miner
	connected time.Time
	lastReq   time.Time
	badLines  int
}

// Scratch space is pooled, not kept per session: a scanned request is ~700
// bytes and a reply buffer a few hundred, which at 10,000 idle miners would
// be megabytes held for nothing. Writes never keep the buffer (the event
// loop copies whatever the socket does not take at once).
var (
	reqPool = sync.Pool{New: func() any { return new(codec.Request) }}
	bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}
)

// New returns a producer for session actors of one listener.
func New(env *Env) actor.Producer {
	return func() actor.Actor { return &Session{env: env} }
}

// Receive dispatches one message.
func (s *Session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Start:
		s.start(ctx, m)
	case *Line:
		s.handleLine(ctx, m.B)
	case *msg.DifficultySet:
		s.diff = m.Difficulty
		s.st.Difficulty.Store(m.Difficulty)
		s.reply(func(d []byte) []byte { return codec.AppendSetDifficulty(d, m.Difficulty) })
	case *msg.JobNotified:
		s.onJob(m)
	case *msg.VersionMaskSet:
		s.onPoolMask(m.Mask)
	case *msg.ShareAnswered:
		s.onAnswer(m)
	case *wire.Attached:
		// A slot that replaces its own link (failback, pool-requested
		// reconnect) keeps the old one open for late shares: jobs from the
		// same slot stay submittable and the slot routes them by generation.
		sameSlot := s.upstream != nil && m.Upstream != nil && s.upstream.Equal(m.Upstream)
		s.upstream, s.gen, s.parked = m.Upstream, m.Gen, false
		s.st.SetUpstream(m.Pool)
		if s.setExtranonce(m.EN1, m.EN2Size) || !sameSlot {
			// Jobs of another slot, or of another extranonce, can never be valid here.
			s.jobs = [jobRing]jobEntry{}
		}
	case *wire.Parked:
		s.upstream, s.gen, s.parked = nil, 0, true
		s.st.SetUpstream("")
	case *msg.Disconnect:
		if m.Reconnect {
			s.reply(func(d []byte) []byte { return codec.AppendReconnect(d) })
		}
		s.close(ctx, m.Reason)
	case *wire.Tick:
		s.tick(ctx, time.Unix(0, m.UnixNano))
	case *Kick:
		s.close(ctx, m.Reason)
	case *Closed:
		s.closing = true
		ctx.Stop(ctx.Self())
	case *Ping:
		ctx.Respond(&Pong{Authorized: s.authorized, Closing: s.closing})
	case *actor.Stopping:
		s.teardown(ctx)
	}
}

func (s *Session) start(ctx actor.Context, m *Start) {
	s.conn, s.sid = m.Conn, m.SessionID
	s.en1 = [4]byte{0, 0, byte(m.SessionID >> 8), byte(m.SessionID)}
	s.en1s = codec.Hex32(uint32(m.SessionID))
	s.connected = time.Now()
	s.lastReq = s.connected
	s.info = msg.MinerInfo{SessionID: m.SessionID, Listener: s.env.Listener, Port: s.env.Port, Remote: m.Conn.Remote()}
	s.st = m.Stats
	s.env.Stats.AddMiner(s.st)
}

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
		if err == netio.ErrWriteOverflow {
			s.env.Limiter.Warn("slow-miner", logrus.Fields{"remote": s.info.Remote.String(), "worker": s.info.Worker}, "miner stopped reading; its output queue overflowed, disconnecting it")
		}
		_ = s.conn.Close()
	}
}

func (s *Session) close(ctx actor.Context, reason string) {
	if s.closing {
		return
	}
	s.closing = true
	if s.conn != nil {
		_ = s.conn.Close()
	}
	if s.env.Debug {
		s.env.Log.WithFields(logrus.Fields{"sid": s.sid, "remote": s.info.Remote.String(), "reason": reason}).Debug("miner disconnected")
	}
	ctx.Stop(ctx.Self())
}

func (s *Session) teardown(ctx actor.Context) {
	if s.conn != nil {
		_ = s.conn.Close()
	}
	if s.st != nil {
		s.env.Stats.RemoveMiner(s.sid)
	}
	ctx.Send(s.env.Coordinator, &msg.MinerGone{SessionID: s.sid, Reason: "closed"})
	s.env.Chain.OnMinerGone(&s.info)
}

func (s *Session) tick(ctx actor.Context, now time.Time) {
	if s.conn == nil {
		// The coordinator knows the session before its Start arrives: a
		// tick in between must not read the zero connect time as a timeout.
		return
	}
	if !s.authorized && s.env.LoginTimeout > 0 && now.Sub(s.connected) > s.env.LoginTimeout {
		s.env.Limiter.Warn("login-timeout", logrus.Fields{"remote": s.info.Remote.String()}, "miner did not subscribe and authorize in time; closing")
		s.close(ctx, "login timeout")
		return
	}
	if s.authorized && s.env.IdleTimeout > 0 && now.Sub(s.lastReq) > s.env.IdleTimeout {
		s.env.Limiter.Warn("idle-timeout", logrus.Fields{"remote": s.info.Remote.String(), "worker": s.info.Worker}, "miner silent past the idle timeout; closing")
		s.close(ctx, "idle timeout")
	}
}

// ---- requests ----

func (s *Session) handleLine(ctx actor.Context, line []byte) {
	if s.closing {
		return
	}
	s.lastReq = time.Now()
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	if line[0] != '{' {
		// HTTP probes, TLS hellos and port scanners: not Stratum, nothing to answer.
		s.env.Limiter.Warn("not-stratum", logrus.Fields{"remote": s.info.Remote.String()}, "non-Stratum data from a miner connection; closing it")
		s.close(ctx, "not stratum")
		return
	}
	r := reqPool.Get().(*codec.Request)
	defer reqPool.Put(r)
	if err := codec.ScanRequest(line, r); err != nil {
		s.badLines++
		s.env.Limiter.Warn("bad-json", logrus.Fields{"remote": s.info.Remote.String(), "error": err.Error()}, "malformed JSON from a miner")
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, nil, codec.StatusIllegalParams, "malformed JSON: "+err.Error())
		})
		if s.badLines >= 10 {
			s.close(ctx, "too many malformed lines")
		}
		return
	}
	if r.IsResponse() {
		return // a reply to something we sent (e.g. client.get_version); nothing to do
	}
	switch string(r.Method) {
	case codec.MethodSubmit:
		s.submit(ctx, r)
	case codec.MethodSubscribe:
		s.subscribe(r)
	case codec.MethodAuthorize:
		s.authorize(ctx, r)
	case codec.MethodConfigure:
		s.configure(r)
	case codec.MethodSuggestDifficulty, codec.MethodSuggestTarget:
		// The BTCAgent protocol has no way to pass a per-miner hint upstream
		// (§8.3); say so honestly instead of pretending.
		s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, "false") })
	case codec.MethodExtranonceSub:
		s.extranonceSub = true
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
	case codec.MethodMultiVersion:
		s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, "false") })
	default:
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, r.ID, codec.StatusIllegalParams, "unsupported method "+truncate(string(r.Method), 40))
		})
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *Session) subscribe(r *codec.Request) {
	if r.NParams > 0 {
		if ua, err := r.Param(0).String(); err == nil {
			s.info.UserAgent = codec.PrintableUA(ua) // miner-chosen: bounded and printable for the API, logs and plugins
		}
	}
	s.subscribed = true
	s.reply(func(d []byte) []byte { return codec.AppendSubscribeResult(d, r.ID, s.en1s, s.en2Size()) })
}

func (s *Session) en2Size() int {
	if s.en2n > 0 {
		return s.en2n
	}
	return EN2Size
}

// setExtranonce switches the miner to the extranonce a link gives it (""
// means its own: "%08x" of the session id, 4 bytes) and tells a subscribed
// miner with mining.set_extranonce; it applies from the next job, which the
// link sends right after.
func (s *Session) setExtranonce(en1 string, size int) (changed bool) {
	if en1 == "" {
		en1, size = codec.Hex32(uint32(s.sid)), EN2Size
	}
	if en1 == s.en1s && size == s.en2Size() {
		return false
	}
	s.en1s, s.en2n = en1, size
	s.en1 = [4]byte{}
	if b, err := codec.DecodeHex(en1); err == nil && len(b) == 4 {
		copy(s.en1[:], b)
	}
	if s.extranonceSub && s.subscribed {
		s.reply(func(d []byte) []byte {
			d = append(d, `{"id":null,"method":"mining.set_extranonce","params":["`...)
			d = append(d, en1...)
			d = append(d, `",`...)
			d = strconv.AppendInt(d, int64(size), 10)
			return append(d, "]}\n"...)
		})
	}
	return true
}

func (s *Session) configure(r *codec.Request) {
	var exts []string
	var opts map[string]json.RawMessage
	if r.NParams >= 1 {
		_ = json.Unmarshal(r.Param(0).Raw, &exts)
	}
	if r.NParams >= 2 {
		_ = json.Unmarshal(r.Param(1).Raw, &opts)
	}
	res := make([]byte, 0, 128)
	res = append(res, '{')
	wantVR := false
	for i, e := range exts {
		if i > 0 {
			res = append(res, ',')
		}
		if e == codec.VersionRollingExtension {
			wantVR = true
			mask := uint32(0xffffffff)
			if raw, ok := opts[codec.VersionRollingMaskKey]; ok {
				var hexMask string
				if json.Unmarshal(raw, &hexMask) == nil {
					if v, ok := codec.ParseHex32([]byte(hexMask)); ok {
						mask = v
					}
				}
			}
			s.askMask, s.configured = mask, true
			granted := mask & s.grantable()
			s.sentMask = granted
			res = append(res, `"version-rolling":true,"version-rolling.mask":"`...)
			res = codec.AppendHex32(res, granted)
			res = append(res, '"')
			continue
		}
		res = append(res, '"')
		res = append(res, jsonSafe(e)...)
		res = append(res, `":false`...)
	}
	res = append(res, '}')
	s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, string(res)) })
	if wantVR {
		s.reply(func(d []byte) []byte { return codec.AppendSetVersionMask(d, s.sentMask) })
	}
}

func jsonSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return -1
		}
		return r
	}, s)
}

// grantable is the pool's mask as best we know it.
func (s *Session) grantable() uint32 {
	if s.poolMask != 0 {
		return s.poolMask
	}
	if s.env.PoolMask != nil {
		if m := s.env.PoolMask(); m != 0 {
			return m
		}
	}
	return DefaultVersionMask
}

func (s *Session) onPoolMask(mask uint32) {
	s.poolMask = mask
	if !s.configured {
		return
	}
	if granted := s.askMask & mask; granted != s.sentMask {
		s.sentMask = granted
		s.reply(func(d []byte) []byte { return codec.AppendSetVersionMask(d, granted) })
	}
}

func (s *Session) authorize(ctx actor.Context, r *codec.Request) {
	user, err := r.Param(0).String()
	if err != nil {
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, r.ID, codec.StatusIllegalParams, "worker name must be a string")
		})
		return
	}
	if s.authorized {
		// One worker per connection: a second authorize is acknowledged and
		// its shares counted under the first name.
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
		return
	}
	pw, _ := r.Param(1).String()
	a := &msg.MinerAuthorizing{Info: s.info, Password: pw, Scratch: &s.scratch}
	a.Info.User = user
	a.Info.Worker = codec.SplitWorker(user)
	switch s.env.Chain.OnAuthorize(a) {
	case msg.Reject:
		code, text := a.Code, a.Text
		if code == 0 {
			code = codec.StatusUnauthorized
		}
		if text == "" {
			text = code.Text()
		}
		s.reply(func(d []byte) []byte { return codec.AppendError(d, r.ID, code, text) })
		return
	case msg.Drop:
		s.close(ctx, "refused by plugin")
		return
	}
	agent, worker := codec.FitRegister(s.info.UserAgent, a.Info.Worker)
	s.info.User, s.info.Worker = user, worker
	s.authorized = true
	s.st.SetIdentity(s.info.UserAgent, s.env.PoolUser+"."+worker)
	s.env.Stats.MinersAuth.Add(1)
	s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
	mask := uint32(0)
	if s.configured {
		mask = s.askMask
	}
	info := s.info
	info.UserAgent = agent
	ctx.Send(s.env.Coordinator, &msg.MinerAuthorized{Info: info, VersionMask: mask, ExtranonceSub: s.extranonceSub})
}

// ---- jobs ----

func (s *Session) onJob(m *msg.JobNotified) {
	j := m.Job
	clean := m.Clean || j.Clean
	if clean {
		for i := range s.jobs {
			s.jobs[i].staleBlock = s.jobs[i].job != nil
		}
	}
	s.jobPos = (s.jobPos + 1) % jobRing
	s.jobs[s.jobPos] = jobEntry{job: j, diff: s.diff}
	s.latest = j
	if m.Clean && !j.Clean {
		s.write(j.CleanLine)
	} else {
		s.write(j.Line)
	}
	if !j.Received.IsZero() && s.env.Stats.FanoutNanos != nil {
		s.env.Stats.FanoutNanos.Observe(time.Since(j.Received))
	}
}

func (s *Session) findJob(id []byte) *jobEntry {
	for i := 0; i < jobRing; i++ {
		e := &s.jobs[(s.jobPos-i+jobRing)%jobRing]
		if e.job != nil && e.job.ID == string(id) {
			return e
		}
	}
	return nil
}

// ---- shares ----

func (s *Session) reject(id []byte, code codec.Status, text, reason string) {
	s.st.Rejected.Add(1)
	s.env.Stats.LocalRejected.Add(1)
	s.env.Stats.Reject(reason)
	if text == "" {
		text = code.Text()
	}
	s.reply(func(d []byte) []byte { return codec.AppendError(d, id, code, text) })
}

func (s *Session) submit(ctx actor.Context, r *codec.Request) {
	if !s.subscribed {
		s.reject(r.ID, codec.StatusNotSubscribed, "", "unauthorized")
		return
	}
	if !s.authorized {
		s.reject(r.ID, codec.StatusUnauthorized, "", "unauthorized")
		return
	}
	sub, err := codec.ParseSubmit(r, s.en2Size())
	if err != nil {
		s.reject(r.ID, codec.StatusIllegalParams, err.Error(), "illegal_params")
		return
	}
	e := s.findJob(sub.JobID)
	if e == nil {
		s.reject(r.ID, codec.StatusJobNotFoundOrStale, "", "stale")
		return
	}
	job := e.job
	if job.Fake {
		// Placeholder work during an outage: answered here, never forwarded, counted as unpaid.
		s.env.Stats.FakeAnswered.Add(1)
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
		return
	}
	if s.upstream == nil {
		s.reject(r.ID, codec.StatusJobNotFoundOrStale, "job belongs to a pool link that is gone", "stale")
		return
	}
	bits := uint32(0)
	if sub.HasVersion {
		bits = sub.VersionBits
	}
	if s.env.Chain.HasSubmitHooks() {
		h := &msg.ShareSubmitted{
			Info: &s.info, Job: job, Difficulty: e.diff, MinerEN1: s.en1,
			ExtraNonce2: sub.ExtraNonce2, NTime: sub.NTime, Nonce: sub.Nonce,
			VersionBits: bits, HasVersion: sub.HasVersion && bits != 0, VersionMask: s.sentMask,
			Latest: job == s.latest, StaleBlock: e.staleBlock, Scratch: &s.scratch, Now: s.lastReq,
		}
		v := s.env.Chain.OnSubmit(h)
		if h.Reconnect {
			defer s.write(codec.AppendReconnect(nil))
		}
		if v != msg.Continue {
			code := h.Code
			if code == 0 {
				code = codec.StatusRejectNoReason
			}
			s.reject(r.ID, code, h.Text, code.Reason())
			return
		}
	}
	ctx.Send(s.upstream, &wire.Submit{
		Miner: ctx.Self(),
		ReqID: append([]byte(nil), r.ID...),
		Gen:   job.Gen,
		Share: wire.ShareFields{
			SessionID: s.sid, ShortJobID: job.ShortID, ExtraNonce2: sub.ExtraNonce2,
			Nonce: sub.Nonce, NTime: sub.NTime, JobNTime: job.NTime,
			VersionBits: bits, HasVersion: bits != 0,
		},
		Diff:  e.diff,
		Stats: s.st,
	})
}

func (s *Session) onAnswer(m *msg.ShareAnswered) {
	if m.Status.Accepted() {
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, m.ReqID) })
		return
	}
	text := m.Text
	if text == "" {
		text = m.Status.Text()
	}
	s.reply(func(d []byte) []byte { return codec.AppendError(d, m.ReqID, m.Status, text) })
}

// String is for debugging.
func (s *Session) String() string { return fmt.Sprintf("miner(%d %s)", s.sid, s.info.Worker) }
