package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
)

// A config New cannot build is refused with the plugin's name, and the
// partial agent is torn down without hanging.
func TestNewFailureCleansUp(t *testing.T) {
	cfg := testenv.Config(t, "farm", "127.0.0.1:1")
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("no-such-plugin", nil)}
	done := make(chan error, 1)
	go func() {
		_, err := agent.New(cfg, testenv.Logger(t), agent.Options{})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no-such-plugin") {
			t.Fatalf("error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent.New hung while cleaning up after an error")
	}
}
