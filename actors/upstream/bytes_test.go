package upstream_test

import (
	"testing"
	"time"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Every byte on a pool link counts, in every protocol: the handshake, the
// jobs, the verdicts. Once the farm is quiet the listener's counters equal
// what the pool simulator wrote and read on its side of the sockets.
func TestPoolLinkBytesMatchThePool(t *testing.T) {
	for _, proto := range []string{config.ProtocolAgent, config.ProtocolStratum, config.ProtocolStratumPerMiner} {
		t.Run(proto, func(t *testing.T) {
			const miners, shares = 3, 5
			pool := testenv.Pool(t, poolsim.Config{EN2Size: 8, JSONDiff: 1e-6})
			cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), proto)
			cfg.Listen[0].Connections = 1
			a, _ := startAgent(t, cfg)
			st := a.Listeners()[0].Stats
			sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: miners, Hash: true, MaxSharesPerMiner: shares})
			allAccepted(t, testenv.Ctx(t), sim, miners*shares)

			// The pool sends nothing unasked in this test, so its counters
			// are final; the agent's catch up as it reads. Nothing signals
			// that, hence the bounded poll.
			deadline := time.Now().Add(wait)
			for {
				ps := pool.Stats()
				down, up := st.BytesDown.Load(), st.BytesUp.Load()
				if uint64(down) == ps.Totals.BytesOut && uint64(up) == ps.Totals.BytesIn {
					if down == 0 || up == 0 {
						t.Fatalf("no traffic counted: down %d up %d", down, up)
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("agent counted %d bytes down and %d up; the pool wrote %d and read %d", down, up, ps.Totals.BytesOut, ps.Totals.BytesIn)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
