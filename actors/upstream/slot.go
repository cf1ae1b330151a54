// Package upstream is one pool link slot: an actor that keeps a connection
// to the first pool of its ordered list that accepts it, places the miners
// the coordinator attaches on it, and fans the pool's jobs and difficulties
// out to them in the pool's order. A lost link detaches its miners (the
// coordinator moves them) and reconnects with capped, jittered exponential
// backoff; while on a backup pool the slot periodically tries the better
// ones and moves its miners back when one answers (failback).
//
// Each pool entry names its protocol. The slot knows protocols only through
// the interfaces in protocol.go, and speaks the same messages to the
// coordinator and the miners whichever it is:
//
//   - agent (proto_agent.go): the BTCAgent protocol. One connection for all
//     the slot's miners: REGISTER_WORKER per miner, binary submits
//     coalesced per flush window, SET_DIFF per miner, SUBMIT_RESPONSE verdicts.
//   - stratum (proto_stratum.go): plain Stratum V1, one connection for all
//     the slot's miners, authorized as "<pool user>.<listener>". The pool must
//     give an extranonce2 of at least 8 bytes: miners keep the agent layout
//     (EN1 "0000SSSS", EN2 4 bytes) and the session id travels inside the
//     pool's EN2, so miners move between agent and stratum links without
//     noticing (enmap.go).
//   - stratum-per-miner (proto_perminer.go): a control connection (it proves
//     the pool is up and gives failover and failback something to hold on
//     to) plus one connection per attached miner, authorized as
//     "<pool user>.<worker>".
//   - sv2 and sv2-per-miner (proto_sv2*.go): Stratum V2 over Noise, one
//     extended channel per link for all its miners, or one per miner on the
//     link's connection (docs/SV2.md).
//
// File map: slot.go (the actor and its messages), lifecycle.go (dialling,
// failover, failback, retirement), members.go (miners, jobs, shares),
// conn.go (the socket and its writer), handshake.go and readloop.go
// (shared by the JSON protocols), sink.go (the agent share path).
package upstream

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/fanout"
	"github.com/btcagent/btcagent/internal/logging"
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
	// Limiter rate-limits warnings that a pool or a miner can repeat at
	// will; nil: one per slot, once a minute per kind.
	Limiter *logging.RateLimited
	// Root sends messages from the link's goroutines into the actor.
	Root *actor.RootContext
	// Loop flushes agent links' share buffers (nil: a timer per window).
	Loop FlushLoop
	// Fanout writes a job to this slot's miners on every core, and is the
	// gate that sweeps over all miners wait on meanwhile (process-wide;
	// nil: the slot writes alone).
	Fanout *fanout.Pool
}

// attached is a miner the coordinator placed on this slot.
type attached struct {
	miner  wire.Miner
	agent  string
	worker string
	mask   uint32
	xsub   bool // the miner accepts mining.set_extranonce
	st     *stats.Miner
	cur    *link  // the link serving it (nil while its own link is dialled)
	want   uint64 // stratum-per-miner: the dial in progress for it (0: none)
}

// Slot is the actor.
type Slot struct {
	env        *Env
	self       *actor.PID
	ctx        context.Context
	stop       context.CancelFunc
	link       *link            // the main link; the slot is ready while it is set
	links      map[uint64]*link // every open link by generation: main, retiring, solo
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

	perMiner perMinerDials // stratum-per-miner: the per-miner dial queue

	actx actor.Context // the actor's context (the same for its whole life)
}

// tell sends m to an actor from the slot.
func (s *Slot) tell(to *actor.PID, m any) { s.actx.Send(to, m) }

// New returns the slot's producer.
func New(env *Env) actor.Producer {
	if env.Limiter == nil {
		env.Limiter = logging.NewRateLimited(env.Log, time.Minute)
	}
	return func() actor.Actor {
		return &Slot{env: env, attached: map[uint16]*attached{}, links: map[uint64]*link{}}
	}
}

// Messages from the link goroutines and timers. Each names the link
// generation it is about: a message for a link that is gone is dropped.
type (
	linkUp struct { // a dial finished its handshake
		l      *link
		pool   int
		swtch  bool // failback or pool-requested reconnect: replaces a working link
		reason string
	}
	linkFailed struct { // a dial failed
		err   error
		pool  int
		swtch bool
	}
	linkDown struct {
		gen uint64
		err error
	} // the connection ended
	poolJob struct {
		gen uint64
		n   *codec.Notify
		at  time.Time
	}
	poolMask struct {
		gen  uint64
		mask uint32
	}
	poolDiff struct {
		gen  uint64
		d    float64
		sids []uint16
	} // sids nil: the link's own difficulty
	poolReconnect struct{ gen uint64 }
	retireCheck   struct{ gen uint64 }
	failbackTick  struct{}
	redial        struct{}
)

// Receive dispatches.
func (s *Slot) Receive(ctx actor.Context) {
	s.actx = ctx
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.self = ctx.Self()
		s.ctx, s.stop = context.WithCancel(context.Background())
		s.startDial()
	case *wire.Attach:
		s.attach(m)
	case *wire.Detach:
		s.detach(m.SessionID)
	case *wire.Submit:
		s.submit(m)
	case *linkUp:
		if m.swtch {
			s.onSwitchUp(m)
		} else {
			s.onUp(m.l, m.pool)
		}
	case *linkFailed:
		if m.swtch {
			s.onSwitchFailed(m)
		} else {
			s.onFailed(m)
		}
	case *linkDown:
		if l := s.links[m.gen]; l != nil {
			s.down(l, m.err)
		}
	case *linkEvent:
		if l := s.links[m.gen]; l != nil {
			l.proto.handle(s, l, m.ev)
		}
	case *poolJob:
		if l := s.live(m.gen); l != nil {
			s.onJob(l, m.n, m.at)
		}
	case *poolDiff:
		if l := s.live(m.gen); l != nil {
			s.onDiff(l, m.d, m.sids)
		}
	case *poolMask:
		if l := s.live(m.gen); l != nil {
			s.onMask(l, m.mask)
		}
	case *poolReconnect:
		if l := s.live(m.gen); l != nil {
			s.reconnect(l, "the pool sent client.reconnect")
		}
	case *retireCheck:
		if l := s.links[m.gen]; l != nil {
			s.checkRetire(l, true)
		}
	case *failbackTick:
		s.onFailbackTick()
	case *redial:
		s.startDial()
	case *minerUp:
		s.onMinerUp(m)
	case *actor.Stopping:
		if s.stop != nil {
			s.stop()
		}
		for _, l := range s.links {
			l.proto.failAll(s, "agent shutting down")
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

// limited logs a warning of this kind at most once a minute per slot, with
// the number of occurrences it stood for. Safe on any goroutine.
func (s *Slot) limited(kind string, f map[string]any, text string) {
	f["listener"], f["slot"] = s.env.Listener, s.env.Slot
	s.env.Limiter.Warn(s.env.Listener+"/"+strconv.Itoa(s.env.Slot)+"/"+kind, f, text)
}

// badJob logs a malformed job from pool, at most once a minute per pool.
func (s *Slot) badJob(pool string, err error) {
	s.limited("bad-job/"+pool, logrus.Fields{"pool": pool, "error": err.Error()}, "malformed job from pool; skipped, the link is kept")
}

func poolFields(l *link) map[string]any { return map[string]any{"pool": l.name} }
