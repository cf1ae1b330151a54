// Package upstream is one pool link slot: an actor that keeps one BTCAgent
// connection to the first pool of its ordered list that accepts it, registers
// the miners the coordinator attaches, coalesces their shares into one write
// per flush window, and fans the pool's jobs and difficulties out to them in
// the pool's order. A lost link detaches its miners (the coordinator moves
// them) and reconnects with capped, jittered exponential backoff.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// Env configures one slot.
type Env struct {
	Slot             int
	Listener         string
	Route            msg.Route
	UserAgent        string
	Subres           bool
	FlushInterval    time.Duration
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	DeadAfter        time.Duration
	ReconnectMin     time.Duration
	ReconnectMax     time.Duration
	MaxLine          int
	Coordinator      *actor.PID
	Chain            *plugins.Chain
	Stats            *stats.Listener
	Gens             *atomic.Uint64 // process-wide link generation counter
	Log              logrus.FieldLogger
	// Root sends messages from the link's goroutines into the actor.
	Root *actor.RootContext
}

type attached struct {
	pid        *actor.PID
	agent      string
	worker     string
	mask       uint32
	registered bool
	st         *stats.Miner
}

type pending struct {
	miner *actor.PID
	reqID []byte
	diff  float64
	st    *stats.Miner
}

// Slot is the actor.
type Slot struct {
	env      *Env
	self     *actor.PID
	link     *link
	ready    bool
	dialing  bool
	attempt  int
	poolIdx  int
	lastErr  string
	attached map[uint16]*attached
	jobs     [256]*msg.Job
	latest   *msg.Job
	diff     float64
	mask     uint32

	out        []byte
	answers    []pending // optimistic mode: answered when their bytes are handed to the writer
	verdicts   map[uint16]pending
	index      uint16
	flushArmed bool
	cancel     context.CancelFunc
	since      time.Time
}

// New returns the slot's producer.
func New(env *Env) actor.Producer {
	return func() actor.Actor {
		return &Slot{env: env, attached: map[uint16]*attached{}, verdicts: map[uint16]pending{}}
	}
}

// messages from the link goroutines
type (
	linkUp struct {
		l    *link
		pool int
	}
	linkFailed struct {
		err  error
		pool int
	}
	linkDown struct {
		gen uint64
		err error
	}
	poolJob struct {
		gen uint64
		n   *codec.Notify
		at  time.Time
	}
	poolSetDiff struct {
		gen  uint64
		exp  uint8
		sids []uint16
	}
	poolVerdict struct {
		gen    uint64
		index  uint16
		status codec.Status
	}
	poolMask struct {
		gen  uint64
		mask uint32
	}
	flushNow struct{}
	redial   struct{}
	stateReq struct{}
)

// StateRequest asks a slot for its state (tests, API): reply is wire.UpstreamState.
type StateRequest = stateReq

// Receive dispatches.
func (s *Slot) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.self = ctx.Self()
		s.out = make([]byte, 0, 4096)
		s.startDial()
	case *wire.Attach:
		s.attach(ctx, m)
	case *wire.Detach:
		s.detach(ctx, m.SessionID)
	case *wire.Submit:
		s.submit(ctx, m)
	case *flushNow:
		s.flushArmed = false
		s.flush(ctx)
	case *linkUp:
		s.onUp(ctx, m)
	case *linkFailed:
		s.onFailed(ctx, m)
	case *linkDown:
		if s.link != nil && m.gen == s.link.gen {
			s.lost(ctx, m.err)
		}
	case *poolJob:
		if s.current(m.gen) {
			s.onJob(ctx, m.n, m.at)
		}
	case *poolSetDiff:
		if s.current(m.gen) {
			s.onSetDiff(ctx, m)
		}
	case *poolVerdict:
		if s.current(m.gen) {
			s.onVerdict(ctx, m)
		}
	case *poolMask:
		if s.current(m.gen) && m.mask != s.mask {
			s.mask = m.mask
			for _, a := range s.attached {
				ctx.Send(a.pid, &msg.VersionMaskSet{Mask: m.mask})
			}
		}
	case *redial:
		s.startDial()
	case *stateReq:
		ctx.Respond(s.state())
	case *actor.Stopping:
		if s.cancel != nil {
			s.cancel()
		}
		if s.link != nil {
			s.answerAll(ctx, "agent shutting down")
			s.link.close()
		}
	}
}

func (s *Slot) current(gen uint64) bool { return s.link != nil && s.link.gen == gen && s.ready }

func (s *Slot) log() logrus.FieldLogger {
	return s.env.Log.WithFields(logrus.Fields{"listener": s.env.Listener, "slot": s.env.Slot})
}

func (s *Slot) state() *wire.UpstreamState {
	st := &wire.UpstreamState{Slot: s.env.Slot, Route: s.env.Route.Name, Ready: s.ready, Miners: len(s.attached), Error: s.lastErr}
	if s.link != nil {
		st.Pool, st.Gen = s.link.name, s.link.gen
	}
	if !s.since.IsZero() {
		st.Since = s.since.Unix()
	}
	return st
}

// ---- connection lifecycle ----

func (s *Slot) startDial() {
	if s.dialing || s.link != nil {
		return
	}
	pools := s.env.Route.Pools
	if len(pools) == 0 {
		return
	}
	s.dialing = true
	idx := s.poolIdx % len(pools)
	p := pools[idx]
	user := p.User
	if user == "" {
		user = s.env.Route.PoolUser
	}
	params := dialParams{
		Pool: p, User: user, UserAgent: s.env.UserAgent, Subres: s.env.Subres,
		DialTimeout: s.env.DialTimeout, HandshakeTimeout: s.env.HandshakeTimeout, MaxLine: s.env.MaxLine,
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	root, self := s.env.Root, s.self
	go func() {
		l, err := dial(ctx, params)
		if err != nil {
			root.Send(self, &linkFailed{err: err, pool: idx})
			return
		}
		root.Send(self, &linkUp{l: l, pool: idx})
	}()
}

func (s *Slot) backoff() time.Duration {
	// One attempt per pool per step; the delay doubles after each full pass
	// over the list, capped, with ±20% jitter so that many slots (and many
	// farms) do not reconnect in lockstep.
	n := len(s.env.Route.Pools)
	if n == 0 {
		n = 1
	}
	pass := s.attempt / n
	d := s.env.ReconnectMin
	for i := 0; i < pass && d < s.env.ReconnectMax; i++ {
		d *= 2
	}
	if d > s.env.ReconnectMax {
		d = s.env.ReconnectMax
	}
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

func (s *Slot) scheduleRedial() {
	d := s.backoff()
	root, self := s.env.Root, s.self
	time.AfterFunc(d, func() { root.Send(self, &redial{}) })
}

func (s *Slot) onFailed(ctx actor.Context, m *linkFailed) {
	s.dialing = false
	reason := m.err.Error()
	if reason != s.lastErr || s.attempt%20 == 0 {
		s.log().WithField("attempt", s.attempt+1).Warn("pool link failed: " + reason)
	}
	s.lastErr = reason
	s.attempt++
	s.poolIdx = m.pool + 1
	s.env.Stats.Reconnects.Add(1)
	s.scheduleRedial()
}

func (s *Slot) onUp(ctx actor.Context, m *linkUp) {
	s.dialing = false
	l := m.l
	l.gen = s.env.Gens.Add(1)
	s.link, s.ready, s.attempt, s.lastErr = l, true, 0, ""
	s.poolIdx = m.pool
	s.since = time.Now()
	s.diff = l.hs.DefaultDiff
	s.mask = l.hs.Mask
	s.jobs = [256]*msg.Job{}
	s.latest = nil
	s.index = 0
	if m.pool > 0 {
		s.env.Stats.Failovers.Add(1)
	}
	stats := s.env.Stats
	l.startWriter(30*time.Second, func(n int) {
		stats.BytesUp.Add(int64(n))
		stats.Writes.Add(1)
	})
	s.log().WithFields(logrus.Fields{"pool": l.name, "en1": l.hs.EN1, "mask": codec.Hex32(l.hs.Mask), "subres": l.hs.Subres, "diff": l.hs.DefaultDiff}).Info("pool link ready")
	s.onJob(ctx, l.hs.FirstJob, time.Now())
	for _, b := range l.hs.Backlog {
		if n, ok := b.(*codec.Notify); ok {
			s.onJob(ctx, n, time.Now())
		}
	}
	// Miners attached while the link was down (or before it came up).
	for sid, a := range s.attached {
		s.register(ctx, sid, a)
	}
	s.flush(ctx)
	gen := l.gen
	root, self := s.env.Root, s.self
	go s.readLoop(l, gen, root, self)
	ctx.Send(s.env.Coordinator, &msg.UpstreamReady{Slot: s.env.Slot, Gen: gen, Pool: l.name, VersionMask: l.hs.Mask})
}

func (s *Slot) lost(ctx actor.Context, err error) {
	reason := "connection closed"
	if err != nil {
		reason = err.Error()
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			reason = fmt.Sprintf("pool silent for %s", s.env.DeadAfter)
		}
	}
	// The coordinator logs the loss once, with what it did about the miners.
	s.answerAll(ctx, "pool link lost before the share was confirmed")
	s.link.close()
	gen, name := s.link.gen, s.link.name
	s.link, s.ready = nil, false
	s.lastErr = reason
	sids := make([]uint16, 0, len(s.attached))
	for sid := range s.attached {
		sids = append(sids, sid)
	}
	s.attached = map[uint16]*attached{}
	ctx.Send(s.env.Coordinator, &msg.UpstreamLost{Slot: s.env.Slot, Gen: gen, Pool: name, Reason: reason, Miners: sids})
	s.env.Stats.Reconnects.Add(1)
	s.attempt = 1
	s.scheduleRedial()
}

// answerAll answers every share that has not been confirmed: nothing is ever
// answered true unless it reached the pool.
func (s *Slot) answerAll(ctx actor.Context, text string) {
	for _, p := range s.answers {
		s.answer(ctx, p, codec.StatusJobNotFoundOrStale, text, true)
	}
	s.answers = s.answers[:0]
	for idx, p := range s.verdicts {
		s.answer(ctx, p, codec.StatusJobNotFoundOrStale, text, true)
		delete(s.verdicts, idx)
	}
	s.out = s.out[:0]
}

func (s *Slot) readLoop(l *link, gen uint64, root *actor.RootContext, self *actor.PID) {
	// Keep the handshake reader: it may already hold bytes that followed the first job.
	r := l.reader
	r.SetSource(deadlineReader{conn: l.conn, d: s.env.DeadAfter})
	st := s.env.Stats
	var rq codec.Request
	for {
		c, err := r.Next()
		if err != nil {
			if werr := l.wErr.Load(); werr != nil {
				err = *werr
			}
			root.Send(self, &linkDown{gen: gen, err: err})
			return
		}
		if c.IsFrame {
			st.BytesDown.Add(int64(c.Frame.Len()))
			switch c.Frame.Cmd {
			case codec.CmdMiningSetDiff:
				d, err := codec.DecodeSetDiff(c.Frame)
				if err != nil {
					s.log().WithError(err).Warn("bad SET_DIFF frame from pool; ignored")
					continue
				}
				ids := make([]uint16, d.Count)
				for i := range ids {
					ids[i] = d.ID(i)
				}
				root.Send(self, &poolSetDiff{gen: gen, exp: d.Exp, sids: ids})
			case codec.CmdSubmitResponse:
				idx, status, err := codec.DecodeSubmitResponse(c.Frame)
				if err != nil {
					s.log().WithError(err).Warn("bad SUBMIT_RESPONSE frame from pool; ignored")
					continue
				}
				root.Send(self, &poolVerdict{gen: gen, index: idx, status: status})
			}
			continue
		}
		st.BytesDown.Add(int64(len(c.Line) + 1))
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			s.log().WithError(err).Warn("malformed JSON from pool; ignored")
			continue
		}
		switch string(rq.Method) {
		case codec.MethodNotify:
			n, err := codec.ParseNotify(&rq)
			if err != nil {
				s.log().WithError(err).Warn("bad job from pool; ignored")
				continue
			}
			root.Send(self, &poolJob{gen: gen, n: n, at: time.Now()})
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				root.Send(self, &poolMask{gen: gen, mask: v})
			}
		}
		// Later JSON set_difficulty lines are the agent connection's own
		// vardiff, which never sees shares; both reference agents ignore
		// them (§6.3) and so do we.
	}
}

// ---- miners ----

func (s *Slot) attach(ctx actor.Context, m *wire.Attach) {
	if !s.ready {
		// The link went down after the coordinator chose us: hand the miner back.
		ctx.Send(s.env.Coordinator, &wire.AttachRefused{Slot: s.env.Slot, SessionID: m.SessionID})
		return
	}
	a := &attached{pid: m.Miner, agent: m.UserAgent, worker: m.Worker, mask: m.VersionMask, st: m.Stats}
	if old, ok := s.attached[m.SessionID]; ok && old.registered {
		// sserver keeps the first registration of an id (emplace): unregister first.
		s.out = codec.AppendUnregisterWorker(s.out, m.SessionID)
	}
	s.attached[m.SessionID] = a
	s.register(ctx, m.SessionID, a)
	s.armFlush(ctx)
}

func (s *Slot) register(ctx actor.Context, sid uint16, a *attached) {
	s.out = codec.AppendRegisterWorker(s.out, sid, a.agent, a.worker)
	a.registered = true
	ctx.Send(a.pid, &wire.Attached{Upstream: s.self, Gen: s.link.gen, Pool: s.link.name})
	if a.mask != 0 {
		ctx.Send(a.pid, &msg.VersionMaskSet{Mask: s.mask})
	}
	ctx.Send(a.pid, &msg.DifficultySet{Difficulty: s.diff})
	if s.latest != nil {
		ctx.Send(a.pid, &msg.JobNotified{Job: s.latest, Clean: true})
	}
}

func (s *Slot) detach(ctx actor.Context, sid uint16) {
	a, ok := s.attached[sid]
	if !ok {
		return
	}
	delete(s.attached, sid)
	if s.ready && a.registered {
		s.out = codec.AppendUnregisterWorker(s.out, sid)
		s.armFlush(ctx)
	}
}

// ---- jobs and difficulty ----

func (s *Slot) onJob(ctx actor.Context, n *codec.Notify, at time.Time) {
	short, ok := codec.ParseJobID([]byte(n.JobID))
	if !ok {
		s.log().WithField("job", n.JobID).Warn("pool job id is not a decimal 0..255; the binary submit cannot carry it; job ignored")
		return
	}
	gen := s.link.gen
	id := strconv.FormatUint(gen, 16) + "." + n.JobID
	line := n.AppendLine(make([]byte, 0, len(n.Coinb1)+len(n.Coinb2)+80*len(n.Branches)+200), s.link.hs.EN1, n.Clean)
	j := &msg.Job{
		ID: id, PoolID: n.JobID, ShortID: short, Gen: gen, Notify: n, UpstreamEN1: s.link.hs.EN1,
		NTime: n.NTimeValue(), Version: n.VersionValue(), Received: at, Clean: n.Clean,
	}
	// The miner-facing id replaces the pool's so that a share can never be
	// matched to a same-numbered job of another link.
	mn := *n
	mn.JobID = id
	j.Line = mn.AppendLine(line[:0], s.link.hs.EN1, n.Clean)
	if n.Clean {
		j.CleanLine = j.Line
	} else {
		j.CleanLine = mn.AppendLine(nil, s.link.hs.EN1, true)
	}
	if hj, err := codec.NewHashJob(n, s.link.hs.EN1); err == nil {
		j.Hash = hj
	}
	s.env.Chain.OnJob(&msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
	s.jobs[short] = j
	s.latest = j
	for _, a := range s.attached {
		ctx.Send(a.pid, &msg.JobNotified{Job: j})
	}
	// The coordinator keeps the newest job as the template for placeholder work.
	ctx.Send(s.env.Coordinator, &msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
}

func (s *Slot) onSetDiff(ctx actor.Context, m *poolSetDiff) {
	d := &msg.DifficultySet{Difficulty: float64(uint64(1) << m.exp)}
	for _, sid := range m.sids {
		if a, ok := s.attached[sid]; ok {
			ctx.Send(a.pid, d)
		}
	}
}

// ---- shares ----

func (s *Slot) submit(ctx actor.Context, m *wire.Submit) {
	a, ok := s.attached[m.Share.SessionID]
	if !s.ready || m.Gen != s.link.gen || !ok || !a.registered {
		// Never write a share the pool would drop without a verdict: that would
		// shift every later SUBMIT_RESPONSE onto the wrong miner (§10.3).
		s.answer(ctx, pending{miner: m.Miner, reqID: m.ReqID, st: m.Stats}, codec.StatusJobNotFoundOrStale, "job belongs to a pool link that is gone", true)
		return
	}
	sh := codec.Share{
		JobID: m.Share.ShortJobID, SessionID: m.Share.SessionID, ExtraNonce2: m.Share.ExtraNonce2,
		Nonce: m.Share.Nonce, NTime: m.Share.NTime, VersionBits: m.Share.VersionBits,
		HasTime: m.Share.NTime != m.Share.JobNTime, HasVersion: m.Share.HasVersion,
	}
	s.out = codec.AppendSubmitShare(s.out, &sh)
	s.env.Stats.SharesSent.Add(1)
	p := pending{miner: m.Miner, reqID: m.ReqID, diff: m.Diff, st: m.Stats}
	if s.link.hs.Subres {
		s.verdicts[s.index] = p
		s.index++
	} else {
		s.answers = append(s.answers, p)
	}
	s.armFlush(ctx)
}

func (s *Slot) armFlush(ctx actor.Context) {
	if s.env.FlushInterval <= 0 {
		s.flush(ctx)
		return
	}
	if s.flushArmed {
		return
	}
	s.flushArmed = true
	root, self := s.env.Root, s.self
	time.AfterFunc(s.env.FlushInterval, func() { root.Send(self, &flushNow{}) })
}

func (s *Slot) flush(ctx actor.Context) {
	if s.link == nil || len(s.out) == 0 {
		return
	}
	next, ok := s.link.tryWrite(s.out)
	if !ok {
		// The writer is still busy (slow uplink): keep coalescing.
		s.armFlush(ctx)
		return
	}
	s.out = next
	for _, p := range s.answers {
		s.answer(ctx, p, codec.StatusAccept, "", false)
	}
	s.answers = s.answers[:0]
}

func (s *Slot) onVerdict(ctx actor.Context, m *poolVerdict) {
	p, ok := s.verdicts[m.index]
	if !ok {
		s.log().WithField("index", m.index).Debug("verdict for an unknown submit index; ignored")
		return
	}
	delete(s.verdicts, m.index)
	s.answer(ctx, p, m.status, "", false)
}

func (s *Slot) answer(ctx actor.Context, p pending, status codec.Status, text string, local bool) {
	st := s.env.Stats
	if status.Accepted() {
		st.Accepted.Add(1)
		st.AcceptedDiff.Add(p.diff)
		if p.st != nil {
			p.st.AddAccepted(p.diff, time.Now())
		}
	} else {
		st.Reject(status.Reason())
		if local {
			st.LocalRejected.Add(1)
		}
		if p.st != nil {
			p.st.Rejected.Add(1)
		}
	}
	ctx.Send(p.miner, &msg.ShareAnswered{ReqID: p.reqID, Status: status, Text: text, Local: local})
}
