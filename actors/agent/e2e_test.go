package agent_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Miners in hash mode through the agent: the pool sees every worker as
// <pool user>.<worker>, validates every share for real and accepts them all.
func TestHashMinersThroughAgent(t *testing.T) {
	const n = 40
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	a := testenv.Agent(t, cfg, agent.Options{})
	miners := testenv.Miners(t, minersim.Config{
		Target: testenv.Addr(a), Miners: n, Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: 2,
	})
	ctx := testenv.Ctx(t)
	if err := miners.WaitFor(ctx, func(s *minersim.Summary) bool {
		return s.SharesAccepted+sumRejected(s) >= 2*n
	}); err != nil {
		t.Fatalf("shares not answered: %v; summary %+v", err, miners.Stats())
	}
	sum := miners.Stats()
	if sum.SharesAccepted != 2*n || len(sum.SharesRejected) != 0 {
		t.Fatalf("accepted %d of %d, rejected %v", sum.SharesAccepted, 2*n, sum.SharesRejected)
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 2*n }); err != nil {
		t.Fatalf("pool accepted %d", pool.Stats().Totals.Accepted)
	}
	st := pool.Stats()
	if len(st.Totals.Rejected) != 0 || st.Totals.Dropped != 0 {
		t.Fatalf("pool rejected %v dropped %d", st.Totals.Rejected, st.Totals.Dropped)
	}
	for i := 0; i < n; i++ {
		name := "farm." + minersim.WorkerName("", "w", n, i)
		name = strings.Replace(name, "farm..", "farm.", 1)
		w, ok := st.Workers[name]
		if !ok || !w.Agent || w.Accepted != 2 {
			t.Fatalf("worker %s: %+v (ok=%v); workers: %v", name, w, ok, keys(st.Workers))
		}
	}
}

func sumRejected(s *minersim.Summary) int64 {
	var n int64
	for _, v := range s.SharesRejected {
		n += v
	}
	return n
}

func keys[V any](m map[string]V) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return fmt.Sprint(out)
}
