package workername_test

import (
	"fmt"
	"testing"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Through the real agent, each mode changes the name the pool registers:
// the pool's live workers are exactly the expected names, and none is the
// miner's own (john.w000 → "w000").
func TestPoolRegistersRewrittenNames(t *testing.T) {
	const n = 3
	cases := []struct {
		name string
		opts map[string]any
		want map[string]int // full name at the pool -> live sessions
	}{
		{"fixed", map[string]any{"mode": "fixed", "fixed_name": "proxy-1"}, map[string]int{"farm.proxy-1": n}},
		{"ip", map[string]any{"mode": "ip", "ip_format": "{1}x{2}x{3}x{4}"}, map[string]int{"farm.127x0x0x1": n}},
		{"rules", map[string]any{"mode": "rules", "rules": []map[string]any{{"match": `^w0*(\d+)$`, "replace": "rig-$1"}}},
			map[string]int{"farm.rig-0": 1, "farm.rig-1": 1, "farm.rig-2": 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pool := testenv.Pool(t, poolsim.Config{})
			cfg := testenv.Config(t, "farm", pool.Addr())
			cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("worker-name", c.opts)}
			a := testenv.Agent(t, cfg, agent.Options{})
			testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n})
			ctx := testenv.Ctx(t)
			live := func(s *poolsim.Stats) map[string]int {
				out := map[string]int{}
				for name, w := range s.Workers {
					if w.Sessions > 0 {
						out[name] = w.Sessions
					}
				}
				return out
			}
			err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return fmt.Sprint(live(s)) == fmt.Sprint(c.want) })
			if err != nil {
				st := pool.Stats()
				t.Fatalf("pool workers %v, want %v (%v)", live(&st), c.want, err)
			}
		})
	}
}
