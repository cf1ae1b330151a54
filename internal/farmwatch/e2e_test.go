package farmwatch_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func farmConfig(t *testing.T, pool *poolsim.Pool) *config.Config {
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.FarmWatch.SweepInterval = 100 * time.Millisecond
	cfg.FarmWatch.Grace = 5 * time.Second
	cfg.FarmWatch.IdleMin = time.Minute
	cfg.FarmWatch.HashrateDropPercent = 0
	return cfg
}

// A miner whose hashrate falls to a tenth of its own average is flagged
// slow through the real agent, while a steady neighbour stays online.
func TestSlowMinerFlagged(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := farmConfig(t, pool)
	cfg.FarmWatch.SlowWindow = 6 * time.Second // trusted after 1 s
	cfg.FarmWatch.SlowPercent = 50
	a := testenv.Agent(t, cfg, agent.Options{})
	w := a.Farm()
	target := testenv.Addr(a)
	testenv.Miners(t, minersim.Config{Target: target, Miners: 1, WorkerPrefix: "steady", ShareInterval: 50 * time.Millisecond})
	fast := testenv.Miners(t, minersim.Config{Target: target, Miners: 1, WorkerPrefix: "rig", ShareInterval: 20 * time.Millisecond})
	// About two seconds of shares at the fast rate build the average.
	if err := fast.WaitFor(testenv.Ctx(t), func(s *minersim.Summary) bool { return s.SharesAccepted >= 100 }); err != nil {
		t.Fatal(err)
	}
	status := func(worker string) farmwatch.Status {
		m, _ := w.Lookup(cfg.Listen[0].Name, worker)
		return m.Status
	}
	if s := status("farm.rig000"); s != farmwatch.Online {
		t.Fatalf("rig is %s before it slows down", s)
	}
	// The same rig, with most of its hashboards gone: a share every 400 ms.
	fast.Stop()
	testenv.Miners(t, minersim.Config{Target: target, Miners: 1, WorkerPrefix: "rig", ShareInterval: 400 * time.Millisecond})
	waitUntil(t, "rig to be flagged slow", func() bool { return status("farm.rig000") == farmwatch.Slow })
	m, _ := w.Lookup(cfg.Listen[0].Name, "farm.rig000")
	if m.Hashrate >= m.Average/2 || m.Sessions != 1 {
		t.Fatalf("slow rig: hashrate %.0f, average %.0f, sessions %d", m.Hashrate, m.Average, m.Sessions)
	}
	if s := status("farm.steady000"); s != farmwatch.Online {
		t.Fatalf("steady miner is %s", s)
	}
	if c := w.Counts()[cfg.Listen[0].Name]; c[farmwatch.Slow] != 1 || c[farmwatch.Offline] != 0 {
		t.Fatalf("counts %v", c)
	}
}

// With a state file configured, an agent restart keeps the known miners:
// the new agent knows them (name, address, first seen) before any of them
// has reconnected, and a miner that was already offline stays offline.
func TestRestartKeepsKnownMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := farmConfig(t, pool)
	cfg.FarmWatch.StateFile = filepath.Join(t.TempDir(), "known-miners.json")
	cfg.FarmWatch.Grace = 300 * time.Millisecond
	a := testenv.Agent(t, cfg, agent.Options{})
	target := testenv.Addr(a)
	testenv.Miners(t, minersim.Config{Target: target, Miners: 4, WorkerPrefix: "stay", ShareInterval: 100 * time.Millisecond})
	leaver := testenv.Miners(t, minersim.Config{Target: target, Miners: 1, WorkerPrefix: "gone", ShareInterval: 100 * time.Millisecond})
	name := cfg.Listen[0].Name
	waitUntil(t, "5 miners online", func() bool { return a.Farm().Counts()[name][farmwatch.Online] == 5 })
	leaver.Stop()
	waitUntil(t, "the leaver to be offline", func() bool { return a.Farm().Counts()[name][farmwatch.Offline] == 1 })
	before := a.Farm().Miners("")
	a.Stop()

	// The new agent is built but not started: no miner can reach it, so
	// what it knows comes from the file alone.
	b, err := agent.New(cfg, testenv.Logger(t), agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	after := b.Farm().Miners("")
	if len(after) != len(before) || len(after) != 5 {
		t.Fatalf("restarted agent knows %d miners, want %d", len(after), len(before))
	}
	for i := range before {
		x, y := before[i], after[i]
		if x.Worker != y.Worker || x.Address != y.Address || !x.FirstSeen.Equal(y.FirstSeen) || x.Status != y.Status || x.SubAccount != y.SubAccount {
			t.Errorf("miner %d: before %+v\nafter %+v", i, x, y)
		}
	}
	if m, ok := b.Farm().Lookup(name, "farm.gone000"); !ok || m.Status != farmwatch.Offline {
		t.Fatalf("the offline miner after restart: %+v", m)
	}
}
