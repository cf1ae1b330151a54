package upstream_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// sv2Pool starts poolsim with its SV2 listener (and its SV1 one, unused
// unless a test points a pool entry at it).
func sv2Pool(t *testing.T, cfg poolsim.Config) *poolsim.Pool {
	t.Helper()
	cfg.SV2Listen = "127.0.0.1:0"
	return testenv.Pool(t, cfg)
}

// sv2Entry is a pool entry for p's SV2 listener, authenticated by its
// authority key.
func sv2Entry(t *testing.T, p *poolsim.Pool, protocol string) config.Pool {
	t.Helper()
	host, port, err := net.SplitHostPort(p.SV2Addr())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(port)
	return config.Pool{Host: host, Port: n, Protocol: protocol, AuthorityPubkey: p.SV2AuthorityKey().String()}
}

// sv2Config is an agent config whose pools are the given entries, in order.
func sv2Config(t *testing.T, pools ...config.Pool) *config.Config {
	t.Helper()
	cfg := testenv.Config(t, "farm", "127.0.0.1:1")
	cfg.Listen[0].Pools = pools
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// sv2 aggregated: 200 hash-mode miners (half rolling version bits) on one
// extended channel per link. poolsim checks every share against the
// coinbase prefix ‖ extranonce_prefix ‖ rolled extranonce ‖ suffix, where
// the rolled part is 0000SSSS ‖ EN2_miner: all accepted, the verdicts the
// miners saw are the pool's, and the pool sees one worker per listener.
func TestSV2AggregatedHashMiners(t *testing.T) {
	const n, per = 200, 2
	pool := sv2Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := sv2Config(t, sv2Entry(t, pool, config.ProtocolSV2))
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
	if len(st.Conns) != cfg.Listen[0].Connections {
		t.Fatalf("pool has %d connections, want %d", len(st.Conns), cfg.Listen[0].Connections)
	}
	w, ok := st.Workers["farm.rack-7"]
	if !ok || w.Accepted != n*per {
		t.Fatalf("worker farm.rack-7: %+v; workers %v", w, st.Workers)
	}
	if ls := a.Listeners()[0].Stats; ls.Accepted.Load() != n*per || ls.LocalRejected.Load() != 0 {
		t.Fatalf("listener stats: accepted %d local rejects %d", ls.Accepted.Load(), ls.LocalRejected.Load())
	}
	snap, err := a.Listeners()[0].Snapshot(wait)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range snap.Upstreams {
		if u.Protocol != config.ProtocolSV2 {
			t.Fatalf("link %d reports protocol %q", u.Slot, u.Protocol)
		}
	}
}

// sv2-per-miner: one extended channel per miner, opened as
// <pool user>.<worker>, on the slot's one connection (plus its control
// channel). Every share is validated and accepted, per worker.
func TestSV2PerMinerHashMiners(t *testing.T) {
	const n, per = 200, 2
	pool := sv2Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := sv2Config(t, sv2Entry(t, pool, config.ProtocolSV2PerMiner))
	a, _ := startAgent(t, cfg)
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: per})
	ctx := testenv.Ctx(t)
	allAccepted(t, ctx, sim, n*per)
	st := pool.Stats()
	if st.Totals.Accepted != n*per || poolRejected(&st) != 0 {
		t.Fatalf("pool totals %+v", st.Totals)
	}
	if len(st.Conns) != cfg.Listen[0].Connections {
		t.Fatalf("pool has %d connections, want one per slot (%d)", len(st.Conns), cfg.Listen[0].Connections)
	}
	for i := 0; i < n; i++ {
		name := "farm." + strings.TrimPrefix(minersim.WorkerName("john", "w", n, i), "john.")
		if w, ok := st.Workers[name]; !ok || w.Accepted != per {
			t.Fatalf("worker %s: %+v (ok %v); %d workers", name, w, ok, len(st.Workers))
		}
	}
	// A miner that leaves closes its channel: only the control channels stay.
	sim.Stop()
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers == cfg.Listen[0].Connections }); err != nil {
		t.Fatalf("miners' channels not closed: %d workers registered", pool.Stats().Totals.RegisteredWorkers)
	}
}

// Failover sv2 → agent → sv2 under load, in both SV2 modes. The SV2 pool
// drops every connection and refuses new ones: the slots move to the agent
// backup (the miners keep their connections). When the SV2 pool accepts
// again, the failback moves them back without dropping them. Both pools
// validate every share; every share is answered, and no share is answered
// true that a pool did not accept.
func TestSV2FailoverToAgentAndBack(t *testing.T) {
	for _, proto := range []string{config.ProtocolSV2, config.ProtocolSV2PerMiner} {
		t.Run(proto, func(t *testing.T) { sv2FailoverAndBack(t, proto) })
	}
}

func sv2FailoverAndBack(t *testing.T, proto string) {
	primary := sv2Pool(t, poolsim.Config{JSONDiff: 2e-7})
	backup := testenv.Pool(t, poolsim.Config{JSONDiff: 2e-7})
	host, port, _ := net.SplitHostPort(backup.Addr())
	bport, _ := strconv.Atoi(port)
	cfg := sv2Config(t, sv2Entry(t, primary, proto), config.Pool{Host: host, Port: bport, Protocol: config.ProtocolAgent})
	failoverAndBack(t, cfg, primary, primary.SV2Addr(), backup)
}

// diffBefore reads until the next mining.notify and returns the last
// mining.set_difficulty before it (0: none).
func diffBefore(t *testing.T, m *testenv.RawMiner) float64 {
	t.Helper()
	_, seen := m.Until(wait, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
	d := 0.0
	for _, x := range seen {
		if x.Method == "mining.set_difficulty" && len(x.Params) == 1 {
			d, _ = strconv.ParseFloat(string(x.Params[0]), 64)
		}
	}
	return d
}

// SetTarget reaches the miners as mining.set_difficulty before the next
// job: every miner of an aggregated channel, only the miner of its own
// channel in sv2-per-miner mode.
func TestSV2SetTarget(t *testing.T) {
	for _, c := range []struct{ proto, worker string }{{config.ProtocolSV2, "farm.rack-7"}, {config.ProtocolSV2PerMiner, "farm.w1"}} {
		t.Run(c.proto, func(t *testing.T) {
			pool := sv2Pool(t, poolsim.Config{})
			cfg := sv2Config(t, sv2Entry(t, pool, c.proto))
			cfg.Listen[0].Name, cfg.Listen[0].Connections = "rack-7", 1
			a, _ := startAgent(t, cfg)
			m1, m2 := testenv.Dial(t, testenv.Addr(a)), testenv.Dial(t, testenv.Addr(a))
			m1.Login("john.w1", false)
			m2.Login("john.w2", false)
			if err := pool.WaitFor(testenv.Ctx(t), func(s *poolsim.Stats) bool { _, ok := s.Workers[c.worker]; return ok }); err != nil {
				t.Fatal(err)
			}
			pool.SetWorkerDiff(c.worker, 4)
			pool.NewJob(false)
			d1, d2 := diffBefore(t, m1), diffBefore(t, m2)
			want2 := 4.0
			if c.proto == config.ProtocolSV2PerMiner {
				want2 = 0
			}
			if d1 != 4 || d2 != want2 {
				t.Fatalf("difficulty before the next job: w1 %g, w2 %g (want 4, %g)", d1, d2, want2)
			}
		})
	}
}

// The pool's Reconnect replaces the link with a new connection to the same
// pool; the miners move to it without being dropped (in sv2-per-miner mode
// onto new channels, while the old connection stays open for the verdicts
// of their shares), and every share is answered by the pool.
func TestSV2PoolReconnect(t *testing.T) {
	for _, proto := range []string{config.ProtocolSV2, config.ProtocolSV2PerMiner} {
		t.Run(proto, func(t *testing.T) {
			const n, per = 8, 60
			pool := sv2Pool(t, poolsim.Config{JSONDiff: 2e-7})
			cfg := sv2Config(t, sv2Entry(t, pool, proto))
			cfg.Listen[0].Connections = 1
			a, logs := startAgent(t, cfg)
			sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, VersionRolling: true, MaxSharesPerMiner: per})
			ctx := testenv.Ctx(t)
			if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 50 }); err != nil {
				t.Fatal(err)
			}
			old := pool.Stats().Conns[0].ID
			if !pool.SendSV2Reconnect(old, "", 0) {
				t.Fatal("no SV2 connection to send Reconnect on")
			}
			logs.waitFor(t, "pool link replaced (the pool sent client.reconnect)")
			if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return len(s.Conns) == 1 && s.Conns[0].ID != old }); err != nil {
				t.Fatalf("old connection not retired: %v", err)
			}
			allAccepted(t, ctx, sim, n*per)
			if s := sim.Stats(); s.Reconnects != 0 || s.Disconnects != 0 {
				t.Fatalf("miners dropped: %+v", s)
			}
			if st := pool.Stats(); st.Totals.Accepted != n*per || poolRejected(&st) != 0 {
				t.Fatalf("pool totals %+v", st.Totals)
			}
		})
	}
}
