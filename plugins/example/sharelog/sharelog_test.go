package sharelog_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins/example/sharelog"
	"github.com/btcagent/btcagent/plugins/plugintest"
)

func readLog(t *testing.T, path string) []sharelog.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sharelog.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r sharelog.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// The guide's walk-through: replay a recorded sequence against the plugin,
// compare its verdicts with the golden file, then check what it wrote.
func TestReplay(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shares.jsonl")
	chain := plugintest.Build(t, plugintest.Spec(sharelog.Name, false, map[string]any{"path": path, "every": 2}))
	plugintest.ReplayWith(t, chain, filepath.Join(plugintest.Root(t), "testdata", "plugins", "sharelog.jsonl"))
	chain.Close()

	got := readLog(t, path)
	if len(got) != 2 {
		t.Fatalf("every = 2 over 3 shares: %d lines, want 2 (the 1st and 3rd)", len(got))
	}
	first := got[0]
	if first.Worker != "rig7" || first.Remote != "10.0.0.7:4028" || first.Job != "j1" || first.Nonce != "00000001" ||
		first.ExtraNonce != "000000070000002a" || first.Version != "00002000" || first.Difficulty != 65536 || first.Listener != plugintest.Listener {
		t.Errorf("first record %+v", first)
	}
	if got[1].Nonce != "00000003" || got[1].Version != "" {
		t.Errorf("second record %+v", got[1])
	}
}

// Miners' actors call the hook concurrently: every line is whole.
func TestConcurrentMiners(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shares.jsonl")
	chain := plugintest.Build(t, plugintest.Spec(sharelog.Name, false, map[string]any{"path": path}))
	job := &msg.Job{ID: "j"}
	var wg sync.WaitGroup
	for m := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			info := &msg.MinerInfo{Worker: "rig" + strings.Repeat("x", m*40)}
			scratch := &msg.Scratch{}
			for i := range 100 {
				chain.OnSubmit(&msg.ShareSubmitted{Info: info, Job: job, Nonce: uint32(i), Scratch: scratch})
			}
		}()
	}
	wg.Wait()
	chain.Close()
	if n := len(readLog(t, path)); n != 800 {
		t.Fatalf("%d lines, want 800", n)
	}
	// After Close (chain replaced) the hook is harmless.
	if v := chain.OnSubmit(&msg.ShareSubmitted{Job: job, Scratch: &msg.Scratch{}}); v != msg.Continue {
		t.Fatalf("verdict after close: %v", v)
	}
}

func TestProvisionErrors(t *testing.T) {
	for want, opts := range map[string]map[string]any{
		"path is required":   {},
		"open share log":     {"path": filepath.Join(t.TempDir(), "missing", "dir", "x.jsonl")},
		"every = -1":         {"path": filepath.Join(t.TempDir(), "x"), "every": -1},
		`unknown key "file"`: {"file": "x"},
	} {
		_, err := plugintest.BuildErr(plugintest.Spec(sharelog.Name, false, opts))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "sharelog") {
			t.Errorf("%v: error %v, want %q naming the plugin", opts, err, want)
		}
	}
}
