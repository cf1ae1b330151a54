package upstream_test

import (
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// onlyConn returns the pool's single authorized connection with this user.
func connOf(t *testing.T, s *poolsim.Stats, user string) poolsim.ConnStats {
	t.Helper()
	var found []poolsim.ConnStats
	for _, c := range s.Conns {
		if c.User == user && c.Authorized {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d connections for %s", len(found), user)
	}
	return found[0]
}

// mining.set_extranonce on an aggregated link: jobs after it carry the new
// extranonce1 (the pool judges them with it, and accepts); a new
// extranonce2 smaller than 8 bytes makes the agent replace the link, with
// the miners kept connected.
func TestStratumSetExtranonce(t *testing.T) {
	const n = 10
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratum)
	cfg.Listen[0].Connections = 1
	cfg.Listen[0].Name = "x"
	a, logs := startAgent(t, cfg)
	var got verdicts
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, OnShare: got.add})
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 50 }); err != nil {
		t.Fatal(err)
	}
	st := pool.Stats()
	c := connOf(t, &st, "farm.x")
	if !pool.SetExtranonce(c.ID, 0x0badf00d, 8) {
		t.Fatal("set_extranonce not sent")
	}
	pool.NewJob(false)
	// Shares on the new job are only valid with the new extranonce1.
	seq := pool.Stats().Job.Seq
	mark := st.Totals.Accepted
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.Accepted >= mark+100 && s.Job.Seq == seq
	}); err != nil {
		t.Fatal(err)
	}
	if st := pool.Stats(); poolRejected(&st) != 0 {
		t.Fatalf("pool rejected %v after the extranonce change", st.Totals.Rejected)
	}
	got.mu.Lock()
	if len(got.rejected) != 0 {
		t.Fatalf("miners saw rejects %v", got.rejected)
	}
	got.mu.Unlock()

	// A 4-byte extranonce2 cannot carry the session prefix: new link.
	pool.SetExtranonce(c.ID, 0x0badf00e, 4)
	logs.waitFor(t, "extranonce2 smaller than 8 bytes; reconnecting")
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		if len(s.Conns) != 1 || s.Conns[0].ID == c.ID {
			return false
		}
		return s.Conns[0].Accepted >= 50
	}); err != nil {
		t.Fatalf("link not replaced: %+v", pool.Stats().Conns)
	}
	s := sim.Stats()
	if s.Reconnects != 0 || s.Disconnects != 0 {
		t.Fatalf("miners dropped: %+v", s)
	}
	// Shares already on the wire when the pool shrank the extranonce2 are
	// refused by it (wrong size); nothing else. Those still waiting for the
	// flush window are not sent (answered stale by the agent); what was
	// flushed before the agent read the pool's message is bounded by the
	// share rate times that delay, which a loaded machine stretches: about
	// one share per miner.
	st = pool.Stats()
	if bad := poolRejected(&st) - st.Totals.Rejected[codec.StatusIllegalParams]; bad != 0 || st.Totals.Rejected[codec.StatusIllegalParams] > 2*n {
		t.Fatalf("pool rejected %v", st.Totals.Rejected)
	}
}

// client.reconnect from the pool: a new link replaces the old one, which
// closes once its shares are answered; the miners notice nothing and no
// share is lost. The same on a per-miner link.
func TestPoolRequestedReconnect(t *testing.T) {
	for _, proto := range []string{config.ProtocolStratum, config.ProtocolStratumPerMiner} {
		t.Run(proto, func(t *testing.T) {
			const n = 10
			pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
			cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), proto)
			cfg.Listen[0].Connections = 1
			cfg.Listen[0].Name = "x"
			a, logs := startAgent(t, cfg)
			var got verdicts
			sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", Hash: true, OnShare: got.add})
			ctx := testenv.Ctx(t)
			if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 50 }); err != nil {
				t.Fatal(err)
			}
			user := "farm.x"
			if proto == config.ProtocolStratumPerMiner {
				user = "farm.w000"
			}
			st := pool.Stats()
			old := connOf(t, &st, user)
			pool.SendReconnect(old.ID)
			if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
				for _, c := range s.Conns {
					if c.ID == old.ID {
						return false
					}
				}
				for _, c := range s.Conns {
					if c.User == user && c.Accepted >= 5 {
						return true
					}
				}
				return false
			}); err != nil {
				t.Fatalf("link not replaced: %v", err)
			}
			if proto == config.ProtocolStratum {
				logs.waitFor(t, "pool link replaced (the pool sent client.reconnect)")
			}
			mark := pool.Stats().Totals.Accepted
			if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+50 }); err != nil {
				t.Fatal(err)
			}
			if s := sim.Stats(); s.Reconnects != 0 || s.Disconnects != 0 {
				t.Fatalf("miners dropped: %+v", s)
			}
			got.mu.Lock()
			defer got.mu.Unlock()
			if len(got.rejected) != 0 {
				t.Fatalf("miners saw rejects %v", got.rejected)
			}
			if st := pool.Stats(); poolRejected(&st) != 0 {
				t.Fatalf("pool rejected %v", st.Totals.Rejected)
			}
		})
	}
}

// On an aggregated link the pool's mining.set_difficulty is the
// connection's: every miner of the link gets it, before the next job.
func TestStratumDifficultyReachesAllMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratum)
	cfg.Listen[0].Connections = 1
	cfg.Listen[0].Name = "x"
	a, _ := startAgent(t, cfg)
	miners := make([]*testenv.RawMiner, 3)
	for i := range miners {
		miners[i] = testenv.Dial(t, testenv.Addr(a))
		miners[i].Login("john.m"+string(rune('0'+i)), false)
	}
	pool.SetWorkerDiff("farm.x", 1024)
	pool.NewJob(false)
	for i, m := range miners {
		_, before := m.Until(wait, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
		var diffs []string
		for _, x := range before {
			if x.Method == "mining.set_difficulty" {
				diffs = append(diffs, string(x.Params[0]))
			}
		}
		if len(diffs) != 1 || diffs[0] != "1024" {
			t.Fatalf("miner %d: difficulties before the job %v, want [1024]", i, diffs)
		}
	}
	// A miner joining later gets the link's difficulty with the job.
	late := testenv.Dial(t, testenv.Addr(a))
	_, notify, seen := late.Login("john.late", false)
	var last string
	for _, x := range seen {
		if x.Method == "mining.set_difficulty" {
			last = string(x.Params[0])
		}
	}
	if last != "1024" || notify.Method != "mining.notify" {
		t.Fatalf("late miner: difficulty %q before its first job", last)
	}
}

// The control connection of a per-miner pool goes (pools close idle
// connections): the miners keep their own links and shares, and the slot
// reconnects the control link without re-dialing them.
func TestPerMinerControlLinkLossKeepsMiners(t *testing.T) {
	const n = 10
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), config.ProtocolStratumPerMiner)
	cfg.Listen[0].Connections = 1
	cfg.Listen[0].Name = "x"
	a, _ := startAgent(t, cfg)
	var got verdicts
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", Hash: true, OnShare: got.add})
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 50 && plainConns(s) == n+1 }); err != nil {
		t.Fatal(err)
	}
	st := pool.Stats()
	ctrl := connOf(t, &st, "farm.x")
	before := map[uint64]bool{}
	for _, c := range st.Conns {
		before[c.ID] = true
	}
	pool.CloseConn(ctrl.ID)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		for _, c := range s.Conns {
			if c.User == "farm.x" && c.ID != ctrl.ID {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal("control link not reconnected")
	}
	mark := pool.Stats().Totals.Accepted
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+50 }); err != nil {
		t.Fatal(err)
	}
	st = pool.Stats()
	for _, c := range st.Conns {
		if c.User != "farm.x" && !before[c.ID] {
			t.Fatalf("miner link %s was re-dialed", c.User)
		}
	}
	if s := sim.Stats(); s.Reconnects != 0 || s.Disconnects != 0 {
		t.Fatalf("miners dropped: %+v", s)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.rejected) != 0 {
		t.Fatalf("miners saw rejects %v", got.rejected)
	}
	snap, err := a.Listeners()[0].Snapshot(time.Second)
	if err != nil || snap.Upstreams[0].Miners != n || !snap.Upstreams[0].Ready {
		t.Fatalf("slot after the control link came back: %+v %v", snap.Upstreams, err)
	}
}
