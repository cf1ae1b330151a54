// Package agent wires btcagent together: the actor system on a fixed worker
// pool, the shared miner event loop, and for each [[listen]] block a listener,
// a coordinator and its pool link slots. It is what cmd/btcagent runs and what
// end-to-end tests start in-process.
package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

// Options are knobs that are not part of the config file (tests, bench).
type Options struct {
	TickInterval      time.Duration // per-miner timeout sweep; default 5s
	StatsInterval     time.Duration // summary log line; default 1m
	RebalanceInterval time.Duration // route rebalancing plugins; default 1m
	Workers           int           // dispatcher workers; default 2×GOMAXPROCS
	MaxSessions       int           // session ids available (tests of exhaustion); default 65535
	// PooledSessions runs miner sessions on the worker pool instead of inline
	// on the sending goroutine (for comparison benchmarks).
	PooledSessions bool
	// Socket, when set, may hand over an open listening socket for a
	// listener's port, which the agent then serves instead of binding the
	// port itself: tests reserve ports this way, without the race of
	// closing a probe socket and binding its port again.
	Socket func(port int) net.Listener
}

// Agent is a running btcagent.
type Agent struct {
	cfg        *config.Config
	opts       Options
	log        *logrus.Logger
	system     *actor.ActorSystem
	pool       *dispatch.Pool
	engine     *netio.Engine
	alloc      *sessionid.Allocator
	gens       atomic.Uint64
	poolMask   atomic.Uint32
	limiter    *logging.RateLimited
	mu         sync.RWMutex // guards cfg and listeners, which Reload replaces
	listeners  []*Listener
	minerProps func(l *Listener) *actor.Props
	stopOnce   sync.Once
	reloadMu   sync.Mutex    // one Reload at a time, and never during Stop
	restarts   atomic.Uint64 // suffix for the names of restarted coordinators
}

// Listener is one [[listen]] block at run time.
type Listener struct {
	Cfg         config.Listener
	Stats       *stats.Listener
	Chain       *plugins.Chain
	Coordinator *actor.PID
	port        *port // the socket; Reload hands it from a listener to its replacement
	minerEnv    *miner.Env
	miner       config.MinerOptions // the accept path's copy: Reload replaces Agent.cfg
	props       *actor.Props
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
	a.pool = dispatch.New(opts.Workers, 0, 0)
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
	// The event loop starts last: nothing after it can fail, so a refused
	// config never has to stop a loop that has just started.
	eng, err := netio.NewEngine(netio.Config{MaxWriteBuffered: cfg.Miner.WriteBufferBytes, Log: log})
	if err != nil {
		a.Stop()
		return nil, err
	}
	a.engine = eng
	return a, nil
}

func (a *Agent) props(p actor.Producer, opts ...actor.PropsOption) *actor.Props {
	base := []actor.PropsOption{actor.WithDispatcher(a.pool), actor.WithMailbox(actor.UnboundedLockfree())}
	return actor.PropsFromProducer(p, append(base, opts...)...)
}

// stopOnPanic is the miners' supervisor: a panic closes that miner only.
var stopOnPanic = actor.NewOneForOneStrategy(0, time.Second, func(reason any) actor.Directive {
	return actor.StopDirective
})

// buildChain compiles the plugins of one listener; it is separate from
// newListener so that Reload can refuse a config before it changes anything.
func (a *Agent) buildChain(cfg *config.Config, lc config.Listener) (*plugins.Chain, error) {
	log := a.log.WithField("listener", lc.Name)
	chain, err := plugins.Build(cfg.Plugins, plugins.Env{Listener: lc.Name, Port: lc.Port, PoolUser: lc.PoolUser, Log: log})
	if err != nil {
		return nil, fmt.Errorf("listener %s: %w", lc.Name, err)
	}
	return chain, nil
}

// newListener starts a listener's coordinator (which dials the pools); the
// port is opened by Start or handed over by Reload. nameSuffix keeps the
// coordinator's actor name unique while a replaced one is still draining.
func (a *Agent) newListener(cfg *config.Config, lc config.Listener, chain *plugins.Chain, st *stats.Listener, nameSuffix string) (*Listener, error) {
	l := &Listener{Cfg: lc, a: a, Stats: st, Chain: chain, miner: cfg.Miner}
	log := a.log.WithField("listener", lc.Name)
	routes := []msg.Route{{Name: "", PoolUser: lc.PoolUser, Pools: poolAddrs(lc)}}
	routes = append(routes, chain.Routes()...)
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
			Chain: chain, Stats: l.Stats, Gens: &a.gens, Log: a.log, Root: a.system.Root,
		},
		Chain: chain, Stats: l.Stats, Alloc: a.alloc, PoolMask: &a.poolMask, Log: a.log,
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
		Listener: lc.Name, Port: lc.Port, PoolUser: lc.PoolUser, Coordinator: pid, Chain: chain, Stats: l.Stats,
		LoginTimeout: cfg.Miner.LoginTimeout, IdleTimeout: cfg.Miner.IdleTimeout,
		Log: log, Debug: a.log.IsLevelEnabled(logrus.DebugLevel), Limiter: a.limiter,
		PoolMask: a.poolMask.Load,
	}
	if a.opts.PooledSessions {
		l.props = a.props(miner.New(l.minerEnv), actor.WithGuardian(stopOnPanic))
	} else {
		// Miner sessions run inline on whichever goroutine sends to them (the
		// event loop for requests, the link's worker for jobs and verdicts):
		// their Receive never blocks, and this saves a goroutine wake-up per
		// message, which is most of the CPU per share.
		l.props = actor.PropsFromProducer(miner.New(l.minerEnv),
			actor.WithDispatcher(actor.NewSynchronizedDispatcher(64)),
			actor.WithMailbox(actor.UnboundedLockfree()),
			actor.WithGuardian(stopOnPanic))
	}
	return l, nil
}

func poolAddrs(lc config.Listener) []msg.PoolAddr {
	out := make([]msg.PoolAddr, 0, len(lc.Pools))
	for _, p := range lc.Pools {
		out = append(out, msg.PoolAddr{Host: p.Host, Port: p.Port, User: p.User, TLS: p.TLS, TLSSkipVerify: p.TLSSkipVerify, Protocol: p.Protocol})
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
	pid := a.system.Root.Spawn(l.props)
	a.system.Root.Send(l.Coordinator, &coordinator.MinerOpened{SessionID: sid, PID: pid, Stats: st})
	h := &connHandler{root: a.system.Root, pid: pid, split: codec.Splitter{MaxLine: l.miner.MaxLineBytes}, rate: float64(l.miner.MaxRequestsPerSec), limiter: a.limiter}
	h.tokens = 2 * h.rate
	// The session needs its connection before the first line; the event loop
	// only starts delivering after Add, so Start is first in the mailbox.
	start := &miner.Start{SessionID: sid, Stats: st}
	c, err := a.engine.AddPending(nc, h, func(c *netio.Conn) { start.Conn = c; a.system.Root.Send(pid, start) })
	if err != nil {
		a.log.WithError(err).Warn("cannot watch miner connection")
		a.system.Root.Stop(pid)
		return
	}
	_ = c
}

// connHandler runs on the event loop: it frames lines, enforces the request
// rate and hands complete lines to the miner's actor.
type connHandler struct {
	root    *actor.RootContext
	pid     *actor.PID
	split   codec.Splitter
	rate    float64
	tokens  float64
	last    time.Time
	dropped int
	kicked  bool
	started bool // a first non-blank byte arrived
	limiter *logging.RateLimited
}

func (h *connHandler) OnData(c *netio.Conn, data []byte) {
	if h.kicked {
		return
	}
	if !h.started {
		// A Stratum client's first byte is '{'. TLS hellos, binary probes and
		// the like may never send a newline: hand them to the session as a
		// line now (it logs and closes) instead of holding the connection
		// and its session id until the login timeout.
		rest := bytes.TrimLeft(data, " \t\r\n")
		if len(rest) == 0 {
			return
		}
		h.started = true
		if rest[0] != '{' {
			h.kicked = true
			h.root.Send(h.pid, &miner.Line{B: append([]byte(nil), rest[:min(len(rest), 64)]...)})
			return
		}
	}
	err := h.split.Feed(data, func(ch codec.Chunk) error {
		if !h.allow() {
			return errRate
		}
		h.root.Send(h.pid, &miner.Line{B: append([]byte(nil), ch.Line...)})
		return nil
	})
	if err == nil {
		return
	}
	h.kicked = true
	reason := err.Error()
	switch {
	case errors.Is(err, codec.ErrLineTooLong):
		h.limiter.Warn("line-too-long", logrus.Fields{"remote": c.Remote().String()}, "miner sent a line over the length cap; closing")
		_ = c.Write(codec.AppendError(nil, nil, codec.StatusIllegalParams, "request line too long"))
	case errors.Is(err, errRate):
		h.limiter.Warn("request-flood", logrus.Fields{"remote": c.Remote().String()}, "miner exceeded the request rate limit; closing")
	}
	h.root.Send(h.pid, &miner.Kick{Reason: reason})
}

var errRate = errors.New("request rate limit exceeded")

// allow is a token bucket: bursts up to twice the per-second rate, then lines
// are dropped; a miner that keeps flooding is disconnected.
func (h *connHandler) allow() bool {
	if h.rate <= 0 {
		return true
	}
	now := time.Now()
	if !h.last.IsZero() {
		h.tokens += now.Sub(h.last).Seconds() * h.rate
		if h.tokens > 2*h.rate {
			h.tokens = 2 * h.rate
		}
	}
	h.last = now
	if h.tokens >= 1 {
		h.tokens--
		return true
	}
	h.dropped++
	return h.dropped <= int(2*h.rate)
}

func (h *connHandler) OnClose(c *netio.Conn, err error) {
	h.root.Send(h.pid, &miner.Closed{Err: err})
}

// Stop closes the ports, tells every miner and pool link to go, and waits
// briefly for the UNREGISTER frames to be written.
func (a *Agent) Stop() {
	a.stopOnce.Do(func() {
		a.reloadMu.Lock()
		defer a.reloadMu.Unlock()
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

// WaitReady blocks until every listener has at least n ready pool links.
func (a *Agent) WaitReady(ctx context.Context, n int) error {
	for {
		ok := true
		for _, l := range a.Listeners() {
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
