package upstream_test

import (
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// verdicts counts what the miners were told, by code, from OnShare.
type verdicts struct {
	mu       sync.Mutex
	accepted int64
	rejected map[int]int64
}

func (v *verdicts) add(r minersim.ShareResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Accepted {
		v.accepted++
		return
	}
	if v.rejected == nil {
		v.rejected = map[int]int64{}
	}
	v.rejected[r.Code]++
}

// poolsOf reports the pool address of every slot.
func poolsOf(t *testing.T, a *agent.Agent) []string {
	t.Helper()
	snap, err := a.Listeners()[0].Snapshot(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, u := range snap.Upstreams {
		if u.Ready {
			out = append(out, u.Pool)
		}
	}
	return out
}

func allOn(pools []string, n int, addr string) bool {
	if len(pools) != n {
		return false
	}
	for _, p := range pools {
		if p != addr {
			return false
		}
	}
	return true
}

// Failover from an agent pool to a stratum backup and back, under load.
// The primary drops every link and refuses new ones: the slots move to the
// stratum backup (the miners keep their connections and their extranonce
// layout). When the primary accepts again, each slot's periodic failback
// probe (every failback_interval) finds it and moves the miners back without
// dropping them. Both pools validate every share for real; every share is
// answered, and no share is answered true that a pool did not accept.
func TestFailoverAgentToStratumAndBack(t *testing.T) {
	primary := testenv.Pool(t, poolsim.Config{JSONDiff: 2e-7})
	backup := testenv.Pool(t, poolsim.Config{JSONDiff: 2e-7, EN2Size: 8})
	cfg := withProtocols(testenv.Config(t, "farm", primary.Addr(), backup.Addr()), config.ProtocolAgent, config.ProtocolStratum)
	failoverAndBack(t, cfg, primary, primary.Addr(), backup)
}

// failoverAndBack runs the scenario above on cfg, whose first pool is
// primary (reached at primaryAddr) and second backup: the primary drops
// and refuses, the slots move to the backup, the primary comes back and the
// failback moves them home; every share is answered and none is answered
// true that a pool did not accept.
func failoverAndBack(t *testing.T, cfg *config.Config, primary *poolsim.Pool, primaryAddr string, backup *poolsim.Pool) {
	t.Helper()
	// Each miner stops after per shares. Under load more of them are in
	// flight (and answered stale) at the failover, so the budget leaves
	// room for the 100 + 150 + 150 the test waits for whatever the timing.
	const n, per = 20, 120
	cfg.Upstream.SubmitResponse = true // real verdicts on both sides
	cfg.Outage.Policy = config.OutageWait
	slots := cfg.Listen[0].Connections
	a, logs := startAgent(t, cfg)
	var got verdicts
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, HashThreads: 2, VersionRolling: true,
		MaxSharesPerMiner: per, OnShare: got.add})
	ctx := testenv.Ctx(t)

	if err := primary.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 100 }); err != nil {
		t.Fatal(err)
	}
	primary.SetRefuse(true)
	primary.DropAll()
	if err := backup.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 150 }); err != nil {
		t.Fatalf("no shares on the backup: %v %+v", err, backup.Stats().Totals)
	}
	if p := poolsOf(t, a); !allOn(p, slots, backup.Addr()) {
		t.Fatalf("slots on %v, want all on the backup %s", p, backup.Addr())
	}
	mark := primary.Stats().Totals.Accepted
	got.mu.Lock()
	staleAtFailover := got.rejected[int(codec.StatusJobNotFoundOrStale)]
	got.mu.Unlock()
	primary.SetRefuse(false)
	if err := primary.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+150 }); err != nil {
		t.Fatalf("no failback to the primary: %v; slots on %v", err, poolsOf(t, a))
	}
	logs.waitFor(t, "pool link replaced (failback)")
	if p := poolsOf(t, a); !allOn(p, slots, primaryAddr) {
		t.Fatalf("slots on %v, want all back on the primary %s", p, primaryAddr)
	}
	// The backup's links are retired once their verdicts are in.
	if err := backup.WaitFor(ctx, func(s *poolsim.Stats) bool { return len(s.Conns) == 0 }); err != nil {
		t.Fatalf("backup links not closed: %d open", len(backup.Stats().Conns))
	}

	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= n*per }); err != nil {
		t.Fatalf("shares not all answered: %v %+v", err, sim.Stats())
	}
	s := sim.Stats()
	if s.SharesUnanswered != 0 || s.Reconnects != 0 || s.Disconnects != 0 {
		t.Fatalf("miners: unanswered %d reconnects %d disconnects %d", s.SharesUnanswered, s.Reconnects, s.Disconnects)
	}
	ps, bs := primary.Stats(), backup.Stats()
	poolAccepted := ps.Totals.Accepted + bs.Totals.Accepted
	got.mu.Lock()
	defer got.mu.Unlock()
	if got.accepted != s.SharesAccepted {
		t.Fatalf("OnShare saw %d accepts, summary %d", got.accepted, s.SharesAccepted)
	}
	// Never answered true unless a pool accepted it.
	if got.accepted > int64(poolAccepted) {
		t.Fatalf("miners saw %d accepts, pools accepted %d", got.accepted, poolAccepted)
	}
	// Only stale answers (21: shares on the dropped link's jobs, or in
	// flight when it dropped); the pools' verdicts were all accepts.
	for code, c := range got.rejected {
		if code != int(codec.StatusJobNotFoundOrStale) {
			t.Fatalf("unexpected rejects %v", got.rejected)
		}
		// A pool may have counted a share whose verdict was lost with the link.
		if int64(poolAccepted)-got.accepted > c {
			t.Fatalf("pools accepted %d, miners saw %d accepts and %d stale answers", poolAccepted, got.accepted, c)
		}
	}
	// The failback itself loses nothing: the replaced links deliver the
	// verdicts of their shares and take late shares on their jobs.
	if c := got.rejected[int(codec.StatusJobNotFoundOrStale)]; c != staleAtFailover {
		t.Fatalf("%d stale answers after the failover, during the failback", c-staleAtFailover)
	}
	if len(got.rejected) == 0 && int64(poolAccepted) != got.accepted {
		t.Fatalf("pools accepted %d, miners saw %d", poolAccepted, got.accepted)
	}
	if poolRejected(&ps) != 0 || poolRejected(&bs) != 0 || ps.Totals.Dropped != 0 {
		t.Fatalf("pool rejects: primary %v backup %v dropped %d", ps.Totals.Rejected, bs.Totals.Rejected, ps.Totals.Dropped)
	}
	if bs.Totals.Accepted == 0 || ps.Totals.Accepted <= mark {
		t.Fatalf("accepted: primary %d (mark %d), backup %d", ps.Totals.Accepted, mark, bs.Totals.Accepted)
	}
	t.Logf("primary accepted %d, backup %d, miners %d accepted, %v stale (%d of them before the failback)", ps.Totals.Accepted, bs.Totals.Accepted, got.accepted, got.rejected, staleAtFailover)
}

// upstream.failback_interval sets how often a slot on a backup pool probes
// the better ones, independently of the reconnect backoff.
func TestFailbackInterval(t *testing.T) {
	primary := testenv.Pool(t, poolsim.Config{})
	backup := testenv.Pool(t, poolsim.Config{})
	primary.SetRefuse(true)
	cfg := testenv.Config(t, "farm", primary.Addr(), backup.Addr())
	cfg.Listen[0].Connections = 1
	cfg.Upstream.ReconnectMax = time.Hour // a failback tied to the backoff would never come
	cfg.Upstream.FailbackInterval = 100 * time.Millisecond
	a, logs := startAgent(t, cfg)
	if p := poolsOf(t, a); !allOn(p, 1, backup.Addr()) {
		t.Fatalf("slot on %v, want the backup %s", p, backup.Addr())
	}
	primary.SetRefuse(false)
	logs.waitFor(t, "pool link replaced (failback)")
	// The replaced link closes after its retire grace; by then the
	// coordinator has long had the new link's UpstreamReady.
	if err := backup.WaitFor(testenv.Ctx(t), func(s *poolsim.Stats) bool { return len(s.Conns) == 0 }); err != nil {
		t.Fatalf("backup link not retired: %v", err)
	}
	if p := poolsOf(t, a); !allOn(p, 1, primary.Addr()) {
		t.Fatalf("slot on %v after the failback, want the primary %s", p, primary.Addr())
	}
}
