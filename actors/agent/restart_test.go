package agent_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// A coordinator that panics is restarted by its supervisor. The new
// instance takes its miners over from the listener's session registry:
// they stay connected, are placed on the new links, keep getting shares
// accepted, and their session ids are freed when they leave.
func TestCoordinatorRestartKeepsItsMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	ctx := testenv.Ctx(t)
	if err := a.WaitReady(ctx, cfg.Upstream.Connections); err != nil {
		t.Fatal(err)
	}
	const n = 12
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true})
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers == n && s.Totals.Accepted >= 2*n }); err != nil {
		t.Fatalf("%v: %+v; miners %+v", err, pool.Stats().Totals, sim.Stats())
	}
	l := a.Listeners()[0]
	linksBefore := pool.Stats().Totals.AgentConnsTotal

	// A slot index the coordinator never created: an index out of range.
	a.System().Root.Send(l.Coordinator, &wire.UpstreamReady{Slot: 99})

	// The restarted coordinator dials new links (the old ones went with its
	// children) and places every miner on them again.
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.AgentConnsTotal >= linksBefore+uint64(cfg.Upstream.Connections) && s.Totals.RegisteredWorkers == n
	}); err != nil {
		t.Fatalf("miners not registered on new links after the restart: %v %+v", err, pool.Stats().Totals)
	}
	snap := waitSnapshot(t, ctx, l, func(m, placed int) bool { return m == n && placed == n })
	if snap.Miners != n {
		t.Fatalf("restarted coordinator knows %d miners, want %d", snap.Miners, n)
	}
	accepted := pool.Stats().Totals.Accepted
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= accepted+2*n }); err != nil {
		t.Fatalf("shares stopped after the restart: %v", err)
	}
	if s := sim.Stats(); s.Disconnects != 0 || s.Reconnects != 0 {
		t.Fatalf("miners were disconnected by the restart: %+v", s)
	}

	// Every id comes back when the miners leave.
	sim.Stop()
	for deadline := time.Now().Add(testenv.Timeout); a.Sessions() != 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d session ids still in use after every miner left", a.Sessions())
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // the ids are freed by the coordinator; nothing to await
	}
}

func waitSnapshot(t *testing.T, ctx context.Context, l *agent.Listener, ok func(miners, placed int) bool) (snap struct{ Miners, Placed int }) {
	t.Helper()
	for {
		s, err := l.Snapshot(time.Second)
		if err == nil {
			snap.Miners, snap.Placed = s.Miners, s.Placed
			if ok(s.Miners, s.Placed) {
				return snap
			}
		}
		select {
		case <-ctx.Done():
			return snap
		case <-time.After(20 * time.Millisecond):
		}
	}
}
