package allowlist_test

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func stratumError(t *testing.T, m testenv.Msg) (int, string) {
	t.Helper()
	var e []json.RawMessage
	if err := json.Unmarshal(m.Error, &e); err != nil || len(e) < 2 {
		t.Fatalf("expected a Stratum error, got %s", m.Raw)
	}
	var code int
	var text string
	_ = json.Unmarshal(e[0], &code)
	_ = json.Unmarshal(e[1], &text)
	return code, text
}

// A miner from an address outside the list gets error 28 naming its
// address, and the connection is closed; the pool never hears of it.
func TestRefusesAddress(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("allow-list", map[string]any{"cidrs": []string{"10.0.0.0/8"}})}
	a := testenv.Agent(t, cfg, agent.Options{})

	m := testenv.Dial(t, testenv.Addr(a))
	code, text := stratumError(t, m.Next(10*time.Second))
	if code != 28 || !strings.Contains(text, "127.0.0.1") || !strings.Contains(text, "allow list") {
		t.Fatalf("refusal [%d %q], want 28 naming 127.0.0.1", code, text)
	}
	if line, err := m.TryLine(10 * time.Second); !errors.Is(err, io.EOF) {
		t.Fatalf("connection still open after the refusal: %q %v", line, err)
	}
	if n := pool.Stats().Totals.RegisteredWorkers; n != 0 {
		t.Fatalf("pool registered %d workers", n)
	}
}

// A name matching no pattern is refused at authorize with 24 and a clear
// text; an allowed one on the same listener works and is the only worker
// the pool registers.
func TestRefusesWorker(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("allow-list", map[string]any{
		"cidrs": []string{"127.0.0.0/8"}, "workers": []string{`^john\.good`},
	})}
	a := testenv.Agent(t, cfg, agent.Options{})

	bad := testenv.Dial(t, testenv.Addr(a))
	bad.Send(`{"id":2,"method":"mining.subscribe","params":["testminer/1.0"]}`)
	bad.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == "2" })
	bad.Send(`{"id":3,"method":"mining.authorize","params":["john.bad1","x"]}`)
	reply, _ := bad.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == "3" })
	code, text := stratumError(t, reply)
	if code != 24 || !strings.Contains(text, `"john.bad1"`) || !strings.Contains(text, "allow list") {
		t.Fatalf("authorize refusal [%d %q], want 24 naming the worker", code, text)
	}

	good := testenv.Dial(t, testenv.Addr(a))
	good.Login("john.good1", false) // fails the test unless authorized and sent a job

	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Workers["farm.good1"].Sessions == 1 }); err != nil {
		t.Fatalf("allowed miner not registered: %v", err)
	}
	for name := range pool.Stats().Workers {
		if name != "farm.good1" {
			t.Errorf("pool registered %q, a refused miner", name)
		}
	}
}
