package all_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/plugins/plugintest"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// boom panics on every share: a buggy third-party plugin.
type boom struct{}

func (*boom) PluginName() string                       { return "test-panic" }
func (*boom) OnSubmit(*msg.ShareSubmitted) msg.Verdict { panic("boom") }

var _ plugins.SubmitHook = (*boom)(nil)

func init() {
	plugins.Register(plugins.Info{Name: "test-panic", Description: "test: panics on every share", New: func() plugins.Plugin { return new(boom) }})
}

// A panicking plugin does not break share flow: the panic is isolated and
// counted, and every share still reaches the pool. With required = true the
// same panic turns each share into a local reject (30) that never costs
// uplink.
func TestPanickingPlugin(t *testing.T) {
	const miners, shares = 2, 3
	for _, required := range []bool{false, true} {
		t.Run(fmt.Sprintf("required=%t", required), func(t *testing.T) {
			pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
			cfg := testenv.Config(t, "farm", pool.Addr())
			cfg.Plugins = []config.PluginSpec{plugintest.Spec("test-panic", required, nil)}
			a := testenv.Agent(t, cfg, agent.Options{})
			sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: miners, ShareInterval: 20 * time.Millisecond, MaxSharesPerMiner: shares})
			ctx := testenv.Ctx(t)
			if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+s.SharesRejected[30] == miners*shares }); err != nil {
				t.Fatalf("shares not answered: %v", err)
			}
			sum := sim.Stats()
			chain := a.Listeners()[0].Chain
			if n := chain.Errors.Load(); n != miners*shares {
				t.Errorf("chain counted %d plugin panics, want %d (one per share)", n, miners*shares)
			}
			if !required {
				// Optimistic answers go out when the shares are handed to the
				// link's writer, a moment before the pool has counted them.
				_ = pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= miners*shares })
			}
			st := pool.Stats()
			if !required {
				if sum.SharesAccepted != miners*shares || st.Totals.Accepted != miners*shares {
					t.Errorf("miners saw %d accepted, pool %d; want %d: the panic broke share flow", sum.SharesAccepted, st.Totals.Accepted, miners*shares)
				}
				return
			}
			if sum.SharesRejected[int(codec.StatusInternalError)] != miners*shares || st.Totals.Accepted != 0 || a.Listeners()[0].Stats.SharesSent.Load() != 0 {
				t.Errorf("required: miners rejected %v, pool accepted %d, sent upstream %d; want all %d rejected locally with 30",
					sum.SharesRejected, st.Totals.Accepted, a.Listeners()[0].Stats.SharesSent.Load(), miners*shares)
			}
		})
	}
}

// Configs converted from the legacy JSON format build with the built-ins
// (the converter emits worker-name and asicboost-guard tables).
func TestLegacyConversionsBuild(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(plugintest.Root(t), "testdata", "config", "legacy", "*.json"))
	if len(files) == 0 {
		t.Fatal("no legacy configs found")
	}
	seen := map[string]bool{}
	for _, f := range files {
		cfg, _, err := config.LoadLegacyJSON(f)
		if err != nil {
			continue // the converter's own tests cover refusals
		}
		for _, s := range cfg.Plugins {
			seen[s.Name] = true
		}
		if err := plugins.Validate(cfg.Plugins, []int{cfg.Listen[0].Port}); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
	if !seen["worker-name"] || !seen["asicboost-guard"] {
		t.Errorf("legacy fixtures exercised only %v", seen)
	}
}

// The plugin examples in config.toml (share-check active, the others
// commented out) must be a valid config once uncommented.
func TestConfigExamplePlugins(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(plugintest.Root(t), "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("[[listen]]\nport = 3333\npool_user = \"demo\"\n  [[listen.pool]]\n  host = \"127.0.0.1\"\n  port = 3334\n")
	example := regexp.MustCompile(`^(# ?)?(\s*\[\[plugins.*\]\]|\s*[a-z_]+ = .*)$`)
	inPlugins := false
	for _, line := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(line, "# [[plugins]]") || strings.HasPrefix(line, "[[plugins]]") {
			inPlugins = true
		}
		if inPlugins && example.MatchString(line) {
			b.WriteString(strings.TrimPrefix(strings.TrimPrefix(line, "#"), " ") + "\n")
		}
	}
	cfg, err := config.Parse([]byte(b.String()), "config.toml (plugins uncommented)")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	names := map[string]bool{}
	for _, s := range cfg.Plugins {
		names[s.Name] = true
	}
	for _, want := range []string{"share-check", "worker-name", "asicboost-guard", "allow-list", "pool-route"} {
		if !names[want] {
			t.Errorf("config.toml has no example for %s", want)
		}
	}
	if err := plugins.Validate(cfg.Plugins, []int{3333}); err != nil {
		t.Fatalf("uncommented plugin examples: %v", err)
	}
}
