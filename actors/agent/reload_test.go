package agent_test

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// twoListeners returns a config with listeners "a" -> poolA and "b" -> poolB
// on free loopback ports.
func twoListeners(t *testing.T, poolA, poolB string) *config.Config {
	t.Helper()
	cfg := testenv.Config(t, "farm", poolA)
	cfg.Listen[0].Name = "a"
	b := testenv.Config(t, "farm2", poolB).Listen[0]
	b.Name = "b"
	cfg.Listen = append(cfg.Listen, b)
	return cfg
}

// clone deep-copies the parts of a config that tests modify.
func clone(cfg *config.Config) *config.Config {
	c := *cfg
	c.Listen = nil
	for _, l := range cfg.Listen {
		l.Pools = slices.Clone(l.Pools)
		c.Listen = append(c.Listen, l)
	}
	c.Plugins = slices.Clone(cfg.Plugins)
	return &c
}

func poolOf(t *testing.T, addr string) config.Pool {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return config.Pool{Host: host, Port: p, Protocol: config.ProtocolAgent}
}

func addrOf(l *agent.Listener) string { return l.Addr().String() }

// Changing one listener's pool list under load moves that listener's miners
// to the new pool and leaves the other listener's miners alone: not a single
// disconnect, reconnect or client.reconnect, and their shares keep flowing.
func TestReloadPoolListChangeKeepsOtherListeners(t *testing.T) {
	poolA := testenv.Pool(t, poolsim.Config{})
	poolB1 := testenv.Pool(t, poolsim.Config{})
	poolB2 := testenv.Pool(t, poolsim.Config{})
	cfg := twoListeners(t, poolA.Addr(), poolB1.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	ls := a.Listeners()
	const n = 4
	simA := testenv.Miners(t, minersim.Config{Target: addrOf(ls[0]), Miners: n, Hash: true, HashThreads: 2, VersionRolling: true})
	simB := testenv.Miners(t, minersim.Config{Target: addrOf(ls[1]), Miners: n, Hash: true, HashThreads: 2, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	ctx := testenv.Ctx(t)
	for _, s := range []*minersim.Sim{simA, simB} {
		if err := s.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= n }); err != nil {
			t.Fatalf("no shares before the reload: %v", err)
		}
	}
	statsB := ls[1].Stats
	acceptedB := statsB.Accepted.Load()

	next := clone(cfg)
	next.Listen[1].Pools = []config.Pool{poolOf(t, poolB2.Addr())}
	res, err := a.Reload(next)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	if !slices.Equal(res.Restarted, []string{"b"}) || !slices.Equal(res.Unchanged, []string{"a"}) || len(res.Started)+len(res.Stopped) != 0 {
		t.Fatalf("reload result %+v, want b restarted and a unchanged", res)
	}

	// b's miners were told to reconnect and now mine on the new pool.
	if err := simB.WaitFor(ctx, func(s *minersim.Summary) bool { return s.ReconnectRequests >= n && s.Authorized == n }); err != nil {
		t.Fatalf("b's miners did not come back: %v; %+v", err, simB.Stats())
	}
	if err := poolB2.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= n && s.Totals.RegisteredWorkers == n }); err != nil {
		t.Fatalf("new pool got no shares: %v; %+v", err, poolB2.Stats().Totals)
	}
	if err := poolB1.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.AgentConns == 0 }); err != nil {
		t.Fatalf("old pool link still open: %+v", poolB1.Stats().Totals)
	}
	// a's miners keep mining on the same connections.
	markA := poolA.Stats().Totals.Accepted
	if err := poolA.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= markA+n }); err != nil {
		t.Fatalf("listener a stopped working: %v", err)
	}
	if s := simA.Stats(); s.Disconnects != 0 || s.Reconnects != 0 || s.ReconnectRequests != 0 || s.Authorized != n {
		t.Fatalf("listener a's miners were disturbed: %+v", s)
	}
	// Session ids of the replaced sessions were freed, counters carried over.
	if got := a.Sessions(); got != 2*n {
		t.Fatalf("sessions in use %d, want %d", got, 2*n)
	}
	now := a.Listeners()
	if now[0] != ls[0] || now[1] == ls[1] || now[1].Stats != statsB || statsB.Accepted.Load() < acceptedB {
		t.Fatalf("listeners after reload: a kept %v, b replaced %v, b stats kept %v", now[0] == ls[0], now[1] != ls[1], now[1].Stats == statsB)
	}
	if c := statsB.MinersConn.Load(); c != n {
		t.Fatalf("listener b counts %d connected miners, want %d", c, n)
	}
}

// A config whose plugins cannot be built is refused before anything changes:
// the new port is not opened and the running listeners keep serving.
func TestReloadRefusedLeavesAgentUntouched(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	before := a.Listeners()
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 3, Hash: true})
	ctx := testenv.Ctx(t)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 3 }); err != nil {
		t.Fatal(err)
	}

	next := clone(cfg)
	extra := testenv.Config(t, "other", pool.Addr()).Listen[0]
	extra.Name = "extra"
	next.Listen = append(next.Listen, extra)
	next.Listen[0].Pools = append(next.Listen[0].Pools, poolOf(t, "127.0.0.1:1"))
	next.Plugins = []config.PluginSpec{config.NewPluginSpec("no-such-plugin", nil)}
	if _, err := a.Reload(next); err == nil {
		t.Fatal("reload with an unknown plugin succeeded")
	}
	after := a.Listeners()
	if len(after) != 1 || after[0] != before[0] {
		t.Fatalf("listeners changed by a refused reload: %d", len(after))
	}
	// The port is reserved by the test; an agent that opened it took the
	// reserved socket.
	ln := testenv.Socket(extra.Port)
	if ln == nil {
		t.Fatal("the new listener's port was opened by a refused reload")
	}
	ln.Close()
	mark := sim.Stats().SharesAccepted
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= mark+3 }); err != nil {
		t.Fatalf("agent stopped serving after a refused reload: %v", err)
	}
	if s := sim.Stats(); s.Disconnects != 0 || s.ReconnectRequests != 0 {
		t.Fatalf("miners disturbed by a refused reload: %+v", s)
	}
}

// Adding and removing listeners: the new port serves at once, the removed
// port is closed and its miners disconnected, the third one is untouched.
func TestReloadAddRemoveListeners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := twoListeners(t, pool.Addr(), pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	ls := a.Listeners()
	simA := testenv.Miners(t, minersim.Config{Target: addrOf(ls[0]), Miners: 2, Hash: true})
	simB := testenv.Miners(t, minersim.Config{Target: addrOf(ls[1]), Miners: 2, Hash: true, WorkerPrefix: "b", ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	ctx := testenv.Ctx(t)
	for _, s := range []*minersim.Sim{simA, simB} {
		if err := s.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 2 }); err != nil {
			t.Fatal(err)
		}
	}

	next := clone(cfg)
	c := testenv.Config(t, "farm3", pool.Addr()).Listen[0]
	c.Name = "c"
	next.Listen = []config.Listener{next.Listen[0], c}
	res, err := a.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Started, []string{"c"}) || !slices.Equal(res.Stopped, []string{"b"}) || !slices.Equal(res.Unchanged, []string{"a"}) {
		t.Fatalf("reload result %+v", res)
	}
	if err := simB.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Disconnects >= 2 && s.ConnectErrors >= 1 }); err != nil {
		t.Fatalf("miners of the removed listener not disconnected: %+v", simB.Stats())
	}
	now := a.Listeners()
	if len(now) != 2 || now[0] != ls[0] || now[1].Cfg.Name != "c" {
		t.Fatalf("listeners after reload: %d", len(now))
	}
	simC := testenv.Miners(t, minersim.Config{Target: addrOf(now[1]), Miners: 2, Hash: true, WorkerPrefix: "c"})
	if err := simC.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 2 }); err != nil {
		t.Fatalf("new listener does not serve: %v", err)
	}
	if s := simA.Stats(); s.Disconnects != 0 || s.Reconnects != 0 {
		t.Fatalf("listener a disturbed: %+v", s)
	}
	if got := a.Sessions(); got != 4 {
		t.Fatalf("sessions in use %d, want 4 (a and c)", got)
	}
}
