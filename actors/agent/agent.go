// Package agent wires btcagent together: the actor system on a fixed worker
// pool, the miner event loop, and for each [[listen]] block a listener, a
// coordinator and its pool link slots. It is what cmd/btcagent runs and what
// end-to-end tests start in-process.
//
// Where each actor runs (docs/ARCHITECTURE.md): miner sessions on whichever
// goroutine delivers to them — the event loop for their bytes, a link's
// goroutine for jobs — with the share path never leaving the loop; the
// coordinators and link slots on the dispatch pool.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/coordinator"
	"github.com/btcagent/btcagent/actors/dispatch"
	"github.com/btcagent/btcagent/actors/miner"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/netio"
	"github.com/btcagent/btcagent/actors/sessionid"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/upstream"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/fanout"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/btcagent/btcagent/internal/subaccount"
	"github.com/btcagent/btcagent/plugins"
	cmap "github.com/orcaman/concurrent-map"
	"github.com/sirupsen/logrus"
)

// Options are knobs that are not part of the config file (tests, bench).
type Options struct {
	TickInterval      time.Duration // per-miner timeout sweep; default 5s
	StatsInterval     time.Duration // summary log line; default 1m
	RebalanceInterval time.Duration // route rebalancing plugins; default 1m
	Workers           int           // dispatcher workers; default 2×GOMAXPROCS
	MaxSessions       int           // session ids available (tests of exhaustion); default 65535
	// Socket, when set, may hand over an open listening socket for a
	// listener's port, which the agent then serves instead of binding the
	// port itself: tests reserve ports this way, without the race of
	// closing a probe socket and binding its port again.
	Socket func(port int) net.Listener
}

// Agent is a running btcagent.
type Agent struct {
	cfg       *config.Config
	opts      Options
	log       *logrus.Logger
	system    *actor.ActorSystem
	pool      *dispatch.Pool
	engine    *netio.Engine
	alloc     *sessionid.Allocator
	gens      atomic.Uint64
	poolMask  atomic.Uint32
	limiter   *logging.RateLimited
	mu        sync.RWMutex // guards cfg and listeners, which Reload replaces
	listeners []*Listener
	stopOnce  sync.Once
	reloadMu  sync.Mutex    // one Reload at a time, and never during Stop
	restarts  atomic.Uint64 // suffix for the names of restarted coordinators
	farm      *farmwatch.Watcher
	// fanout writes every listener's job broadcasts on all cores; sweeps
	// wait on it, since they would take the cores the broadcast uses.
	fanout *fanout.Pool
}

// Listener is one [[listen]] block at run time.
type Listener struct {
	Cfg         config.Listener
	Stats       *stats.Listener
	Chain       *plugins.Chain
	Coordinator *actor.PID
	port        *port // the socket; Reload hands it from a listener to its replacement
	minerEnv    *miner.Env
	miner       config.MinerOptions   // the accept path's copy: Reload replaces Agent.cfg
	sessions    *coordinator.Registry // live sessions; survives a coordinator restart
	a           *Agent
}

// port is one bound socket and the listener that currently takes its
// connections. The accept loop holds mu while it hands a connection over, so
// once Reload has swapped cur no connection can still reach the old listener.
type port struct {
	ln  net.Listener
	mu  sync.Mutex
	cur *Listener
	wg  sync.WaitGroup
}

func (p *port) accept(nc net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cur.accept(nc)
}

func (p *port) swap(l *Listener) {
	p.mu.Lock()
	p.cur = l
	p.mu.Unlock()
}

// serve runs the accept loop until the socket is closed.
func (p *port) serve(log logrus.FieldLogger) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = netio.AcceptLoop(p.ln, log, p.accept)
	}()
}

func (p *port) close() {
	_ = p.ln.Close()
	p.wg.Wait()
}

// Addr is the address the listener is bound to.
func (l *Listener) Addr() net.Addr { return l.port.ln.Addr() }

func init() {
	// protoactor's process registry is 1,024 concurrent maps of
	// cmap.SHARD_COUNT shards each: 32,768 locked maps and ~3 MB of heap
	// with the default of 32, for the handful of actors an agent has
	// (miner sessions are not registered). One shard per map keeps the
	// registry's 1,024-way spread and costs ~0.1 MB. The variable is read
	// only when a map is created, so it must be set before any actor
	// system exists: hence init.
	cmap.SHARD_COUNT = 1
}

// New builds an agent from a validated config; Start opens the ports.
func New(cfg *config.Config, log *logrus.Logger, opts Options) (*Agent, error) {
	if opts.TickInterval <= 0 {
		opts.TickInterval = 5 * time.Second
	}
	if opts.StatsInterval <= 0 {
		opts.StatsInterval = time.Minute
	}
	if opts.RebalanceInterval <= 0 {
		opts.RebalanceInterval = time.Minute
	}
	a := &Agent{cfg: cfg, opts: opts, log: log, alloc: sessionid.New(opts.MaxSessions)}
	a.limiter = logging.NewRateLimited(log, time.Minute)
	// The loop's longest wait is the flush window: a sink armed from
	// another goroutine (a late share via its slot) is noticed within it.
	eng, err := netio.NewEngine(netio.Config{MaxWriteBuffered: cfg.Miner.WriteBufferBytes, MaxWait: max(cfg.Upstream.FlushInterval, time.Millisecond), Log: log})
	if err != nil {
		return nil, err
	}
	a.engine = eng
	// A few hundred queued activations is plenty for a handful of actors;
	// the pool runs the rest on goroutines rather than block a sender.
	a.pool = dispatch.New(opts.Workers, 1024, 0)
	a.farm = farmwatch.New(cfg.FarmWatch, a.farmListeners, log)
	a.fanout = fanout.NewPool(runtime.NumCPU())
	a.farm.StandAsideFor(&a.fanout.Gate)
	a.system = actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(logging.SlogHandler(log, slog.LevelWarn)).With("lib", "protoactor")
		}),
		actor.WithDeadLetterThrottleCount(1),
		actor.WithDeadLetterThrottleInterval(time.Minute),
		actor.WithDeadLetterRequestLogging(false),
	)
	for _, lc := range cfg.Listen {
		chain, err := a.buildChain(cfg, lc)
		if err != nil {
			a.Stop()
			return nil, err
		}
		l, err := a.newListener(cfg, lc, chain, stats.NewListener(lc.Name, lc.Port), "")
		if err != nil {
			a.Stop()
			return nil, err
		}
		a.listeners = append(a.listeners, l)
	}
	return a, nil
}

func (a *Agent) props(p actor.Producer, opts ...actor.PropsOption) *actor.Props {
	base := []actor.PropsOption{actor.WithDispatcher(a.pool), actor.WithMailbox(actor.UnboundedLockfree())}
	return actor.PropsFromProducer(p, append(base, opts...)...)
}

// buildChain compiles the plugins of one listener; it is separate from
// newListener so that Reload can refuse a config before it changes anything.
func (a *Agent) buildChain(cfg *config.Config, lc config.Listener) (*plugins.Chain, error) {
	log := a.log.WithField("listener", lc.Name)
	chain, err := plugins.Build(cfg.Plugins, plugins.Env{Listener: lc.Name, Port: lc.Port, PoolUser: lc.PoolUser, Log: log, Farm: a.farm})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	return chain, nil
}

// newListener starts a listener's coordinator (which dials the pools); the
// port is opened by Start or handed over by Reload. nameSuffix keeps the
// coordinator's actor name unique while a replaced one is still draining.
func (a *Agent) newListener(cfg *config.Config, lc config.Listener, chain *plugins.Chain, st *stats.Listener, nameSuffix string) (*Listener, error) {
	l := &Listener{Cfg: lc, a: a, Stats: st, Chain: chain, miner: cfg.Miner, sessions: coordinator.NewRegistry()}
	log := a.log.WithField("listener", lc.Name)
	routes := []msg.Route{{Name: "", PoolUser: lc.PoolUser, Pools: poolAddrs(lc)}}
	routes = append(routes, chain.Routes()...)
	if err := withProxies(routes, lc, cfg.Upstream, a.log); err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	subs, allow, err := multiUser(lc, routes, chain)
	if err != nil {
		return nil, err
	}
	if subs != nil {
		routes = nil // every route is a sub-account's, opened by its first miner
	}
	u := cfg.Upstream
	coordEnv := &coordinator.Env{
		Listener: lc.Name, Port: lc.Port, Routes: routes, Connections: lc.Connections,
		Policy: cfg.Outage.Policy, Wait: cfg.Outage.Wait, Grace: u.HandshakeTimeout,
		FakeJobInterval: cfg.Outage.FakeJobInterval, TickInterval: a.opts.TickInterval, StatsInterval: a.opts.StatsInterval, RebalanceInterval: a.opts.RebalanceInterval,
		Upstream: upstream.Env{
			Listener: lc.Name, UserAgent: u.UserAgent, Subres: u.SubmitResponse, FlushInterval: u.FlushInterval,
			DialTimeout: u.DialTimeout, HandshakeTimeout: u.HandshakeTimeout, DeadAfter: u.DeadAfter,
			ReconnectMin: u.ReconnectMin, ReconnectMax: u.ReconnectMax, FailbackInterval: u.FailbackInterval,
			StratumWorker: lc.StratumWorker, MaxLine: 64 * 1024,
			Chain: chain, Stats: l.Stats, Gens: &a.gens, Log: a.log, Limiter: a.limiter, Root: a.system.Root, Loop: a.engine, Fanout: a.fanout,
		},
		Chain: chain, Stats: l.Stats, Alloc: a.alloc, Sessions: l.sessions, PoolMask: &a.poolMask, Log: a.log,
		SubAccounts: subs,
	}
	if coordEnv.Connections <= 0 {
		coordEnv.Connections = u.Connections
	}
	// The coordinator and its slots are restarted with backoff if they ever
	// panic; miners are not their children, so they survive that.
	cprops := a.props(coordinator.New(coordEnv), actor.WithSupervisor(actor.NewExponentialBackoffStrategy(time.Minute, time.Second)))
	pid, err := a.system.Root.SpawnNamed(cprops, "coordinator-"+strconv.Itoa(lc.Port)+"-"+lc.Name+nameSuffix)
	if err != nil {
		return nil, fmt.Errorf("listener %s: start coordinator: %w", lc.Name, err)
	}
	l.Coordinator = pid
	l.minerEnv = &miner.Env{
		Listener: lc.Name, Port: lc.Port, PoolUser: lc.PoolUser, Root: a.system.Root, Coordinator: pid, Chain: chain, Stats: l.Stats,
		MaxLine: cfg.Miner.MaxLineBytes, RateLimit: cfg.Miner.MaxRequestsPerSec,
		LoginTimeout: cfg.Miner.LoginTimeout, IdleTimeout: cfg.Miner.IdleTimeout,
		Log: log, Debug: a.log.IsLevelEnabled(logrus.DebugLevel), Limiter: a.limiter,
		PoolMask: a.poolMask.Load, MultiUser: subs != nil, Allow: allow,
	}
	return l, nil
}

// multiUser prepares a multi-user listener (nil, nil for the others): its
// pools, already given their proxies, for every sub-account's links, with
// any pool user dropped because the miners' names choose the sub-account,
// and its allow-list. Plugin routes would send miners to a fixed pool user,
// which config validation refuses on such a listener.
func multiUser(lc config.Listener, routes []msg.Route, chain *plugins.Chain) (*coordinator.SubAccounts, *subaccount.AllowList, error) {
	if !lc.MultiUser {
		return nil, nil, nil
	}
	if len(routes) > 1 {
		return nil, nil, fmt.Errorf("listener %s: plugin routes (pool-route) cannot run on a multi-user listener", lc.Name)
	}
	allow, err := lc.SubAccounts.AllowList()
	if err != nil {
		return nil, nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	pools := slices.Clone(routes[0].Pools)
	for i := range pools {
		pools[i].User = ""
	}
	n := lc.SubAccounts.Connections
	if n <= 0 {
		n = lc.Connections
	}
	return &coordinator.SubAccounts{Max: lc.SubAccounts.Max, Grace: lc.SubAccounts.Grace, Connections: max(n, 1), Pools: pools}, allow, nil
}

func poolAddrs(lc config.Listener) []msg.PoolAddr {
	out := make([]msg.PoolAddr, 0, len(lc.Pools))
	for _, p := range lc.Pools {
		out = append(out, msg.PoolAddr{Host: p.Host, Port: p.Port, User: p.User, TLS: p.TLS, TLSSkipVerify: p.TLSSkipVerify, Protocol: p.Protocol, AuthorityPubkey: p.AuthorityPubkey, SV2TOFU: p.SV2TOFU})
	}
	return out
}

// Start opens every listener's port and starts accepting miners.
func (a *Agent) Start() error {
	for _, l := range a.Listeners() {
		ln, err := a.listen(l.Cfg)
		if err != nil {
			a.Stop()
			return err
		}
		a.serve(l, ln)
	}
	a.farm.Start()
	return nil
}

// listen takes the socket Options.Socket holds for lc's port, or binds it.
func (a *Agent) listen(lc config.Listener) (net.Listener, error) {
	if a.opts.Socket != nil {
		if ln := a.opts.Socket(lc.Port); ln != nil {
			return ln, nil
		}
	}
	return listen(lc)
}

func listen(lc config.Listener) (net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(lc.Address, strconv.Itoa(lc.Port)))
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	return ln, nil
}

// serve starts accepting miners on ln for l.
func (a *Agent) serve(l *Listener, ln net.Listener) {
	p := &port{ln: ln, cur: l}
	l.port = p
	a.log.WithFields(logrus.Fields{"listener": l.Cfg.Name, "addr": ln.Addr().String(), "pool_user": l.Cfg.PoolUser, "pools": len(l.Cfg.Pools)}).Info("listening for miners")
	p.serve(a.log.WithField("listener", l.Cfg.Name))
}

// Listeners returns the running listeners. The slice is a copy: Reload may
// replace listeners at any time, so callers should not keep it for long.
func (a *Agent) Listeners() []*Listener {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]*Listener(nil), a.listeners...)
}

// System exposes the actor system (tests, API).
func (a *Agent) System() *actor.ActorSystem { return a.system }

// Sessions reports the session ids in use.
func (a *Agent) Sessions() int { return a.alloc.InUse() }

var agentFull = codec.AppendError(nil, nil, 20, "agent full: all miner session ids are in use, try another agent")

func (l *Listener) accept(nc net.Conn) {
	a := l.a
	remote := nc.RemoteAddr().(*net.TCPAddr).AddrPort()
	sid, ok := a.alloc.Alloc()
	if !ok {
		a.limiter.Warn("agent-full", logrus.Fields{"listener": l.Cfg.Name}, "all session ids in use; refusing new miners")
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(agentFull)
		_ = nc.Close()
		return
	}
	if l.Chain != nil {
		c := &msg.MinerConnecting{Listener: l.Cfg.Name, Port: l.Cfg.Port, Remote: remote}
		if v := l.Chain.OnConnect(c); v != msg.Continue {
			text := c.Text
			if text == "" {
				text = "connection refused by policy"
			}
			_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = nc.Write(codec.AppendError(nil, nil, codec.StatusIPBanned, text))
			_ = nc.Close()
			a.alloc.Free(sid)
			return
		}
	}
	st := &stats.Miner{SessionID: sid, Remote: remote, Connected: time.Now()}
	sess := miner.New(l.minerEnv, sid, st)
	l.sessions.Add(sid, sess)
	a.system.Root.Send(l.Coordinator, &coordinator.MinerOpened{SessionID: sid, Miner: sess, Stats: st})
	c, err := a.engine.Add(nc, sess)
	if err != nil {
		a.log.WithError(err).Warn("cannot watch miner connection")
		sess.Tell(&miner.Closed{Err: err})
		return
	}
	sess.Tell(&miner.Start{Conn: c})
}

// Stop closes the ports, tells every miner and pool link to go, and waits
// briefly for the UNREGISTER frames to be written.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		a.reloadMu.Lock()
		defer a.reloadMu.Unlock()
		a.farm.Stop() // first: its last save still sees the miners connected
		ls := a.Listeners()
		for _, l := range ls {
			if l.port != nil {
				l.port.close()
			}
		}
		for _, l := range ls {
			if l.Coordinator != nil {
				_ = a.system.Root.StopFuture(l.Coordinator).Wait()
			}
		}
		if a.engine != nil {
			a.engine.Stop()
		}
		a.system.Shutdown()
		a.pool.Close()
		a.fanout.Stop()
		a.limiter.Flush()
	})
}

// Snapshot asks a listener's coordinator for its state.
func (l *Listener) Snapshot(timeout time.Duration) (*wire.Snapshot, error) {
	res, err := l.a.system.Root.RequestFuture(l.Coordinator, &wire.SnapshotRequest{}, timeout).Result()
	if err != nil {
		return nil, err
	}
	s, ok := res.(*wire.Snapshot)
	if !ok {
		return nil, fmt.Errorf("unexpected snapshot reply %T", res)
	}
	return s, nil
}

// WaitReady blocks until every listener has at least n ready pool links;
// multi-user listeners, whose links open with their miners, are skipped.
func (a *Agent) WaitReady(ctx context.Context, n int) error {
	for {
		ok := true
		for _, l := range a.Listeners() {
			if l.Cfg.MultiUser {
				continue // no links before its first miner
			}
			s, err := l.Snapshot(time.Second)
			if err != nil {
				return err
			}
			r := 0
			for _, u := range s.Upstreams {
				if u.Ready {
					r++
				}
			}
			if r < n {
				ok = false
			}
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
