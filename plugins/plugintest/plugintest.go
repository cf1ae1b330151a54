// Package plugintest runs plugins the way the agent does, without the agent:
// it builds a chain from [[plugins]]-style specs and replays recorded hook
// calls from testdata/plugins/*.jsonl fixtures, comparing what the chain did
// (verdicts, codes, rewritten worker names, chosen routes, moves) with a
// golden file next to the fixture. Run `go test <pkg> -update` to rewrite the
// golden files after an intended change, then read the diff before committing.
//
// A fixture is one JSON object per line. The optional first line
//
//	{"plugins": [{"name": "share-check", "required": true, "jobs": 4}]}
//
// builds the chain: every key but name, listen and required is the plugin's
// own option, decoded strictly as from config.toml. Every other line is one
// hook call, selected by "hook" (see Step for the fields of each). Blank lines
// and lines starting with '#' are comments.
package plugintest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

var update = flag.Bool("update", false, "rewrite plugin golden files from the current output")

// Listener is the listener every chain built here pretends to serve.
const (
	Listener = "test"
	Port     = 3333
	PoolUser = "farm"
)

// Env is the plugins.Env that Build passes (Index is set per plugin).
func Env() plugins.Env {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return plugins.Env{Listener: Listener, Port: Port, PoolUser: PoolUser, Log: l}
}

// Spec is config.NewPluginSpec with Required set, for brevity in tests.
func Spec(name string, required bool, options map[string]any) config.PluginSpec {
	s := config.NewPluginSpec(name, options)
	s.Required = required
	return s
}

// Build decodes and provisions specs exactly as the agent does for one
// listener, failing the test on any error. The chain is closed at cleanup.
func Build(t testing.TB, specs ...config.PluginSpec) *plugins.Chain {
	t.Helper()
	c, err := BuildErr(specs...)
	if err != nil {
		t.Fatalf("build plugin chain: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// BuildErr is Build returning the error, for tests of config refusal.
func BuildErr(specs ...config.PluginSpec) (*plugins.Chain, error) {
	for i := range specs {
		specs[i].Index = i
	}
	return plugins.Build(specs, Env())
}

// Root finds the module root (the directory holding go.mod) from the
// package directory a test runs in.
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("plugintest: no go.mod above the test directory")
		}
		dir = parent
	}
}

// Fixtures lists testdata/plugins/<glob>.jsonl under the module root.
func Fixtures(t testing.TB, glob string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Root(t), "testdata", "plugins", glob+".jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("plugintest: no fixture matches testdata/plugins/%s.jsonl", glob)
	}
	return files
}

// Replay runs a fixture that starts with a {"plugins": [...]} header and
// compares the output with the golden file (fixture name with .golden).
func Replay(t testing.TB, fixture string) {
	t.Helper()
	ReplayWith(t, nil, fixture)
}

// ReplayWith runs a fixture against chain (built from the fixture's header
// when chain is nil) and compares the output with the golden file.
func ReplayWith(t testing.TB, chain *plugins.Chain, fixture string) {
	t.Helper()
	data, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Run(chain, data)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(fixture), err)
	}
	golden := strings.TrimSuffix(fixture, filepath.Ext(fixture)) + ".golden"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if d := Diff(want, got); d != "" {
		t.Errorf("%s: output differs from %s (-want +got):\n%s", filepath.Base(fixture), filepath.Base(golden), d)
	}
}

// Run replays fixture data and returns the output, one line per hook call.
// When chain is nil the first non-comment line must be the plugins header.
func Run(chain *plugins.Chain, data []byte) ([]byte, error) {
	var out bytes.Buffer
	var r *Replayer
	steps := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if r == nil {
			if chain == nil {
				c, err := chainFromHeader(line)
				if err != nil {
					return nil, fmt.Errorf("line %d: %w", n, err)
				}
				defer c.Close()
				r = NewReplayer(c)
				continue
			}
			r = NewReplayer(chain)
		}
		res, err := r.Step(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		fmt.Fprintf(&out, "%d %s\n", n, res)
		steps++
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if steps == 0 {
		return nil, fmt.Errorf("fixture has no hook calls")
	}
	return out.Bytes(), nil
}

// chainFromHeader builds the chain a fixture's first line describes.
func chainFromHeader(line []byte) (*plugins.Chain, error) {
	var h struct {
		Plugins []map[string]any `json:"plugins"`
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	d.DisallowUnknownFields()
	if err := d.Decode(&h); err != nil {
		return nil, fmt.Errorf("plugins header: %w", err)
	}
	if len(h.Plugins) == 0 {
		return nil, fmt.Errorf("the first line must be {\"plugins\": [...]} (or pass a chain)")
	}
	specs := make([]config.PluginSpec, 0, len(h.Plugins))
	for i, p := range h.Plugins {
		name, _ := p["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("plugins[%d] has no name", i)
		}
		required, _ := p["required"].(bool)
		opts := map[string]any{}
		for k, v := range p {
			if k != "name" && k != "required" {
				opts[k] = numbers(v)
			}
		}
		specs = append(specs, Spec(name, required, opts))
	}
	return BuildErr(specs...)
}

// numbers turns json.Number into the int64 or float64 the TOML parser
// would have produced, so fixtures decode like config files.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = numbers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = numbers(x[k])
		}
	}
	return v
}

// Diff is a small line diff for golden comparisons: it reports every line
// number where want and got differ, or "" when they are equal.
func Diff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	w := strings.Split(strings.TrimRight(string(want), "\n"), "\n")
	g := strings.Split(strings.TrimRight(string(got), "\n"), "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl == gl {
			continue
		}
		if i < len(w) {
			fmt.Fprintf(&b, "-%s\n", wl)
		}
		if i < len(g) {
			fmt.Fprintf(&b, "+%s\n", gl)
		}
	}
	if b.Len() == 0 {
		return "(whitespace at the end differs)\n"
	}
	return b.String()
}
