// Package coordinator is one listener's brain: it owns the listener's pool
// link slots (one set per route), knows every miner session, places each
// authorized miner on the least-loaded ready link of its route, moves miners
// when a link is lost, and applies the outage policy (disconnect, wait or
// fake) while no link of a route is ready.
package coordinator

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/sessionid"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/upstream"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/fanout"
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
	Routes            []msg.Route // Routes[0] is the listener's own (name ""); none on a multi-user listener
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
	// SubAccounts makes this a multi-user listener's coordinator: each
	// sub-account is a route of its own, opened and closed as its miners
	// come and go (subaccounts.go). nil on single-user listeners.
	SubAccounts *SubAccounts
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
	slots      map[int]*slotRec // by index
	routes     map[string][]*slotRec
	miners     map[uint16]*minerRec
	nextSlot   int // slot indices handed out when there is no Sessions registry to count them
	subs       *subState
	lastJob    *msg.Job
	fakeSeq    uint32
	done       chan struct{}
	lastFake   time.Time
}

// New returns the coordinator's producer.
func New(env *Env) actor.Producer {
	return func() actor.Actor {
		return &Coordinator{env: env, slots: map[int]*slotRec{}, routes: map[string][]*slotRec{}, miners: map[uint16]*minerRec{}}
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
	case *expiryDue:
		c.expire(ctx)
	case *actor.Stopping, *actor.Restarting:
		// A restarted coordinator is a new instance with its own tickers.
		if c.done != nil {
			close(c.done)
			c.done = nil
		}
		c.stopExpiry()
	}
}

// spawnRoute starts n link slots for route r, as children of the coordinator.
func (c *Coordinator) spawnRoute(ctx actor.Context, r msg.Route, n int) {
	for i := 0; i < n; i++ {
		e := c.env.Upstream
		e.Slot = c.newSlotIndex()
		e.Route = r
		e.Coordinator = ctx.Self()
		props := actor.PropsFromProducer(upstream.New(&e), actor.WithMailbox(actor.UnboundedLockfree()))
		pid, err := ctx.SpawnNamed(props, "up-"+strconv.Itoa(e.Slot))
		if err != nil {
			c.log().WithError(err).Error("cannot start upstream slot")
			continue
		}
		s := &slotRec{idx: e.Slot, route: r.Name, pid: pid}
		c.slots[s.idx] = s
		c.routes[r.Name] = append(c.routes[r.Name], s)
	}
}

// newSlotIndex returns an index no slot of this listener has had: a
// stopped slot's late messages then match nothing.
func (c *Coordinator) newSlotIndex() int {
	if c.env.Sessions != nil {
		return c.env.Sessions.newSlot()
	}
	c.nextSlot++
	return c.nextSlot - 1
}

func (c *Coordinator) slotsIssued() int {
	if c.env.Sessions != nil {
		return c.env.Sessions.slotsIssued()
	}
	return c.nextSlot
}

// stopRoute stops the slots of a route (their links close) and forgets
// them; messages they send meanwhile name a slot that is no longer known.
func (c *Coordinator) stopRoute(ctx actor.Context, name string) {
	for _, s := range c.routes[name] {
		ctx.Stop(s.pid)
		delete(c.slots, s.idx)
	}
	delete(c.routes, name)
}

func (c *Coordinator) log() logrus.FieldLogger {
	return c.env.Log.WithField("listener", c.env.Listener)
}

func (c *Coordinator) start(ctx actor.Context) {
	if c.env.SubAccounts != nil {
		c.subs = newSubState(c.env.SubAccounts)
	}
	c.rebuild()
	for _, r := range c.env.Routes {
		c.spawnRoute(ctx, r, c.env.Connections)
	}
	c.done = make(chan struct{})
	done := c.done // the tickers must not read the field, which Stopping/Restarting clears
	self, root, gate := ctx.Self(), c.env.Upstream.Root, c.env.Upstream.Fanout
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
					// A sweep over every miner during a job broadcast would
					// take its CPU; it goes right after it instead.
					gate.Wait(done, fanout.MaxWait)
					root.Send(self, mk(now))
				case <-done:
					return
				}
			}
		}()
	}
	every(c.env.TickInterval, func(t time.Time) any { return &tick{now: t} })
	every(c.env.StatsInterval, func(t time.Time) any { return &statsTick{now: t} })
	// A rebalancer moves miners between routes, which on a multi-user
	// listener would move them to another customer's sub-account.
	if c.env.Chain.HasRebalancers() && c.subs == nil {
		every(c.env.RebalanceInterval, func(t time.Time) any { return &rebalanceTick{now: t} })
	}
}
