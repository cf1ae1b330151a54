// Package coordinator is one listener's brain: it owns the listener's pool
// link slots (one set per route), knows every miner session, places each
// authorized miner on the least-loaded ready link of its route, moves miners
// when a link is lost, and applies the outage policy (disconnect, wait or
// fake) while no link of a route is ready.
package coordinator

import (
	"fmt"
	"github.com/btcagent/btcagent/internal/logging"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/sessionid"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/upstream"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// Outage policies.
const (
	PolicyDisconnect = "disconnect"
	PolicyWait       = "wait"
	PolicyFake       = "fake"
)

// Env configures a coordinator.
type Env struct {
	Listener          string
	Port              int
	Routes            []msg.Route // Routes[0] is the listener's own (name "")
	Connections       int         // slots per route
	Policy            string
	Wait              time.Duration // "wait": how long miners may stay without work
	Grace             time.Duration // "disconnect": how long a new miner may wait for a first link
	FakeJobInterval   time.Duration
	TickInterval      time.Duration // per-miner timeout sweep
	StatsInterval     time.Duration // summary log + stats hook
	RebalanceInterval time.Duration // how often Rebalancer plugins are consulted
	Upstream          upstream.Env  // template for every slot
	Chain             *plugins.Chain
	Stats             *stats.Listener
	Alloc             *sessionid.Allocator
	// Sessions outlives the coordinator: a coordinator restarted after a
	// panic rebuilds its miner table from it instead of forgetting them.
	Sessions *Registry
	PoolMask *atomic.Uint32 // last granted version mask, shared with miner sessions
	Log      logrus.FieldLogger
}

// Registry is a listener's live miner sessions by id. The accept path adds
// a session before the coordinator hears of it; the coordinator removes it
// when the miner is gone. It is the one piece of the coordinator's state
// that survives a restart.
type Registry struct {
	mu sync.Mutex
	m  map[uint16]wire.Miner
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[uint16]wire.Miner{}} }

// Add records a session.
func (r *Registry) Add(sid uint16, m wire.Miner) {
	r.mu.Lock()
	r.m[sid] = m
	r.mu.Unlock()
}

func (r *Registry) remove(sid uint16) {
	r.mu.Lock()
	delete(r.m, sid)
	r.mu.Unlock()
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *Registry) snapshot() map[uint16]wire.Miner {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[uint16]wire.Miner, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}

// MinerOpened registers a new session with its coordinator (sent by the accept path).
type MinerOpened struct {
	SessionID uint16
	Miner     wire.Miner
	Stats     *stats.Miner
}

type minerRec struct {
	miner    wire.Miner
	st       *stats.Miner
	info     msg.MinerInfo
	mask     uint32
	authed   bool
	route    string
	slot     *slotRec
	parkedAt time.Time
	opened   time.Time
	xsub     bool           // accepts mining.set_extranonce
	avoid    map[int]uint64 // slot index -> link generation that could not serve this miner
}

type slotRec struct {
	idx    int
	route  string
	pid    *actor.PID
	ready  bool
	gen    uint64
	pool   string
	proto  string // of the pool last connected
	miners int
	since  time.Time // when the link became ready, or was lost
	err    string    // why it was last lost
}

// Coordinator is the actor.
type Coordinator struct {
	lostLogged map[string]time.Time // pool|reason -> last warn line
	env        *Env
	slots      []*slotRec
	routes     map[string][]*slotRec
	miners     map[uint16]*minerRec
	lastJob    *msg.Job
	fakeSeq    uint32
	done       chan struct{}
	lastFake   time.Time
}

// New returns the coordinator's producer.
func New(env *Env) actor.Producer {
	return func() actor.Actor {
		return &Coordinator{env: env, routes: map[string][]*slotRec{}, miners: map[uint16]*minerRec{}}
	}
}

type tick struct{ now time.Time }
type statsTick struct{ now time.Time }
type rebalanceTick struct{ now time.Time }

// Receive dispatches.
func (c *Coordinator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		c.start(ctx)
	case *MinerOpened:
		if _, ok := c.miners[m.SessionID]; ok {
			break // already taken over from the registry by rebuild
		}
		c.miners[m.SessionID] = &minerRec{miner: m.Miner, st: m.Stats, opened: time.Now(), parkedAt: time.Now()}
		c.env.Stats.MinersConn.Add(1)
	case *wire.MinerAuthorized:
		c.authorized(ctx, m)
	case *wire.MinerGone:
		c.gone(ctx, m)
	case *wire.UpstreamReady:
		c.upReady(ctx, m)
	case *wire.UpstreamLost:
		c.upLost(ctx, m)
	case *wire.AttachRefused:
		c.refused(ctx, m)
	case *msg.JobArrived:
		c.lastJob = m.Job
	case *tick:
		c.onTick(ctx, m.now)
	case *statsTick:
		c.onStats(m.now)
	case *rebalanceTick:
		c.rebalance(ctx, m.now)
	case *wire.SnapshotRequest:
		ctx.Respond(c.snapshot())
	case *wire.DisconnectAll:
		for _, rec := range c.miners {
			rec.miner.Tell(&wire.Disconnect{Reason: m.Reason, Reconnect: m.Reconnect})
		}
	case *actor.Stopping, *actor.Restarting:
		// A restarted coordinator is a new instance with its own tickers.
		if c.done != nil {
			close(c.done)
			c.done = nil
		}
	}
}

func (c *Coordinator) log() logrus.FieldLogger {
	return c.env.Log.WithField("listener", c.env.Listener)
}

func (c *Coordinator) start(ctx actor.Context) {
	c.rebuild()
	for _, r := range c.env.Routes {
		for i := 0; i < c.env.Connections; i++ {
			e := c.env.Upstream
			e.Slot = len(c.slots)
			e.Route = r
			e.Coordinator = ctx.Self()
			props := actor.PropsFromProducer(upstream.New(&e), actor.WithMailbox(actor.UnboundedLockfree()))
			name := "up-" + strconv.Itoa(e.Slot)
			pid, err := ctx.SpawnNamed(props, name)
			if err != nil {
				c.log().WithError(err).Error("cannot start upstream slot")
				continue
			}
			s := &slotRec{idx: e.Slot, route: r.Name, pid: pid}
			c.slots = append(c.slots, s)
			c.routes[r.Name] = append(c.routes[r.Name], s)
		}
	}
	c.done = make(chan struct{})
	done := c.done // the tickers must not read the field, which Stopping/Restarting clears
	self, root := ctx.Self(), c.env.Upstream.Root
	every := func(d time.Duration, mk func(time.Time) any) {
		if d <= 0 {
			return
		}
		t := time.NewTicker(d)
		go func() {
			defer t.Stop()
			for {
				select {
				case now := <-t.C:
					root.Send(self, mk(now))
				case <-done:
					return
				}
			}
		}()
	}
	every(c.env.TickInterval, func(t time.Time) any { return &tick{now: t} })
	every(c.env.StatsInterval, func(t time.Time) any { return &statsTick{now: t} })
	if c.env.Chain.HasRebalancers() {
		every(c.env.RebalanceInterval, func(t time.Time) any { return &rebalanceTick{now: t} })
	}
}

// ---- placement ----

func (c *Coordinator) authorized(ctx actor.Context, m *wire.MinerAuthorized) {
	rec, ok := c.miners[m.Info.SessionID]
	if !ok {
		return // already gone
	}
	rec.info, rec.mask, rec.authed, rec.xsub = m.Info, m.VersionMask, true, m.ExtranonceSub
	sel := &msg.UpstreamSelecting{Info: m.Info}
	c.env.Chain.OnSelect(sel)
	if _, ok := c.routes[sel.Route]; !ok {
		if sel.Route != "" {
			c.log().WithField("route", sel.Route).Warn("plugin chose an unknown route; using the listener's pools")
		}
		sel.Route = ""
	}
	rec.route = sel.Route
	c.place(ctx, m.Info.SessionID, rec)
}

// pick is the ready slot of route with the fewest miners. Slots whose
// current link already refused the miner (avoid: a per-miner link that
// failed, a pool that cannot map its extranonce) are skipped until they get
// a new link.
func (c *Coordinator) pick(route string, avoid map[int]uint64) *slotRec {
	var best *slotRec
	for _, s := range c.routes[route] {
		if g, ok := avoid[s.idx]; ok && g == s.gen {
			continue
		}
		if s.ready && (best == nil || s.miners < best.miners) {
			best = s
		}
	}
	return best
}

func (c *Coordinator) place(ctx actor.Context, sid uint16, rec *minerRec) {
	s := c.pick(rec.route, rec.avoid)
	if s == nil {
		c.park(ctx, rec, "no pool link ready")
		return
	}
	rec.slot = s
	rec.parkedAt = time.Time{}
	s.miners++
	ctx.Send(s.pid, &wire.Attach{Miner: rec.miner, SessionID: sid, UserAgent: rec.info.UserAgent, Worker: rec.info.Worker, VersionMask: rec.mask, Stats: rec.st, ExtranonceSub: rec.xsub})
}

func (c *Coordinator) park(ctx actor.Context, rec *minerRec, reason string) {
	rec.slot = nil
	if rec.parkedAt.IsZero() {
		rec.parkedAt = time.Now()
	}
	rec.miner.Tell(&wire.Parked{Reason: reason})
	if c.env.Policy == PolicyFake && c.lastJob != nil {
		rec.miner.Tell(&wire.JobNotified{Job: c.fakeJob(time.Now()), Clean: true})
	}
}

// rebuild takes over the sessions of a previous instance of this
// coordinator (one that panicked and was restarted): each is known again,
// and each authorized one says so again (wire.Replay), so it is placed on
// the new links as they come up. A fresh coordinator finds none.
func (c *Coordinator) rebuild() {
	if c.env.Sessions == nil {
		return
	}
	live := c.env.Sessions.snapshot()
	if len(live) == 0 {
		return
	}
	now := time.Now()
	c.env.Stats.MinersConn.Store(int64(len(live)))
	for sid, m := range live {
		c.miners[sid] = &minerRec{miner: m, opened: now, parkedAt: now}
		m.Tell(&wire.Replay{})
	}
	c.env.Stats.MinersAuth.Store(0) // counted again as the sessions re-authorize
	c.log().WithField("miners", len(live)).Warn("coordinator restarted; taking its miners over again")
}

func (c *Coordinator) gone(ctx actor.Context, m *wire.MinerGone) {
	if c.env.Sessions != nil {
		c.env.Sessions.remove(m.SessionID)
	}
	rec, ok := c.miners[m.SessionID]
	if !ok {
		// Not known here, yet its id is still allocated (ids are freed only
		// below, so it cannot belong to a newer miner): free it.
		c.env.Alloc.Free(m.SessionID)
		return
	}
	delete(c.miners, m.SessionID)
	if rec.slot != nil {
		rec.slot.miners--
		ctx.Send(rec.slot.pid, &wire.Detach{SessionID: m.SessionID})
	}
	if rec.authed {
		c.env.Stats.MinersAuth.Add(-1)
	}
	c.env.Stats.MinersConn.Add(-1)
	// The id is freed after the Detach is queued, so the UNREGISTER reaches
	// the pool before any REGISTER of a new miner with the same id.
	c.env.Alloc.Free(m.SessionID)
}

func (c *Coordinator) upReady(ctx actor.Context, m *wire.UpstreamReady) {
	s := c.slots[m.Slot]
	s.ready, s.gen, s.pool, s.proto, s.since, s.err = true, m.Gen, m.Pool, m.Protocol, time.Now(), ""
	if m.VersionMask != 0 && c.env.PoolMask != nil {
		c.env.PoolMask.Store(m.VersionMask)
	}
	// Parked miners of this route get work now, spread over the ready links.
	for sid, rec := range c.miners {
		if rec.authed && rec.slot == nil && rec.route == s.route && c.pick(rec.route, rec.avoid) != nil {
			c.place(ctx, sid, rec)
		}
	}
}

func (c *Coordinator) upLost(ctx actor.Context, m *wire.UpstreamLost) {
	s := c.slots[m.Slot]
	s.ready, s.miners, s.since, s.err = false, 0, time.Now(), m.Reason
	moved, parked := 0, 0
	for _, sid := range m.Miners {
		rec, ok := c.miners[sid]
		if !ok || rec.slot != s {
			continue
		}
		rec.slot = nil
		if c.replace(ctx, sid, rec, "pool link lost") {
			moved++
		} else {
			parked++
		}
	}
	// A slot may keep some miners (a per-miner pool whose control link
	// went keeps the miners' own links): recount.
	s.miners = 0
	for _, rec := range c.miners {
		if rec.slot == s {
			s.miners++
		}
	}
	if moved > 0 {
		c.env.Stats.Failovers.Add(1)
	}
	entry := c.log().WithFields(logrus.Fields{"slot": m.Slot, "pool": m.Pool, "moved": moved, "without_work": parked, "policy": c.env.Policy})
	// A pool that keeps dropping links must not flood the log: the same pool
	// and reason are logged at warn once a minute per link, repeats at debug.
	key := strconv.Itoa(m.Slot) + "|" + m.Pool + "|" + logging.WithoutAddrs(m.Reason)
	if last, ok := c.lostLogged[key]; ok && time.Since(last) < time.Minute {
		entry.Debug("pool link lost again: " + m.Reason)
		return
	}
	if c.lostLogged == nil {
		c.lostLogged = map[string]time.Time{}
	}
	c.lostLogged[key] = time.Now()
	entry.Warn("pool link lost: " + m.Reason)
}

// refused handles a slot that lost its link between our choice and the Attach.
func (c *Coordinator) refused(ctx actor.Context, m *wire.AttachRefused) {
	s := c.slots[m.Slot]
	if m.KeepSlot {
		// Only this miner cannot be served there (the slot logged why).
		rec, ok := c.miners[m.SessionID]
		if !ok || rec.slot != s {
			return
		}
		s.miners--
		rec.slot = nil
		if rec.avoid == nil {
			rec.avoid = map[int]uint64{}
		}
		rec.avoid[s.idx] = s.gen
		c.replace(ctx, m.SessionID, rec, m.Reason)
		return
	}
	s.ready = false
	rec, ok := c.miners[m.SessionID]
	if !ok || rec.slot != s {
		return
	}
	s.miners--
	rec.slot = nil
	c.replace(ctx, m.SessionID, rec, "pool link lost")
}

// replace puts a miner whose link is gone on another ready link of its
// route, or applies the outage policy. It reports whether the miner moved.
func (c *Coordinator) replace(ctx actor.Context, sid uint16, rec *minerRec, reason string) bool {
	if c.pick(rec.route, rec.avoid) != nil {
		c.place(ctx, sid, rec)
		return true
	}
	if c.env.Policy == PolicyDisconnect {
		rec.miner.Tell(&wire.Disconnect{Reason: reason + " (outage policy disconnect)"})
		return false
	}
	c.park(ctx, rec, reason)
	return false
}

// ---- periodic work ----

func (c *Coordinator) onTick(ctx actor.Context, now time.Time) {
	t := &wire.Tick{UnixNano: now.UnixNano()}
	fake := c.env.Policy == PolicyFake && c.lastJob != nil && now.Sub(c.lastFake) >= c.env.FakeJobInterval
	var fj *msg.Job
	if fake {
		fj = c.fakeJob(now)
		c.lastFake = now
	}
	for _, rec := range c.miners {
		rec.miner.Tell(t)
		if rec.slot != nil || rec.parkedAt.IsZero() {
			continue
		}
		waited := now.Sub(rec.parkedAt)
		switch c.env.Policy {
		case PolicyWait:
			if waited > c.env.Wait {
				rec.miner.Tell(&wire.Disconnect{Reason: "no pool link within the outage wait"})
				rec.parkedAt = time.Time{}
			}
		case PolicyDisconnect:
			if rec.authed && waited > c.env.Grace {
				rec.miner.Tell(&wire.Disconnect{Reason: "no pool link (outage policy disconnect)"})
				rec.parkedAt = time.Time{}
			}
		case PolicyFake:
			if fj != nil && rec.authed {
				rec.miner.Tell(&wire.JobNotified{Job: fj, Clean: true})
			}
		}
	}
}

// fakeJob builds unpaid placeholder work from the last real job: the same
// coinbase pieces with a time tag where the upstream EN1 would be, and a job
// id starting with "f" so that shares on it are answered locally.
func (c *Coordinator) fakeJob(now time.Time) *msg.Job {
	c.fakeSeq++
	n := *c.lastJob.Notify
	n.JobID = "f" + strconv.FormatUint(uint64(c.fakeSeq), 16)
	n.NTime = codec.Hex32(uint32(now.Unix()))
	tag := codec.Hex32(uint32(now.UnixNano()))
	line := n.AppendLine(nil, tag, true)
	return &msg.Job{ID: n.JobID, Notify: &n, Line: line, CleanLine: line, Fake: true, Clean: true, NTime: uint32(now.Unix()), Received: now}
}

func (c *Coordinator) onStats(now time.Time) {
	st := c.env.Stats
	ready := 0
	for _, s := range c.slots {
		if s.ready {
			ready++
		}
	}
	var rejected int64
	for _, v := range st.RejectCounts() {
		rejected += v
	}
	hr := st.Hashrate(now)
	c.env.Chain.OnStats(&msg.StatsTick{Listener: c.env.Listener, Miners: len(c.miners), Hashrate: hr,
		Accepted: st.Accepted.Load(), Rejected: rejected, UpstreamsReady: ready, At: now})
	c.log().WithFields(logrus.Fields{
		"miners": len(c.miners), "hashrate": codec.FormatHashrate(hr), "accepted": st.Accepted.Load(),
		"rejected": rejected, "upstreams_ready": fmt.Sprintf("%d/%d", ready, len(c.slots)),
	}).Info("summary")
}

func (c *Coordinator) rebalance(ctx actor.Context, now time.Time) {
	loads := make([]msg.MinerLoad, 0, len(c.miners))
	for _, rec := range c.miners {
		if rec.authed && rec.slot != nil {
			h := 0.0
			if rec.st != nil {
				h = rec.st.Hashrate(now)
			}
			loads = append(loads, msg.MinerLoad{Info: rec.info, Route: rec.route, Hashrate: h})
		}
	}
	for _, mv := range c.env.Chain.Rebalance(loads) {
		rec, ok := c.miners[mv.SessionID]
		if !ok || rec.route == mv.Route || rec.slot == nil {
			continue
		}
		if _, ok := c.routes[mv.Route]; !ok || c.pick(mv.Route, nil) == nil {
			continue
		}
		rec.slot.miners--
		ctx.Send(rec.slot.pid, &wire.Detach{SessionID: mv.SessionID})
		rec.slot = nil
		rec.route = mv.Route
		c.place(ctx, mv.SessionID, rec)
	}
}

func (c *Coordinator) snapshot() *wire.Snapshot {
	snap := &wire.Snapshot{Listener: c.env.Listener, Miners: len(c.miners)}
	for _, rec := range c.miners {
		switch {
		case rec.slot != nil:
			snap.Placed++
		case rec.authed:
			snap.Parked++
		}
	}
	for _, s := range c.slots {
		snap.Upstreams = append(snap.Upstreams, wire.UpstreamState{Slot: s.idx, Route: s.route, Ready: s.ready, Pool: s.pool, Protocol: s.proto, Gen: s.gen, Miners: s.miners, Since: unixOrZero(s.since), Error: s.err})
	}
	sort.Slice(snap.Upstreams, func(i, j int) bool { return snap.Upstreams[i].Slot < snap.Upstreams[j].Slot })
	return snap
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
