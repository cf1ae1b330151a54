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

// collect subscribes to the watcher and returns a channel of its events.
func collect(t *testing.T, w *farmwatch.Watcher) <-chan farmwatch.Event {
	ch := make(chan farmwatch.Event, 1000)
	cancel := w.Subscribe(func(evs []farmwatch.Event) {
		for _, e := range evs {
			select {
			case ch <- e:
			default: // the test stopped reading
			}
		}
	})
	t.Cleanup(cancel)
	return ch
}

// awaitKinds reads events until every wanted kind has been seen n times.
func awaitKinds(t *testing.T, ch <-chan farmwatch.Event, want map[farmwatch.Kind]int) []farmwatch.Event {
	t.Helper()
	var got []farmwatch.Event
	seen := map[farmwatch.Kind]int{}
	timeout := time.After(testenv.Timeout)
	for {
		done := true
		for k, n := range want {
			if seen[k] < n {
				done = false
			}
		}
		if done {
			return got
		}
		select {
		case e := <-ch:
			got = append(got, e)
			seen[e.Kind]++
		case <-timeout:
			t.Fatalf("timed out: saw %v, want %v", seen, want)
		}
	}
}

// The first pool of the list goes away: the agent's links fail over to the
// second one (a failover event), and when the second is refused too the
// links stay down past link_down_after (pool_link_down per slot), then come
// back (pool_link_up). All derived from stats and snapshots by the sweep.
func TestPoolLinkAndFailoverEvents(t *testing.T) {
	first := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	second := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, "farm", first.Addr(), second.Addr())
	cfg.FarmWatch.SweepInterval = 50 * time.Millisecond
	cfg.FarmWatch.LinkDownAfter = 300 * time.Millisecond
	cfg.FarmWatch.HashrateDropPercent = 0
	cfg.Outage.Policy = config.OutageWait
	cfg.Outage.Wait = time.Minute
	a := testenv.Agent(t, cfg, agent.Options{})
	ch := collect(t, a.Farm())
	testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 2, ShareInterval: 100 * time.Millisecond})

	first.SetRefuse(true)
	first.DropAll()
	evs := awaitKinds(t, ch, map[farmwatch.Kind]int{farmwatch.Failover: 1})
	for _, e := range evs {
		if e.Kind == farmwatch.Failover && (e.Listener != cfg.Listen[0].Name || e.Count < 1) {
			t.Fatalf("failover event %+v", e)
		}
	}

	second.SetRefuse(true)
	second.DropAll()
	slots := cfg.Listen[0].Connections
	evs = awaitKinds(t, ch, map[farmwatch.Kind]int{farmwatch.LinkDown: slots})
	for _, e := range evs {
		if e.Kind == farmwatch.LinkDown && e.Seconds < 0.3 {
			t.Fatalf("link reported down after %.2fs, before link_down_after", e.Seconds)
		}
	}
	second.SetRefuse(false)
	awaitKinds(t, ch, map[farmwatch.Kind]int{farmwatch.LinkUp: slots})
}
