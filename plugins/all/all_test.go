package all_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/plugins"
	_ "github.com/btcagent/btcagent/plugins/all"
	"github.com/btcagent/btcagent/plugins/plugintest"
)

// Every built-in is linked by this package, with a description for
// `btcagent plugins`.
func TestBuiltinsRegistered(t *testing.T) {
	for _, name := range []string{"allow-list", "asicboost-guard", "farm-watch", "pool-route", "share-check", "worker-name"} {
		info, ok := plugins.Lookup(name)
		if !ok {
			t.Errorf("%s is not registered by plugins/all", name)
			continue
		}
		if info.Description == "" || strings.Contains(info.Description, "\n") {
			t.Errorf("%s: description must be one non-empty line, got %q", name, info.Description)
		}
	}
	if _, ok := plugins.Lookup("sharelog"); ok {
		t.Error("the guide's example must stay out of plugins/all")
	}
}

// TestFixtures replays every recorded hook sequence in testdata/plugins
// against the chain its header describes and compares with the golden file.
// After an intended change: go test ./plugins/all -run TestFixtures -update
func TestFixtures(t *testing.T) {
	for _, f := range plugintest.Fixtures(t, "*") {
		name := strings.TrimSuffix(filepath.Base(f), ".jsonl")
		if strings.HasPrefix(name, "sharelog") {
			continue // the example's own package replays it (it is not linked here)
		}
		t.Run(name, func(t *testing.T) { plugintest.Replay(t, f) })
	}
}
