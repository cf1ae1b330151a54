package poolroute_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// perUser sums the accepted shares of the pool's workers by pool user.
func perUser(s *poolsim.Stats) map[string]uint64 {
	out := map[string]uint64{}
	for name, w := range s.Workers {
		user, _, _ := strings.Cut(name, ".")
		out[user] += w.Accepted
	}
	return out
}

// A 70/30 hashrate split over a farm of mixed hashrates, through the real
// agent and pool, while miners come and go. 24 slow miners submit 5 shares/s
// and 6 fast ones 40/s, at one difficulty, so share rate is hashrate. Once
// the farm is placed, every fast miner on one route leaves: that route loses
// most of its hashrate, and only moves can restore the split. The pool must
// then see 70 % of the shares under the listener's pool user and 30 % under
// the route's, with no miner moving while that is measured.
func TestHashrateSplit(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Listen[0].Connections = 1
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("pool-route", map[string]any{
		"split": map[string]int{"default": 70, "b": 30},
		"hold":  "1s",
		"route": []map[string]any{{"name": "b", "pool_user": "farm-b", "pools": []string{pool.Addr()}}},
	})}
	a := testenv.Agent(t, cfg, agent.Options{RebalanceInterval: 200 * time.Millisecond})
	ctx := testenv.Ctx(t)

	testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 24, WorkerPrefix: "slow", ShareInterval: 200 * time.Millisecond})
	fast := make([]*minersim.Sim, 6) // one farm each, so that single miners can leave
	for i := range fast {
		fast[i] = testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 1, WorkerPrefix: fmt.Sprintf("fast%d-", i), ShareInterval: 25 * time.Millisecond})
	}
	live := func(s *poolsim.Stats, user string) map[string]bool {
		out := map[string]bool{}
		for name, w := range s.Workers {
			if w.Sessions > 0 && strings.HasPrefix(name, user+".") {
				out[strings.TrimPrefix(name, user+".")] = true
			}
		}
		return out
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return len(live(s, "farm"))+len(live(s, "farm-b")) == 30 && s.Totals.Accepted >= 500
	}); err != nil {
		t.Fatalf("farm not placed: %v", err)
	}

	// The fast miners on the route holding more of them leave.
	st := pool.Stats()
	leave := "farm"
	if countFast(live(&st, "farm-b")) > countFast(live(&st, "farm")) {
		leave = "farm-b"
	}
	gone := 0
	for i, s := range fast {
		if live(&st, leave)[fmt.Sprintf("fast%d-000", i)] {
			s.Stop()
			gone++
		}
	}
	left := pool.Stats()
	t.Logf("%d fast miners left %s", gone, leave)

	// Settle, then measure.
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= left.Totals.Accepted+600 }); err != nil {
		t.Fatalf("settling: %v", err)
	}
	before := pool.Stats()
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= before.Totals.Accepted+1200 }); err != nil {
		t.Fatalf("measurement window: %v", err)
	}
	after := pool.Stats()
	b0, b1 := perUser(&before), perUser(&after)
	main, route := float64(b1["farm"]-b0["farm"]), float64(b1["farm-b"]-b0["farm-b"])
	share := main / (main + route)
	moved, flaps := 0, 0
	for _, w := range after.Workers {
		switch {
		case w.Registered.After(before.Time):
			flaps++
		case w.Registered.After(left.Time):
			moved++
		}
	}
	t.Logf("measured split %.1f %% / %.1f %% over %.0f shares; %d moves after the departures, %d during the window",
		100*share, 100*(1-share), main+route, moved, flaps)
	if share < 0.67 || share > 0.73 {
		t.Errorf("listener's pools got %.1f %% of the shares, want 70 ± 3 %%", 100*share)
	}
	if moved == 0 {
		t.Error("no miner was moved after the departures")
	}
	if flaps > 1 {
		t.Errorf("%d miners moved during the measurement window: the split flaps", flaps)
	}
}

func countFast(names map[string]bool) int {
	n := 0
	for name := range names {
		if strings.HasPrefix(name, "fast") {
			n++
		}
	}
	return n
}
