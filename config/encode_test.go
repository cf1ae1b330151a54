package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWriteTOMLRoundTrip writes every valid config back out and reads it
// again: the values must survive, plugins and their options included.
func TestWriteTOMLRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "ok", "*.toml"))
	files = append(files, "../config.toml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			a, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			if err := a.WriteTOML(&b); err != nil {
				t.Fatal(err)
			}
			c, err := Parse(b.Bytes(), "out.toml")
			if err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			sameConfig(t, a, c)
		})
	}
}

func TestWriteTOMLValues(t *testing.T) {
	c := Default()
	c.LogDir = "dir \"quoted\"\\\x01"
	c.Upstream.DeadAfter = 2*time.Minute + 500*time.Millisecond
	c.Upstream.ReconnectMax = 90 * time.Minute
	c.HTTPAllowedHosts = []string{"agent.farm.lan", "10.0.0.5"}
	c.HTTPMaxConns = 16
	c.Listen = []Listener{{Port: 1, PoolUser: "u", Pools: []Pool{{Host: "h", Port: 2}}}}
	c.Plugins = []PluginSpec{NewPluginSpec("p", map[string]any{
		"f": 2.0, "i": 3, "b": false, "s": "x", "l": []any{1, "a"}, "m": map[string]any{"k": 1, "odd key": true},
		"t": time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC), "e": map[string]any{},
	})}
	c.ApplyDefaults()
	var b bytes.Buffer
	if err := c.WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	for _, want := range []string{
		`log_dir = "dir \"quoted\"\\\u0001"`,
		`http_allowed_hosts = ["agent.farm.lan", "10.0.0.5"]`, `http_max_connections = 16`,
		"[upstream]\ndead_after = \"120500ms\"\nreconnect_max = \"90m\"\n",
		`f = 2.0`, `i = 3`, `b = false`, `l = [1, "a"]`, `m = { k = 1, "odd key" = true }`, `t = 2024-05-06T07:08:09Z`, `e = {}`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	back, err := Parse(b.Bytes(), "out.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, s)
	}
	sameConfig(t, c, back)

	c.Plugins = []PluginSpec{NewPluginSpec("p", map[string]any{"ch": make(chan int)})}
	if err := c.WriteTOML(&b); err == nil {
		t.Error("unencodable option written without error")
	}
}
