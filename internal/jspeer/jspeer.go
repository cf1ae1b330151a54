// Package jspeer runs the independent Stratum V2 peer of testdata/sv2js
// (JavaScript on @scure/btc-signer and @noble/*, sharing no code with the
// Go side) for tests, and reads what it prints: one JSON object a line.
package jspeer

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Wait bounds each wait for a line of the peer.
const Wait = 30 * time.Second

// Start runs "node peer.mjs args..." in dir (testdata/sv2js) until the test
// ends, and returns its stdout lines decoded. It skips the test when node
// or node_modules is missing, except in CI (CI=true), where .ci/run
// installs both and a skip would hide a broken setup.
func Start(t testing.TB, dir string, args ...string) <-chan map[string]any {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(dir, "node_modules", "@scure", "btc-signer"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("JS peer unavailable in CI (.ci/run installs node and runs npm ci in testdata/sv2js): %v", err)
		}
		t.Skipf("JS peer unavailable (install node, then npm ci in testdata/sv2js): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, node, append([]string{"peer.mjs"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan map[string]any, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"unparsed": sc.Text()}
			}
			lines <- m
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
	})
	return lines
}

// Next returns the peer's next line; the test fails if the peer exits or
// says nothing for Wait.
func Next(t testing.TB, lines <-chan map[string]any) map[string]any {
	t.Helper()
	select {
	case m, ok := <-lines:
		if !ok {
			t.Fatal("JS peer exited")
		}
		return m
	case <-time.After(Wait):
		t.Fatalf("no output from the JS peer in %s", Wait)
	}
	return nil
}

// NextEvent skips lines until one whose "event" is event.
func NextEvent(t testing.TB, lines <-chan map[string]any, event string) map[string]any {
	t.Helper()
	for {
		if m := Next(t, lines); m["event"] == event {
			return m
		}
	}
}
