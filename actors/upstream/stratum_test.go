package upstream_test

import (
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Aggregated stratum: hash-mode miners (half rolling version bits) behind
// two plain Stratum connections. The pool validates every share for real
// against the coinbase coinb1 ‖ EN1_pool ‖ EN2_pool, where EN2_pool =
// 0000SSSS ‖ EN2_miner: all accepted, the verdicts the miners see are the
// pool's, and the pool sees one worker per connection.
func TestStratumAggregatedHashMiners(t *testing.T) {
	const n, per = 200, 2
	// Difficulty 1e-6: ~4,300 hashes per share keeps 200 CPU miners fast
	// under -race; every share is still checked against its target.
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratum)
	cfg.Listen[0].Name = "rack-7"
	a, _ := startAgent(t, cfg)
	addr := testenv.Addr(a)
	rolling := testenv.Miners(t, minersim.Config{Target: addr, Miners: n / 2, WorkerPrefix: "r", Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: per})
	plain := testenv.Miners(t, minersim.Config{Target: addr, Miners: n / 2, WorkerPrefix: "p", Hash: true, HashThreads: 2, MaxSharesPerMiner: per})
	ctx := testenv.Ctx(t)
	allAccepted(t, ctx, rolling, n/2*per)
	allAccepted(t, ctx, plain, n/2*per)
	st := pool.Stats()
	if st.Totals.Accepted != n*per || poolRejected(&st) != 0 || st.Totals.Dropped != 0 {
		t.Fatalf("pool totals %+v", st.Totals)
	}
	if st.Totals.AgentConns != 0 || plainConns(&st) != cfg.Listen[0].Connections {
		t.Fatalf("pool connections: agent %d, plain %d (want %d plain)", st.Totals.AgentConns, plainConns(&st), cfg.Listen[0].Connections)
	}
	w, ok := st.Workers["farm.rack-7"]
	if !ok || w.Accepted != n*per {
		t.Fatalf("worker farm.rack-7: %+v; workers %v", w, st.Workers)
	}
	for _, c := range st.Conns {
		if !strings.HasPrefix(c.UserAgent, "btcagent-proxy/") {
			t.Fatalf("stratum link subscribed as %q", c.UserAgent)
		}
	}
	if ls := a.Listeners()[0].Stats; ls.Accepted.Load() != n*per || ls.LocalRejected.Load() != 0 {
		t.Fatalf("listener stats: accepted %d local rejects %d", ls.Accepted.Load(), ls.LocalRejected.Load())
	}
	snap, err := a.Listeners()[0].Snapshot(wait)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range snap.Upstreams {
		if u.Protocol != config.ProtocolStratum {
			t.Fatalf("link %d reports protocol %q", u.Slot, u.Protocol)
		}
	}
}

// stratum_worker names the worker of a listener's aggregated links.
func TestStratumWorkerName(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratum)
	cfg.Listen[0].Name = "rack-7"
	cfg.Listen[0].StratumWorker = "bay-3"
	startAgent(t, cfg)
	// The pool records a connection's user after it has answered the
	// authorize, so the agent can see its link ready a moment before.
	if err := pool.WaitFor(testenv.Ctx(t), func(s *poolsim.Stats) bool {
		for _, c := range s.Conns {
			if c.User == "" {
				return false
			}
		}
		return len(s.Conns) > 0
	}); err != nil {
		t.Fatalf("pool connections never authorized: %v", err)
	}
	conns := pool.Stats().Conns
	for _, c := range conns {
		if c.User != "farm.bay-3" {
			t.Fatalf("stratum link authorized as %q, want farm.bay-3", c.User)
		}
	}
}

// A pool whose extranonce2 is 4 bytes cannot carry the miners' session
// prefix: the aggregated link refuses it with a one-line reason and the slot
// fails over to the next pool of the list.
func TestStratumAggregatedRefusesSmallEN2(t *testing.T) {
	small := testenv.Pool(t, poolsim.Config{EN2Size: 4})
	backup := testenv.Pool(t, poolsim.Config{})
	cfg := withProtocols(testenv.Config(t, "farm", small.Addr(), backup.Addr()), config.ProtocolStratum, config.ProtocolAgent)
	cfg.Listen[0].Connections = 1
	a, logs := startAgent(t, cfg)
	line := logs.waitFor(t, "pool link failed", "extranonce2 size is 4", `"stratum" needs at least 8`)
	if strings.Contains(line, "\n") {
		t.Fatalf("reason is not one line: %q", line)
	}
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 4, Hash: true, MaxSharesPerMiner: 2})
	ctx := testenv.Ctx(t)
	allAccepted(t, ctx, sim, 8)
	// Agent links answer optimistically here: wait for the pool's count.
	if err := backup.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted == 8 }); err != nil {
		t.Fatalf("backup pool accepted %d", backup.Stats().Totals.Accepted)
	}
	if st := small.Stats(); st.Totals.Accepted != 0 || st.Totals.RegisteredWorkers != 0 {
		t.Fatalf("small-EN2 pool was used: %+v", st.Totals)
	}
}

// Per-miner stratum: one upstream connection per miner, authorized as
// <pool user>.<worker>, plus one control connection per slot. Every share
// is validated for real and accepted, per worker.
func TestStratumPerMinerHashMiners(t *testing.T) {
	const n, per = 200, 2
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratumPerMiner)
	a, _ := startAgent(t, cfg)
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: per})
	ctx := testenv.Ctx(t)
	allAccepted(t, ctx, sim, n*per)
	st := pool.Stats()
	if st.Totals.Accepted != n*per || poolRejected(&st) != 0 {
		t.Fatalf("pool totals %+v", st.Totals)
	}
	if got := plainConns(&st); got != n+cfg.Listen[0].Connections {
		t.Fatalf("pool has %d connections, want %d miners + %d control", got, n, cfg.Listen[0].Connections)
	}
	for i := 0; i < n; i++ {
		name := "farm." + strings.TrimPrefix(minersim.WorkerName("john", "w", n, i), "john.")
		if w, ok := st.Workers[name]; !ok || w.Accepted != per {
			t.Fatalf("worker %s: %+v (ok %v)", name, w, ok)
		}
	}
	// A miner that leaves closes its own pool connection.
	sim.Stop()
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return plainConns(s) == cfg.Listen[0].Connections }); err != nil {
		t.Fatalf("per-miner connections not closed: %d open", plainConns(ptr(pool.Stats())))
	}
}

func ptr[T any](v T) *T { return &v }

var _ = time.Second
