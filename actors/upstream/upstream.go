// Package upstream is one pool link slot: an actor that keeps a connection
// to the first pool of its ordered list that accepts it, places the miners
// the coordinator attaches on it, and fans the pool's jobs and difficulties
// out to them in the pool's order. A lost link detaches its miners (the
// coordinator moves them) and reconnects with capped, jittered exponential
// backoff; while on a backup pool the slot periodically tries the better
// ones and moves its miners back when one answers (failback).
//
// Each pool entry names its protocol, and the slot speaks the same message
// protocol to the coordinator and the miners whichever it is:
//
//   - agent: the BTCAgent protocol (link.go, agent.go). One connection for
//     all the slot's miners: REGISTER_WORKER per miner, binary submits
//     coalesced per flush window, SET_DIFF per miner, SUBMIT_RESPONSE verdicts.
//   - stratum: plain Stratum V1 (stratum.go), one connection for all the
//     slot's miners, authorized as "<pool user>.<listener>". The pool must give
//     an extranonce2 of at least 8 bytes: miners keep the agent layout (EN1
//     "0000SSSS", EN2 4 bytes) and the session id travels inside the pool's
//     EN2, so miners move between agent and stratum links without noticing.
//     The pool's difficulty and verdicts apply per connection; per-miner
//     statistics stay local.
//   - stratum-per-miner: the slot keeps a control connection (it proves the
//     pool is up and gives failover and failback something to hold on to) and
//     opens one more connection per attached miner, authorized as
//     "<pool user>.<worker>" (perminer.go).
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/proxydial"
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
	// FailbackInterval is how often a slot serving from a backup pool tries
	// the better pools of its list; 0 disables failback.
	FailbackInterval time.Duration
	// StratumWorker is the worker part of "<pool user>.<worker>" for
	// aggregated stratum links; default: the listener's name.
	StratumWorker string
	MaxLine       int
	Coordinator   *actor.PID
	Chain         *plugins.Chain
	Stats         *stats.Listener
	Gens          *atomic.Uint64 // process-wide link generation counter
	Log           logrus.FieldLogger
	// Root sends messages from the link's goroutines into the actor.
	Root *actor.RootContext
	// Loop flushes agent links' share buffers (nil: a timer per window).
	Loop FlushLoop
}

type attached struct {
	miner  wire.Miner
	agent  string
	worker string
	mask   uint32
	xsub   bool // the miner accepts mining.set_extranonce
	st     *stats.Miner
	cur    *link  // the link serving it (nil while its per-miner link is dialed)
	want   uint64 // per-miner: the dial in progress for it (0: none)
}

// Slot is the actor.
type Slot struct {
	env        *Env
	self       *actor.PID
	ctx        context.Context
	stop       context.CancelFunc
	link       *link            // the main link; the slot is ready while it is set
	links      map[uint64]*link // every open link by generation: main, retiring, per-miner
	retired    []*link          // main links being retired
	ready      bool
	dialing    bool
	attempt    int
	poolIdx    int
	lastErr    string
	lastErrKey string // lastErr without socket addresses, for log de-duplication
	upAttempt  int    // the failover attempt count when the current link came up
	attached   map[uint16]*attached
	since      time.Time

	switching     bool // a failback or reconnect dial is in flight
	wantReconnect bool // the pool asked for a reconnect during that dial
	failbackArmed bool

	dialQ   []uint16 // per-miner links waiting for a dial slot
	dials   int      // per-miner dials in flight
	dialSeq uint64

	logged map[string]time.Time // rate-limited warnings
	quiet  map[string]int

	jobWarn limiter // malformed jobs, logged from the link goroutines
}

// New returns the slot's producer.
func New(env *Env) actor.Producer {
	return func() actor.Actor {
		return &Slot{env: env, attached: map[uint16]*attached{}, links: map[uint64]*link{}}
	}
}

type upKind uint8

const (
	upMain   upKind = iota // the slot's (re)connect
	upSwitch               // failback or pool-requested reconnect: replaces a working link
)

// messages from the link goroutines
type (
	linkUp struct {
		l    *link
		pool int
		kind upKind
		why  string
	}
	linkFailed struct {
		err  error
		pool int
		kind upKind
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
	poolMask struct {
		gen  uint64
		mask uint32
	}
	flushNow     struct{ gen uint64 }
	retireCheck  struct{ gen uint64 }
	failbackTick struct{}
	redial       struct{}
)

// Receive dispatches.
func (s *Slot) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.self = ctx.Self()
		s.ctx, s.stop = context.WithCancel(context.Background())
		s.startDial()
	case *wire.Attach:
		s.attach(ctx, m)
	case *wire.Detach:
		s.detach(ctx, m.SessionID)
	case *wire.Submit:
		s.submit(ctx, m)
	case *flushNow:
		if l := s.links[m.gen]; l != nil {
			l.flushArmed = false
			s.flush(ctx, l)
		}
	case *linkUp:
		if m.kind == upSwitch {
			s.onSwitchUp(ctx, m)
		} else {
			s.onUp(ctx, m.l, m.pool)
		}
	case *linkFailed:
		if m.kind == upSwitch {
			s.onSwitchFailed(ctx, m)
		} else {
			s.onFailed(ctx, m)
		}
	case *minerUp:
		s.onMinerUp(ctx, m)
	case *linkDown:
		if l := s.links[m.gen]; l != nil {
			s.down(ctx, l, m.err)
		}
	case *poolJob:
		if l := s.live(m.gen); l != nil {
			s.onJob(ctx, l, m.n, m.at)
		}
	case *poolSetDiff:
		if l := s.live(m.gen); l != nil {
			s.onSetDiff(ctx, l, m)
		}
	case *poolMask:
		if l := s.live(m.gen); l != nil {
			s.onMask(ctx, l, m.mask)
		}
	case *stratumDiff:
		if l := s.live(m.gen); l != nil {
			s.onStratumDiff(ctx, l, m.d)
		}
	case *stratumReply:
		if l := s.links[m.gen]; l != nil {
			s.onStratumReply(ctx, l, m)
		}
	case *stratumExtranonce:
		if l := s.live(m.gen); l != nil {
			s.onExtranonce(ctx, l, m.en1, m.size)
		}
	case *stratumReconnect:
		if l := s.live(m.gen); l != nil {
			s.reconnect(ctx, l, "the pool sent client.reconnect")
		}
	case *retireCheck:
		if l := s.links[m.gen]; l != nil {
			s.checkRetire(ctx, l, true)
		}
	case *failbackTick:
		s.onFailbackTick()
	case *redial:
		s.startDial()
	case *actor.Stopping:
		if s.stop != nil {
			s.stop()
		}
		for _, l := range s.links {
			s.answerAll(ctx, l, "agent shutting down")
			s.closeLink(l)
		}
		s.links = map[uint64]*link{}
	}
}

// live returns the open, not retiring link of this generation.
func (s *Slot) live(gen uint64) *link {
	if l := s.links[gen]; l != nil && !l.retiring {
		return l
	}
	return nil
}

func (s *Slot) log() logrus.FieldLogger {
	return s.env.Log.WithFields(logrus.Fields{"listener": s.env.Listener, "slot": s.env.Slot})
}

// warnLimited logs a warning of this kind at most once a minute, with the
// number of occurrences it stood for.
func (s *Slot) warnLimited(kind string, f logrus.Fields, text string) {
	if s.logged == nil {
		s.logged, s.quiet = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if t, ok := s.logged[kind]; ok && now.Sub(t) < time.Minute {
		s.quiet[kind]++
		return
	}
	if n := s.quiet[kind]; n > 0 {
		f["suppressed"] = n
	}
	s.logged[kind], s.quiet[kind] = now, 0
	s.log().WithFields(f).Warn(text)
}

// ---- connection lifecycle ----

func (s *Slot) poolUser(p msg.PoolAddr) string {
	if p.User != "" {
		return p.User
	}
	return s.env.Route.PoolUser
}

// dialPool connects to pool idx in its protocol. It only reads the
// immutable Env, so dial goroutines may call it.
func (s *Slot) dialPool(ctx context.Context, idx int) (*link, error) {
	p := s.env.Route.Pools[idx]
	user := s.poolUser(p)
	var l *link
	var err error
	switch proto := protoOf(p); proto {
	case protoAgent:
		l, err = dial(ctx, dialParams{
			Pool: p, Stats: s.env.Stats, BadJob: s.badJob, User: user, UserAgent: s.env.UserAgent, Subres: s.env.Subres,
			DialTimeout: s.env.DialTimeout, HandshakeTimeout: s.env.HandshakeTimeout, MaxLine: s.env.MaxLine,
		})
	default:
		worker := s.env.StratumWorker
		if worker == "" {
			worker = s.env.Listener
		}
		minEN2 := sharedEN2
		if proto == protoPerMiner {
			minEN2 = 1 // each miner is mapped on its own link
		}
		l, err = dialStratum(ctx, stratumParams{
			Pool: p, Stats: s.env.Stats, BadJob: s.badJob, User: user + "." + workerPart(worker), UserAgent: StratumUserAgent(s.env.UserAgent), MinEN2: minEN2, Proto: proto,
			DialTimeout: s.env.DialTimeout, HandshakeTimeout: s.env.HandshakeTimeout, MaxLine: s.env.MaxLine,
		})
	}
	if l != nil {
		l.poolIdx = idx
	}
	return l, err
}

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
	root, self, ctx := s.env.Root, s.self, s.ctx
	go func() {
		l, err := s.dialPool(ctx, idx)
		if err != nil {
			root.Send(self, &linkFailed{err: err, pool: idx})
			return
		}
		if ctx.Err() != nil {
			l.close() // the slot stopped meanwhile
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

// addrRE matches socket addresses in error texts: the local port changes on
// every attempt, which must not make the same failure look new.
var addrRE = regexp.MustCompile(`(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+`)

func (s *Slot) onFailed(ctx actor.Context, m *linkFailed) {
	s.dialing = false
	reason := m.err.Error()
	// One line per distinct failure, and a reminder every 20 attempts. A
	// handshake failure is "the same" when pool and stage match: a refusing
	// pool shows up as reset, EOF or broken pipe from one attempt to the next.
	key := addrRE.ReplaceAllString(reason, "<addr>")
	var he *HandshakeError
	if errors.As(m.err, &he) {
		key = he.Pool + "|" + he.Reason
	}
	if key != s.lastErrKey || s.attempt%20 == 0 {
		s.log().WithField("attempt", s.attempt+1).Warn("pool link failed: " + reason)
	}
	s.lastErr, s.lastErrKey = reason, key
	s.attempt++
	s.poolIdx = m.pool + 1
	s.env.Stats.Reconnects.Add(1)
	s.scheduleRedial()
}

// install makes l the slot's main link: generation, I/O goroutines, and the
// jobs that arrived with the handshake.
func (s *Slot) install(ctx actor.Context, l *link, pool int) {
	l.gen = s.env.Gens.Add(1)
	l.poolIdx = pool
	s.link, s.ready = l, true
	s.poolIdx = pool
	s.since = time.Now()
	s.links[l.gen] = l
	s.initLink(l)
	s.startIO(l)
	s.replayHandshake(ctx, l)
}

// initLink sets a fresh link's bookkeeping from its handshake.
func (s *Slot) initLink(l *link) {
	l.members = map[uint16]struct{}{}
	if l.proto == protoAgent {
		l.diff, l.mask = l.hs.DefaultDiff, l.hs.Mask
		l.sink = newAgentSink(l, s.env.FlushInterval, s.env.Stats, s.env.Loop == nil)
		if s.env.Loop != nil {
			s.env.Loop.AddFlusher(l.sink)
		}
		return
	}
	l.diff, l.mask = l.shs.Diff, l.shs.Mask
	l.reqs = map[uint64]wire.Pending{}
	n := stratumRing
	if l.perMiner {
		n = stratumRing / 2
	}
	l.ring = make([]jobRec, n)
	if l.emap == nil {
		if l.emap = sharedMap(l.shs.EN1, l.shs.EN2Size); l.emap == nil {
			l.emap = controlMap(l.shs.EN1, l.shs.EN2Size) // per-miner control link: never sent to miners
		}
	}
}

// startIO starts the link's reader (and, for agent links, its writer).
func (s *Slot) startIO(l *link) {
	st := s.env.Stats
	onWritten := func(int) { st.Writes.Add(1) } // the bytes are counted by the connection
	gen := l.gen
	l.onWritten, l.wTimeout = onWritten, 30*time.Second
	l.setRaw()
	if l.proto == protoAgent {
		go s.readLoop(l, gen, s.env.Root, s.self)
		return
	}
	go s.stratumReadLoop(l, gen)
}

// replayHandshake processes the first job and whatever followed it.
func (s *Slot) replayHandshake(ctx actor.Context, l *link) {
	now := time.Now()
	if l.proto == protoAgent {
		s.onJob(ctx, l, l.hs.FirstJob, now)
		for _, b := range l.hs.Backlog {
			if n, ok := b.(*codec.Notify); ok {
				s.onJob(ctx, l, n, now)
			}
		}
		return
	}
	s.onJob(ctx, l, l.shs.FirstJob, now)
	for _, b := range l.shs.Backlog {
		switch v := b.(type) {
		case *codec.Notify:
			s.onJob(ctx, l, v, now)
		case stratumDiffEv:
			s.onStratumDiff(ctx, l, v.d)
		}
	}
	l.shs.FirstJob, l.shs.Backlog = nil, nil
}

func (s *Slot) onUp(ctx actor.Context, l *link, pool int) {
	s.dialing = false
	if s.link != nil {
		// A switch dial finished first and took the slot: this one is spare.
		l.close()
		return
	}
	s.install(ctx, l, pool)
	// Remember how far the failover had gone: a link that dies before it
	// proves stable counts as one more failed attempt (see lost).
	s.upAttempt = s.attempt
	s.attempt, s.lastErr, s.lastErrKey = 0, "", ""
	if pool > 0 {
		s.env.Stats.Failovers.Add(1)
	}
	s.logReady(l, "pool link ready")
	// First, so that a refusal below is recorded against this link.
	ctx.Send(s.env.Coordinator, &msg.UpstreamReady{Slot: s.env.Slot, Gen: l.gen, Pool: l.name, Protocol: l.proto, VersionMask: l.mask})
	// Miners that kept their own links while a per-miner pool's control
	// connection was down stay on them if it is the same pool; any others
	// move to the new link.
	for sid, a := range s.attached {
		if c := a.cur; c != nil && c.perMiner && l.proto == protoPerMiner && c.pool == l.pool {
			continue
		}
		prev := a.cur
		s.attachOn(ctx, l, sid, a)
		if prev != nil && prev.perMiner && a.cur != prev {
			s.retire(ctx, prev)
		}
	}
	s.flush(ctx, l)
	s.armFailback()
}

func (s *Slot) logReady(l *link, text string) {
	f := logrus.Fields{"pool": l.name, "protocol": l.proto, "mask": codec.Hex32(l.mask), "diff": l.diff}
	if l.proto == protoAgent {
		f["en1"], f["subres"] = l.hs.EN1, l.hs.Subres
	} else {
		f["en1"], f["en2_size"] = l.shs.EN1, l.shs.EN2Size
	}
	if via := proxydial.Via(l.conn); via != "" {
		f["via"] = via // credentials hidden
	}
	s.log().WithFields(f).Info(text)
}

// down handles a link whose connection ended.
func (s *Slot) down(ctx actor.Context, l *link, err error) {
	reason := "connection closed"
	if err != nil {
		reason = err.Error()
		var ne interface{ Timeout() bool }
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			reason = fmt.Sprintf("pool silent for %s", s.env.DeadAfter)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
			// Whether the close fell between two messages, inside one, or
			// came as a reset because our last write crossed it is chance;
			// one wording keeps the loss logged once, not two or three times.
			reason = "the pool closed the connection"
		}
	}
	switch {
	case l == s.link:
		s.lost(ctx, reason)
	case l.perMiner && !l.retiring:
		s.minerLinkLost(ctx, l, reason)
	default:
		s.answerAll(ctx, l, "pool link lost before the share was confirmed")
		for _, a := range s.attached {
			if a.cur == l {
				s.setCur(ctx, a, nil) // waiting for its per-miner link
			}
		}
		s.drop(l)
	}
}

func (s *Slot) lost(ctx actor.Context, reason string) {
	l := s.link
	// The coordinator logs the loss once, with what it did about the miners.
	s.answerAll(ctx, l, "pool link lost before the share was confirmed")
	s.drop(l)
	gen, name := l.gen, l.name
	s.link, s.ready = nil, false
	s.lastErr = reason
	sids := make([]uint16, 0, len(s.attached))
	for sid, a := range s.attached {
		a.want = 0
		if c := a.cur; c != nil && c.perMiner {
			if l.proto == protoPerMiner && !c.retiring && !c.broken {
				// Only the control connection of a per-miner pool went
				// (an idle-timeout, say): the miners' own links still work
				// and stay; the slot takes no new miners until it is back.
				continue
			}
			s.answerAll(ctx, c, "pool link lost before the share was confirmed")
			s.drop(c)
		}
		s.setCur(ctx, a, nil)
		delete(s.attached, sid)
		sids = append(sids, sid)
	}
	s.dialQ = nil
	ctx.Send(s.env.Coordinator, &msg.UpstreamLost{Slot: s.env.Slot, Gen: gen, Pool: name, Reason: reason, Miners: sids})
	s.env.Stats.Reconnects.Add(1)
	if time.Since(s.since) < s.stableAfter() {
		// A pool that accepts the login and then drops the link (after the
		// first job, say) is a failing pool, not a working one: keep the
		// backoff growing and move on along the list instead of redialling
		// it every few milliseconds.
		s.attempt = s.upAttempt + 1
		s.poolIdx = l.poolIdx + 1
	} else {
		s.attempt = 1
	}
	s.scheduleRedial()
}

// stableAfter is how long a link must stay up before its loss counts as a
// hiccup of a working pool rather than one more failure of a bad one.
func (s *Slot) stableAfter() time.Duration {
	return max(10*s.env.ReconnectMin, 5*time.Second)
}

// closeLink closes a link's socket and takes its sink off the loop.
func (s *Slot) closeLink(l *link) {
	if l.sink != nil && s.env.Loop != nil {
		s.env.Loop.RemoveFlusher(l.sink)
	}
	l.close()
}

// drop closes a link and forgets it.
func (s *Slot) drop(l *link) {
	s.closeLink(l)
	delete(s.links, l.gen)
	for i, r := range s.retired {
		if r == l {
			s.retired = append(s.retired[:i], s.retired[i+1:]...)
			break
		}
	}
}

// answerAll answers every share of l that has not been confirmed: nothing
// is ever answered true unless it reached the pool.
func (s *Slot) answerAll(_ actor.Context, l *link, text string) {
	if l.sink != nil {
		l.sink.failAll(text)
	}
	for id, p := range l.reqs {
		answerPending(s.env.Stats, &p, codec.StatusJobNotFoundOrStale, text, true)
		delete(l.reqs, id)
	}
	l.out = l.out[:0]
}

// setCur moves a miner to link l (nil: none), keeping the links' user counts.
func (s *Slot) setCur(ctx actor.Context, a *attached, l *link) {
	old := a.cur
	if old == l {
		return
	}
	a.cur = l
	if l != nil {
		l.users++
	}
	if old != nil {
		old.users--
		if old.retiring {
			s.checkRetire(ctx, old, false)
		}
	}
}

// ---- replacing a working link: failback and pool-requested reconnects ----

// startSwitch dials the candidate pools in order, in the background; the
// first that completes its handshake replaces the main link.
func (s *Slot) startSwitch(cands []int, why string) {
	if s.switching || len(cands) == 0 {
		return
	}
	s.switching = true
	root, self, ctx := s.env.Root, s.self, s.ctx
	go func() {
		var last error
		for _, idx := range cands {
			l, err := s.dialPool(ctx, idx)
			if err == nil {
				if ctx.Err() != nil {
					l.close()
					return
				}
				root.Send(self, &linkUp{l: l, pool: idx, kind: upSwitch, why: why})
				return
			}
			last = err
		}
		root.Send(self, &linkFailed{err: last, pool: cands[len(cands)-1], kind: upSwitch})
	}()
}

func (s *Slot) onSwitchUp(ctx actor.Context, m *linkUp) {
	s.switching, s.wantReconnect = false, false
	if s.link == nil {
		// The old link died meanwhile: this is simply the slot's new link.
		s.onUp(ctx, m.l, m.pool)
		return
	}
	old := s.link
	s.retire(ctx, old)
	l := m.l
	s.install(ctx, l, m.pool)
	s.lastErr = ""
	s.logReady(l, "pool link replaced ("+m.why+"): miners move to "+l.name)
	ctx.Send(s.env.Coordinator, &msg.UpstreamReady{Slot: s.env.Slot, Gen: l.gen, Pool: l.name, Protocol: l.proto, VersionMask: l.mask})
	for sid, a := range s.attached {
		prev := a.cur
		s.attachOn(ctx, l, sid, a)
		if prev != nil && prev.perMiner && a.cur != prev {
			s.retire(ctx, prev)
		}
	}
	s.flush(ctx, l)
	s.armFailback()
}

func (s *Slot) onSwitchFailed(ctx actor.Context, m *linkFailed) {
	s.switching = false
	if m.err != nil {
		s.warnLimited("switch-failed", logrus.Fields{}, "better pool still unavailable: "+m.err.Error())
	}
	if s.link == nil {
		return
	}
	if s.link.broken {
		s.lost(ctx, "could not reconnect after the pool changed the extranonce: "+errString(m.err))
		return
	}
	if s.wantReconnect {
		s.wantReconnect = false
		s.startSwitch([]int{s.link.poolIdx}, "the pool sent client.reconnect")
		return
	}
	s.armFailback()
}

func errString(err error) string {
	if err == nil {
		return "no candidate"
	}
	return err.Error()
}

func (s *Slot) armFailback() {
	d := s.env.FailbackInterval
	if s.failbackArmed || s.link == nil || s.link.poolIdx == 0 || d <= 0 {
		return
	}
	s.failbackArmed = true
	root, self := s.env.Root, s.self
	time.AfterFunc(d, func() { root.Send(self, &failbackTick{}) })
}

func (s *Slot) onFailbackTick() {
	s.failbackArmed = false
	if s.link == nil || s.link.poolIdx == 0 {
		return
	}
	if s.switching {
		s.armFailback()
		return
	}
	cands := make([]int, 0, s.link.poolIdx)
	for i := 0; i < s.link.poolIdx; i++ {
		cands = append(cands, i)
	}
	s.startSwitch(cands, "failback")
}

// reconnect replaces l with a fresh connection to the same pool, keeping the
// miners on l until the new one is up.
func (s *Slot) reconnect(ctx actor.Context, l *link, why string) {
	switch {
	case l == s.link:
		if s.switching {
			s.wantReconnect = true
			return
		}
		s.startSwitch([]int{l.poolIdx}, why)
	case l.perMiner:
		if a := s.attached[l.sid]; a != nil && a.cur == l && a.want == 0 {
			s.queueMinerDial(l.sid, a)
		}
	}
}

// retire takes l out of service: it still delivers the verdicts of shares it
// carried (and takes late shares on its jobs) and is closed once drained.
func (s *Slot) retire(ctx actor.Context, l *link) {
	if l.retiring {
		return
	}
	l.retiring, l.retiredAt = true, time.Now()
	s.flush(ctx, l)
	if !l.perMiner {
		s.retired = append(s.retired, l)
	}
	s.armRetire(l)
}

// A replaced link stays open for the verdicts of the shares it carried: at
// least retireGrace (shares still in mailboxes), at most retireMax.
const (
	retireGrace = 500 * time.Millisecond
	retireMax   = 10 * time.Second
)

func (s *Slot) armRetire(l *link) {
	root, self, gen := s.env.Root, s.self, l.gen
	time.AfterFunc(retireGrace, func() { root.Send(self, &retireCheck{gen: gen}) })
}

// checkRetire closes a retiring link once no miner uses it and its shares
// are answered (after the grace period, for shares still in mailboxes), or
// when retireMax has passed. timer re-arms the check.
func (s *Slot) checkRetire(ctx actor.Context, l *link, timer bool) {
	if !l.retiring || s.links[l.gen] != l {
		return
	}
	age := time.Since(l.retiredAt)
	if l.users == 0 && ((l.pendingCount() == 0 && age >= retireGrace) || age >= retireMax) {
		s.answerAll(ctx, l, "pool link retired before the share was confirmed")
		s.drop(l)
		return
	}
	if timer {
		s.armRetire(l)
	}
}

// ---- miners ----

func (s *Slot) attach(ctx actor.Context, m *wire.Attach) {
	if !s.ready {
		// The link went down after the coordinator chose us: hand the miner back.
		ctx.Send(s.env.Coordinator, &wire.AttachRefused{Slot: s.env.Slot, SessionID: m.SessionID})
		return
	}
	if old, ok := s.attached[m.SessionID]; ok {
		s.leave(ctx, m.SessionID, old)
	}
	a := &attached{miner: m.Miner, agent: m.UserAgent, worker: m.Worker, mask: m.VersionMask, xsub: m.ExtranonceSub, st: m.Stats}
	s.attached[m.SessionID] = a
	s.attachOn(ctx, s.link, m.SessionID, a)
}

// attachOn serves miner a from main link l in l's protocol.
func (s *Slot) attachOn(ctx actor.Context, l *link, sid uint16, a *attached) {
	switch l.proto {
	case protoAgent:
		l.sink.register(sid, a.agent, a.worker)
		l.members[sid] = struct{}{}
		s.setCur(ctx, a, l)
		s.welcome(ctx, a, l)
	case protoStratum:
		l.members[sid] = struct{}{}
		s.setCur(ctx, a, l)
		s.welcome(ctx, a, l)
	case protoPerMiner:
		if l.shs.EN2Size < sharedEN2 && !a.xsub {
			s.refuseMiner(ctx, sid, a, fmt.Sprintf("pool %s gives an extranonce2 of %d bytes (< 8) and the miner did not send mining.extranonce.subscribe, so it cannot be served by this pool", l.name, l.shs.EN2Size))
			return
		}
		s.queueMinerDial(sid, a)
	}
}

// welcome tells a miner which link serves it and gives it the link's mask,
// difficulty and newest job (clean), in that order.
func (s *Slot) welcome(ctx actor.Context, a *attached, l *link) {
	at := &wire.Attached{Upstream: s.self, Gen: l.gen, Pool: l.name}
	if l.sink != nil {
		at.Sink = l.sink
	}
	if l.emap != nil && !l.emap.withSID {
		at.EN1, at.EN2Size = l.emap.minerEN1, l.emap.minerEN2
	}
	a.miner.Tell(at)
	if a.mask != 0 {
		a.miner.Tell(&msg.VersionMaskSet{Mask: l.mask})
	}
	jd := l.diff
	if l.latest != nil && l.proto != protoAgent {
		jd = l.latestDif // the pool judges the job at the difficulty it came with
	}
	a.miner.Tell(&msg.DifficultySet{Difficulty: jd})
	if l.latest != nil {
		a.miner.Tell(&msg.JobNotified{Job: withCleanLine(l.latest), Clean: true})
	}
	if jd != l.diff {
		a.miner.Tell(&msg.DifficultySet{Difficulty: l.diff})
	}
}

func (s *Slot) detach(ctx actor.Context, sid uint16) {
	a, ok := s.attached[sid]
	if !ok {
		return
	}
	delete(s.attached, sid)
	s.leave(ctx, sid, a)
}

// leave takes a miner off every link of this slot.
func (s *Slot) leave(ctx actor.Context, sid uint16, a *attached) {
	a.want = 0
	cur := a.cur
	s.setCur(ctx, a, nil)
	if cur != nil && cur.perMiner {
		s.retire(ctx, cur) // its verdicts still count in the statistics
	}
	for _, l := range s.mainLinks() {
		if _, ok := l.members[sid]; !ok {
			continue
		}
		delete(l.members, sid)
		if l.proto == protoAgent {
			s.unregister(ctx, l, sid)
		}
	}
}

func (s *Slot) unregister(_ actor.Context, l *link, sid uint16) {
	l.sink.unregister(sid)
}

func (s *Slot) mainLinks() []*link {
	if s.link == nil {
		return s.retired
	}
	return append([]*link{s.link}, s.retired...)
}

// refuseMiner gives a miner back to the coordinator while the slot stays
// up: its own link failed or the pool cannot serve it.
func (s *Slot) refuseMiner(ctx actor.Context, sid uint16, a *attached, reason string) {
	delete(s.attached, sid)
	s.leave(ctx, sid, a)
	s.warnLimited("miner-refused", logrus.Fields{"worker": a.worker, "sid": sid}, "miner cannot be served on this pool link: "+reason)
	ctx.Send(s.env.Coordinator, &wire.AttachRefused{Slot: s.env.Slot, SessionID: sid, KeepSlot: true, Reason: reason})
}

// eachUser calls f for every miner whose current link is l.
func (s *Slot) eachUser(l *link, f func(*attached)) {
	if l.users == 0 {
		return
	}
	if l.perMiner {
		if a := s.attached[l.sid]; a != nil && a.cur == l {
			f(a)
		}
		return
	}
	for _, a := range s.attached {
		if a.cur == l {
			f(a)
		}
	}
}

// ---- jobs and difficulty ----

func (s *Slot) onJob(ctx actor.Context, l *link, n *codec.Notify, at time.Time) {
	var j *msg.Job
	if l.proto == protoAgent {
		if j = s.agentJob(l, n, at); j == nil {
			return
		}
	} else {
		if l.broken {
			return
		}
		j = s.stratumJob(l, n, at)
	}
	l.latest, l.latestDif = j, l.diff
	// One message for all miners: it is read-only, and a fresh one per miner
	// would be 10,000 allocations per job.
	note := &msg.JobNotified{Job: j}
	if l.perMiner {
		s.eachUser(l, func(a *attached) { a.miner.Tell(note) })
		return
	}
	s.env.Chain.OnJob(&msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
	// The broadcast: each Tell writes the pre-encoded line to the miner's
	// socket on this goroutine (the slots of a listener broadcast in
	// parallel). Its duration from the job's arrival is the fan-out; jobs
	// given later to joining or moving miners are not part of it.
	if l.users > 0 {
		s.eachUser(l, func(a *attached) { a.miner.Tell(note) })
		if fo := s.env.Stats.FanoutNanos; fo != nil && !at.IsZero() {
			fo.Observe(time.Since(at))
		}
	}
	// The coordinator keeps the newest job as the template for placeholder work.
	ctx.Send(s.env.Coordinator, &msg.JobArrived{Listener: s.env.Listener, Route: s.env.Route.Name, Job: j})
}

func (s *Slot) agentJob(l *link, n *codec.Notify, at time.Time) *msg.Job {
	short, ok := codec.ParseJobID([]byte(n.JobID))
	if !ok {
		s.log().WithField("job", n.JobID).Warn("pool job id is not a decimal 0..255; the binary submit cannot carry it; job ignored")
		return nil
	}
	j := minerJob(l.gen, short, n, at, l.hs.EN1, true)
	if hj, err := codec.NewHashJob(n, l.hs.EN1); err == nil {
		j.Hash = hj
	}
	return j
}

// minerJob builds the job miners get: coinb1 extended by suffix (the link's
// extranonce part), and the pool's id replaced by "<gen hex>.<pool id>" so a
// share can never be matched to a same-numbered job of another link.
// withClean also builds the clean_jobs=true line for miners that join later.
func minerJob(gen uint64, short uint8, n *codec.Notify, at time.Time, suffix string, withClean bool) *msg.Job {
	id := strconv.FormatUint(gen, 16) + "." + n.JobID
	j := &msg.Job{
		ID: id, PoolID: n.JobID, ShortID: short, Gen: gen, Notify: n, UpstreamEN1: suffix,
		NTime: n.NTimeValue(), Version: n.VersionValue(), Received: at, Clean: n.Clean,
	}
	mn := *n
	mn.JobID = id
	j.Line = mn.AppendLine(make([]byte, 0, len(n.Coinb1)+len(suffix)+len(n.Coinb2)+80*len(n.Branches)+200), suffix, n.Clean)
	if n.Clean {
		j.CleanLine = j.Line
	} else if withClean {
		j.CleanLine = mn.AppendLine(nil, suffix, true)
	}
	return j
}

// stratumJob builds the miner-facing job of a stratum link and indexes it in
// the link's ring under a local short id, so a share finds the pool's job id
// and the extranonce layout it was built with.
func (s *Slot) stratumJob(l *link, n *codec.Notify, at time.Time) *msg.Job {
	m := l.emap
	short := l.nextShort
	l.nextShort++
	// Per-miner links build the clean line only for the miner that joins (withCleanLine).
	j := minerJob(l.gen, short, n, at, m.suffix, !l.perMiner)
	if !m.noHash && (!l.perMiner || s.env.Chain.HasSubmitHooks()) {
		if hj, err := codec.NewHashJob(n, m.suffix); err == nil {
			j.Hash = hj
		}
	}
	l.ring[int(short)%len(l.ring)] = jobRec{job: j, poolID: jsonQuote(n.JobID), m: m}
	return j
}

// withCleanLine returns j with CleanLine set (a copy when it was not built).
func withCleanLine(j *msg.Job) *msg.Job {
	if j.CleanLine != nil || j.Notify == nil {
		return j
	}
	c := *j
	mn := *j.Notify
	mn.JobID = j.ID
	c.CleanLine = mn.AppendLine(nil, j.UpstreamEN1, true)
	return &c
}

func (s *Slot) onSetDiff(ctx actor.Context, l *link, m *poolSetDiff) {
	d := &msg.DifficultySet{Difficulty: float64(uint64(1) << m.exp)}
	for _, sid := range m.sids {
		if a, ok := s.attached[sid]; ok && a.cur == l {
			a.miner.Tell(d)
		}
	}
}

// onStratumDiff applies a pool's mining.set_difficulty: on a plain Stratum
// link it is the connection's, so every miner of the link gets it, before
// the next job as the pool meant it.
func (s *Slot) onStratumDiff(ctx actor.Context, l *link, d float64) {
	if d == l.diff {
		return
	}
	l.diff = d
	m := &msg.DifficultySet{Difficulty: d}
	s.eachUser(l, func(a *attached) { a.miner.Tell(m) })
}

func (s *Slot) onMask(ctx actor.Context, l *link, mask uint32) {
	if mask == l.mask {
		return
	}
	l.mask = mask
	vm := &msg.VersionMaskSet{Mask: mask}
	s.eachUser(l, func(a *attached) { a.miner.Tell(vm) })
}

// onExtranonce applies a pool's mining.set_extranonce: later jobs use the
// new extranonce1. An extranonce2 too small for the link's layout needs a
// new connection (aggregated links then fail over if the pool keeps it
// small); per-miner links in the direct layout reconnect too, because the
// miner's own extranonce would change.
func (s *Slot) onExtranonce(ctx actor.Context, l *link, en1 string, size int) {
	l.shs.EN1, l.shs.EN2Size = en1, size
	switch {
	case l.perMiner:
		if l.emap.withSID && size >= sharedEN2 {
			l.emap = sharedMap(en1, size)
			return
		}
		l.broken = true
		s.reconnect(ctx, l, "the pool changed the extranonce of a per-miner link")
	case l.proto == protoPerMiner:
		l.emap = controlMap(en1, size)
	default:
		if m := sharedMap(en1, size); m != nil {
			l.emap = m
			return
		}
		l.broken = true
		s.log().WithFields(logrus.Fields{"pool": l.name, "en2_size": size}).Warn("pool set an extranonce2 smaller than 8 bytes; reconnecting the link")
		s.reconnect(ctx, l, fmt.Sprintf("the pool set extranonce2 size %d", size))
	}
}

// ---- shares ----

// serves reports whether link l may carry shares of miner sid.
func (s *Slot) serves(l *link, sid uint16) bool {
	if l.perMiner {
		return l.sid == sid
	}
	_, ok := l.members[sid]
	return ok
}

// submit takes a share that came as a message: a plain Stratum link's, or
// a late share for an agent link that is being replaced (shares for a
// link's current generation go straight into its sink).
func (s *Slot) submit(ctx actor.Context, m *wire.Submit) {
	sid := m.Share.SessionID
	l := s.links[m.Gen]
	if l == nil || s.attached[sid] == nil || !s.serves(l, sid) {
		// Never write a share the pool would drop without a verdict: that would
		// shift every later SUBMIT_RESPONSE onto the wrong miner.
		answerPending(s.env.Stats, &m.Pending, codec.StatusJobNotFoundOrStale, "job belongs to a pool link that is gone", true)
		return
	}
	if l.sink != nil {
		if st := l.sink.Submit(m.Share, m.Pending, false); st != 0 {
			answerPending(s.env.Stats, &m.Pending, st, "job belongs to a pool link that is gone", true)
		}
		return
	}
	s.stratumSubmit(ctx, l, m)
}

func (s *Slot) stratumSubmit(ctx actor.Context, l *link, m *wire.Submit) {
	p := &m.Pending
	rec := &l.ring[int(m.Share.JobID)%len(l.ring)]
	if rec.job == nil || rec.job.ShortID != m.Share.JobID {
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "job no longer known to the pool link", true)
		return
	}
	if l.broken {
		// The pool's new extranonce2 size no longer fits this job's layout.
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "the pool changed the extranonce; job is stale", true)
		return
	}
	l.nextReq++
	sh := &m.Share
	l.out = appendStratumSubmit(l.out, l.nextReq, []byte(l.shs.User), rec, sh.SessionID, sh.ExtraNonce2, sh.NTime, sh.Nonce, sh.VersionBits, sh.HasVersion)
	l.reqs[l.nextReq] = *p
	s.env.Stats.SharesSent.Add(1)
	if l.perMiner {
		s.flush(ctx, l) // one miner's shares are rare: no window
		return
	}
	s.armFlush(ctx, l)
}

// armFlush schedules a stratum link's write (agent links' sinks arm themselves).
func (s *Slot) armFlush(ctx actor.Context, l *link) {
	if s.env.FlushInterval <= 0 {
		s.flush(ctx, l)
		return
	}
	if l.flushArmed {
		return
	}
	l.flushArmed = true
	root, self, gen := s.env.Root, s.self, l.gen
	time.AfterFunc(s.env.FlushInterval, func() { root.Send(self, &flushNow{gen: gen}) })
}

// flush writes what the link has buffered now.
func (s *Slot) flush(_ actor.Context, l *link) {
	if l.sink != nil {
		l.sink.Flush(time.Now())
		return
	}
	if len(l.out) == 0 {
		return
	}
	l.send(l.out)
	l.out = l.out[:0]
}

func (s *Slot) onStratumReply(ctx actor.Context, l *link, m *stratumReply) {
	p, ok := l.reqs[m.id]
	if !ok {
		return // not a submit of ours
	}
	delete(l.reqs, m.id)
	answerPending(s.env.Stats, &p, m.status, m.text, false)
	if l.retiring {
		s.checkRetire(ctx, l, false)
	}
}
