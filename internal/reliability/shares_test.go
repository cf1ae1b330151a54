package reliability

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// With tls_skip_verify the same self-signed pool works: links come up over
// TLS and shares are accepted.
func TestTLSSkipVerifyWorks(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	pool := testenv.Pool(t, poolsim.Config{})
	px := startProxy(t, pool.Addr(), selfSignedTLS(t))
	cfg := baseConfig(t, px.Addr())
	cfg.Listen[0].Pools[0].TLS = true
	cfg.Listen[0].Pools[0].TLSSkipVerify = true
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	sim := farm(t, testenv.Addr(a), 4)
	moreAccepted(t, ctx, sim, 8, "over TLS")
	poolAccepts(t, ctx, pool, 1, "over TLS")
	if px.FailedHandshakes() != 0 || logs.Count("TLS handshake failed") != 0 {
		t.Fatalf("TLS handshakes failed with tls_skip_verify:\n%s", logs.Dump())
	}
}

// The pool process is killed and started again at the same address later:
// under the wait policy the miners keep their connections, the link comes
// back within one capped backoff step of the restart, and shares are
// accepted again, none twice. The address is a proxy's, which resets
// connections while the pool is down: restarting the pool on the port it
// had would race with anything else on the machine taking that port.
func TestPoolKilledAndRestarted(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	pool := testenv.Pool(t, poolsim.Config{})
	px := startProxy(t, pool.Addr(), nil)
	cfg := baseConfig(t, px.Addr())
	cfg.Outage.Policy = config.OutageWait
	cfg.Outage.Wait = time.Minute
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	const n = 6
	sim := farm(t, testenv.Addr(a), n)
	moreAccepted(t, ctx, sim, 2*n, "before the kill")
	_ = pool.Close()
	// both links see the kill and keep failing while the pool is down
	if err := logs.WaitFor(ctx, func(es []logEntry) bool {
		lost, failed := 0, 0
		for _, e := range es {
			switch {
			case strings.Contains(e.Msg, "pool link lost"):
				lost++
			case strings.Contains(e.Msg, "pool link failed") && strings.Contains(e.Msg, "connection lost during handshake"):
				failed++
			}
		}
		return lost >= 2 && failed >= 2
	}); err != nil {
		t.Fatalf("kill not detected: %v\n%s", err, logs.Dump())
	}
	restarted := time.Now()
	pool2 := testenv.Pool(t, poolsim.Config{})
	px.SetTarget(pool2.Addr())
	if err := pool2.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers == n }); err != nil {
		t.Fatalf("miners not back on the restarted pool: %v", err)
	}
	if took, most := time.Since(restarted), time.Duration(1.2*float64(cfg.Upstream.ReconnectMax))+2*time.Second; took > most {
		t.Errorf("links came back %v after the restart; the capped backoff is %v", took, cfg.Upstream.ReconnectMax)
	}
	poolAccepts(t, ctx, pool2, 2*n, "after the restart")
	if s := sim.Stats(); s.Disconnects != 0 || s.Reconnects != 0 {
		t.Errorf("miners were disconnected under the wait policy: %+v", s)
	}
	noDuplicates(t, pool2)
}

// Shares in flight when the link dies are answered honestly: each gets an
// answer, and no miner is told "accepted" for a share that no pool
// accepted. The pool holds its verdicts back, so shares are in flight when
// it is killed; the miners then fail over to the second pool.
func TestInFlightSharesAnsweredHonestly(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	first := testenv.Pool(t, poolsim.Config{})
	second := testenv.Pool(t, poolsim.Config{})
	cfg := baseConfig(t, first.Addr(), second.Addr())
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	var mu sync.Mutex
	codes := map[int]int{}
	const n = 6
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true, Password: minerPassword, Logger: quietLogger(),
		OnShare: func(r minersim.ShareResult) {
			mu.Lock()
			if !r.Accepted {
				codes[r.Code]++
			}
			mu.Unlock()
		}})
	moreAccepted(t, ctx, sim, 2*n, "before the fault")
	first.SetReplyDelay(time.Hour)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesUnanswered >= 5 }); err != nil {
		t.Fatalf("no shares in flight: %v", err)
	}
	first.SetRefuse(true)
	first.DropAll()
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesUnanswered == 0 }); err != nil {
		t.Fatalf("in-flight shares never answered: %v\n%s", err, logs.Dump())
	}
	mu.Lock()
	lost := codes[21]
	mu.Unlock()
	if lost < 5 {
		t.Errorf("in-flight shares answered %v, want at least 5 with code 21", codes)
	}
	poolAccepts(t, ctx, second, 2*n, "at the second pool")
	moreAccepted(t, ctx, sim, 2*n, "after the failover")
	s := sim.Stats()
	paid := first.Stats().Totals.Accepted + second.Stats().Totals.Accepted
	if uint64(s.SharesAccepted) > paid {
		t.Errorf("miners were told %d shares were accepted, the pools accepted %d", s.SharesAccepted, paid)
	}
	noDuplicates(t, first, second)
}

// Under the fake policy miners keep hashing on placeholder jobs while no
// pool is reachable; those shares are answered true locally and counted as
// unpaid, never forwarded; real work resumes when the pool returns.
func TestFakePolicySharesCountedUnpaid(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := baseConfig(t, pool.Addr())
	cfg.Outage.Policy = config.OutageFake
	cfg.Outage.FakeJobInterval = 200 * time.Millisecond
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	const n = 4
	sim := farm(t, testenv.Addr(a), n)
	moreAccepted(t, ctx, sim, 2*n, "before the outage")
	st := listener(a, cfg.Listen[0].Name).Stats
	pool.SetRefuse(true)
	pool.DropAll()
	if _, err := logs.WaitMsg(ctx, "pool link lost"); err != nil {
		t.Fatal(err)
	}
	paidBefore := pool.Stats().Totals.Accepted
	fakeBefore := st.FakeAnswered.Load()
	// Counted at the agent, not by the miners' accepted count: a true
	// answer for a share written to the pool just before the link died may
	// still be on its way to the miner and would be counted there as one of
	// these.
	moreAccepted(t, ctx, sim, 2*n, "on placeholder work")
	if err := eventually(ctx, func() bool { return st.FakeAnswered.Load()-fakeBefore >= 2*n }); err != nil {
		t.Errorf("placeholder shares not counted as unpaid: %d", st.FakeAnswered.Load()-fakeBefore)
	}
	if got := pool.Stats().Totals.Accepted; got != paidBefore {
		t.Errorf("the pool accepted %d shares while it was down", got-paidBefore)
	}
	pool.SetRefuse(false)
	poolAccepts(t, ctx, pool, 2*n, "after the outage")
	s := sim.Stats()
	if paid := pool.Stats().Totals.Accepted; uint64(s.SharesAccepted) > paid+uint64(st.FakeAnswered.Load()) {
		t.Errorf("miners were told %d accepted; pool %d + unpaid %d", s.SharesAccepted, paid, st.FakeAnswered.Load())
	}
	if s.Disconnects != 0 {
		t.Errorf("miners disconnected under the fake policy: %+v", s)
	}
	noDuplicates(t, pool)
}
