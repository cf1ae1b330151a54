package agent_test

import (
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func accepted(s *minersim.Summary) int64 { return s.SharesAccepted }

// The whole pool restarts: under the "wait" policy miners keep their
// connections, get no work while it is down, and resume accepted shares when
// it is back, on new links with new extranonce1 values.
func TestPoolRestartWaitPolicyKeepsMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Outage.Policy = config.OutageWait
	cfg.Outage.Wait = time.Minute
	a := testenv.Agent(t, cfg, agent.Options{})
	const n = 10
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, VersionRolling: true})
	ctx := testenv.Ctx(t)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 3*n }); err != nil {
		t.Fatal(err)
	}
	before := pool.Stats().Totals.Accepted
	if err := pool.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.RegisteredWorkers >= n && s.Totals.Accepted >= before+uint64(3*n)
	}); err != nil {
		t.Fatalf("no accepted shares after the restart: %v (%+v)", err, pool.Stats().Totals)
	}
	s := sim.Stats()
	if s.Reconnects != 0 || s.Disconnects != 0 {
		t.Fatalf("miners were dropped: reconnects %d disconnects %d", s.Reconnects, s.Disconnects)
	}
	if st := pool.Stats(); st.Totals.Dropped != 0 {
		t.Fatalf("pool dropped %d shares without a verdict", st.Totals.Dropped)
	}
}

// Under the "disconnect" policy the miners are closed when the pool goes
// away, so that they fail over to their own backup pools; they come back
// when it returns.
func TestPoolDownDisconnectPolicyDropsMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Outage.Policy = config.OutageDisconnect
	a := testenv.Agent(t, cfg, agent.Options{})
	const n = 5
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, ReconnectMin: 100 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	ctx := testenv.Ctx(t)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= n }); err != nil {
		t.Fatal(err)
	}
	pool.SetRefuse(true)
	pool.DropAll()
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Disconnects >= n }); err != nil {
		t.Fatalf("miners not disconnected: %+v", sim.Stats())
	}
	pool.SetRefuse(false)
	mark := sim.Stats().SharesAccepted
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Authorized == n && s.SharesAccepted >= mark+n }); err != nil {
		t.Fatalf("miners did not come back: %+v", sim.Stats())
	}
}

// Failover along the ordered pool list: the first pool refuses, the second
// serves; the miners never notice.
func TestFailoverToSecondPool(t *testing.T) {
	dead := testenv.Pool(t, poolsim.Config{})
	dead.SetRefuse(true)
	good := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", dead.Addr(), good.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 4, Hash: true, MaxSharesPerMiner: 2})
	if err := sim.WaitFor(testenv.Ctx(t), func(s *minersim.Summary) bool { return s.SharesAccepted >= 8 }); err != nil {
		t.Fatal(err)
	}
	// Without subres a share is answered when it is handed to the link's
	// writer, so the pool may count the last ones a moment later.
	if err := good.WaitFor(testenv.Ctx(t), func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 8 }); err != nil || dead.Stats().Totals.Accepted != 0 {
		t.Fatalf("good pool %d, dead pool %d", good.Stats().Totals.Accepted, dead.Stats().Totals.Accepted)
	}
	if a.Listeners()[0].Stats.Failovers.Load() == 0 {
		t.Fatal("failover not counted")
	}
}
