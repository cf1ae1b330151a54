package asicboost_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// A miner that rolled version bits for its first shares and then sends one
// without gets client.reconnect through the real agent; the share is still
// forwarded and accepted. A miner that never rolls is never asked.
func TestLostASICBoostReconnect(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("asicboost-guard", map[string]any{"after_shares": 5})}
	a := testenv.Agent(t, cfg, agent.Options{})
	ctx := testenv.Ctx(t)

	boost := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 1, VersionRolling: true, ShareInterval: 20 * time.Millisecond, WorkerPrefix: "boost", MaxSharesPerMiner: 5})
	plain := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 1, ShareInterval: 20 * time.Millisecond, WorkerPrefix: "plain"})

	if err := boost.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 5 }); err != nil {
		t.Fatalf("rolled shares not answered: %v", err)
	}
	if v := boost.Miner(0); !v.VersionRolling {
		t.Fatalf("version rolling not granted: %+v", v)
	}
	if n := boost.Stats().ReconnectRequests; n != 0 {
		t.Fatalf("reconnect requested while the miner kept rolling (%d)", n)
	}
	// The same miner now sends a share without version bits.
	job := pool.CurrentJob()
	line := fmt.Sprintf(`{"id":9001,"method":"mining.submit","params":["john.boost000","%s","0000abcd","%s","12345678"]}`, boost.Miner(0).JobID, job.NTime)
	if err := boost.SubmitRaw(0, []byte(line)); err != nil {
		t.Fatal(err)
	}
	if err := boost.WaitFor(ctx, func(s *minersim.Summary) bool { return s.ReconnectRequests >= 1 }); err != nil {
		t.Fatalf("no client.reconnect after the share without bits: %v", err)
	}
	// The share was forwarded all the same: the pool counts a sixth share
	// for the worker (the miner itself stopped after five).
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Workers["farm.boost000"].Accepted == 6 }); err != nil {
		t.Fatalf("the unrolled share did not reach the pool: %+v", pool.Stats().Workers["farm.boost000"])
	}

	if err := plain.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 20 }); err != nil {
		t.Fatalf("plain miner: %v", err)
	}
	if n := plain.Stats().ReconnectRequests; n != 0 {
		t.Fatalf("a miner that never rolled was asked to reconnect %d times", n)
	}
}
