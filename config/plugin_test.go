package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type workerNameOpts struct {
	Mode      string `toml:"mode"`
	IPFormat  string `toml:"ip_format"`
	FixedName string `toml:"fixed_name"`
}

const pluginDoc = `[[listen]]
port = 3333
pool_user = "demo"
  [[listen.pool]]
  host = "127.0.0.1"
  port = 3334

[[plugins]]
name = "asicboost-guard"

[[plugins]]
name = "worker-name"
listen = [3333]
mode = "fixed"
fixd_name = "rig"
`

func parseOne(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPluginDecodeUnknownKey(t *testing.T) {
	c := parseOne(t, pluginDoc)
	var o workerNameOpts
	err := c.Plugins[1].Decode(&o)
	want := `config.toml:15: plugins[1] (worker-name): unknown key "fixd_name" (did you mean "fixed_name"?)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestPluginDecodeCaseMismatch(t *testing.T) {
	c := parseOne(t, strings.Replace(pluginDoc, "fixd_name", "Fixed_Name", 1))
	var o workerNameOpts
	err := c.Plugins[1].Decode(&o)
	if err == nil || !strings.Contains(err.Error(), `config.toml:15: plugins[1] (worker-name): unknown key "Fixed_Name" (did you mean "fixed_name"?)`) {
		t.Fatalf("err = %v", err)
	}
	if o.FixedName != "" {
		t.Errorf("case-mismatched key filled the field: %q", o.FixedName)
	}
}

func TestPluginDecodeWrongType(t *testing.T) {
	c := parseOne(t, strings.Replace(pluginDoc, `fixd_name = "rig"`, "fixed_name = 7", 1))
	var o workerNameOpts
	err := c.Plugins[1].Decode(&o)
	want := `config.toml:15: plugins[1] (worker-name): wrong type for "fixed_name": expected string, got integer 7`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
}

func TestPluginDecodeOK(t *testing.T) {
	c := parseOne(t, strings.Replace(pluginDoc, "fixd_name", "fixed_name", 1))
	s := &c.Plugins[1]
	if s.Name != "worker-name" || !reflect.DeepEqual(s.Listen, []int{3333}) || s.Line != 11 || s.Index != 1 {
		t.Errorf("spec: %+v", s)
	}
	if err := s.CheckDecoded(); err == nil || !strings.Contains(err.Error(), `config.toml:11: plugins[1] (worker-name): options ["mode" "fixed_name"] were never decoded`) {
		t.Errorf("CheckDecoded before Decode: %v", err)
	}
	var o workerNameOpts
	if err := s.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o != (workerNameOpts{Mode: "fixed", FixedName: "rig"}) {
		t.Errorf("decoded %+v", o)
	}
	if err := s.CheckDecoded(); err != nil {
		t.Errorf("CheckDecoded after Decode: %v", err)
	}
	// A plugin without options passes CheckDecoded without decoding.
	if err := c.Plugins[0].CheckDecoded(); err != nil {
		t.Errorf("option-less plugin: %v", err)
	}
	if err := c.Plugins[0].Decode(nil); err != nil {
		t.Errorf("Decode(nil) without options: %v", err)
	}
	if err := c.Plugins[0].Decode(&struct{}{}); err != nil {
		t.Errorf("Decode(&struct{}{}) without options: %v", err)
	}
}

func TestPluginDecodeNilRefusesKeys(t *testing.T) {
	c := parseOne(t, pluginDoc)
	err := c.Plugins[1].Decode(nil)
	if err == nil || !strings.Contains(err.Error(), `config.toml:14: plugins[1] (worker-name): unknown key "mode" (the plugin takes no options)`) {
		t.Fatalf("err = %v", err)
	}
	err = c.Plugins[1].Decode(&struct{}{})
	if err == nil || !strings.Contains(err.Error(), `config.toml:14: plugins[1] (worker-name): unknown key "mode"`) {
		t.Fatalf("err = %v", err)
	}
	if err := c.Plugins[1].Decode(workerNameOpts{}); err == nil {
		t.Fatal("Decode of a non-pointer succeeded")
	}
}

// richOpts exercises nested tables, maps, slices, durations and embedding.
type richOpts struct {
	Base
	MinDiff  uint64             `toml:"min_diff"`
	Quoted   string             `toml:"quoted key"`
	Limits   map[string]float64 `toml:"limits"`
	Tags     []string           `toml:"tags"`
	Rules    *rules             `toml:"rules"`
	Ignored  string             `toml:"-"`
	internal int
}

type Base struct {
	Verbose bool `toml:"verbose"`
}

type rules struct {
	StaleAfter time.Duration `toml:"stale_after"`
	Stamp      time.Time     `toml:"stamp"`
}

func TestPluginDecodeNested(t *testing.T) {
	doc := minimalListener + `
[[plugins]]
name = "share-filter"
verbose = true
min_diff = 65536
"quoted key" = 'literal'
limits = { per_second = 10, burst = 2.5 }
tags = ["a", "b"]

  [plugins.rules]
  stale_after = "2s"
  stamp = 2024-01-02T03:04:05Z
`
	c := parseOne(t, doc)
	var o richOpts
	if err := c.Plugins[0].Decode(&o); err != nil {
		t.Fatal(err)
	}
	want := richOpts{
		Base:    Base{Verbose: true},
		MinDiff: 65536,
		Quoted:  "literal",
		Limits:  map[string]float64{"per_second": 10, "burst": 2.5},
		Tags:    []string{"a", "b"},
		Rules:   &rules{StaleAfter: 2 * time.Second, Stamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("got  %+v\nwant %+v", o, want)
	}

	bad := strings.Replace(doc, `stale_after = "2s"`, `stale_aftr = "2s"`, 1)
	c = parseOne(t, bad)
	err := c.Plugins[0].Decode(&o)
	if err == nil || !strings.Contains(err.Error(), `config.toml:18: plugins[0] (share-filter): unknown key "rules.stale_aftr"`) {
		t.Fatalf("nested unknown key: %v", err)
	}
	bad = strings.Replace(doc, `tags = ["a", "b"]`, `tags = ["a", 2]`, 1)
	c = parseOne(t, bad)
	err = c.Plugins[0].Decode(&o)
	if err == nil || !strings.Contains(err.Error(), `config.toml:15: plugins[0] (share-filter): wrong type for "tags": expected string, got integer 2`) {
		t.Fatalf("array element type: %v", err)
	}
	bad = strings.Replace(doc, `min_diff = 65536`, `min_diff = -1`, 1)
	c = parseOne(t, bad)
	err = c.Plugins[0].Decode(&o)
	if err == nil || !strings.Contains(err.Error(), `config.toml:12: plugins[0] (share-filter): value -1 of "min_diff" is out of range for uint64`) {
		t.Fatalf("unsigned range: %v", err)
	}
}

func TestPluginOptionsIsACopy(t *testing.T) {
	c := parseOne(t, minimalListener+"\n[[plugins]]\nname = \"x\"\nlist = [1, 2]\nm = { a = \"b\" }\n")
	opts := c.Plugins[0].Options()
	want := map[string]any{"list": []any{int64(1), int64(2)}, "m": map[string]any{"a": "b"}}
	if !reflect.DeepEqual(opts, want) {
		t.Fatalf("Options = %#v", opts)
	}
	opts["list"].([]any)[0] = int64(99)
	opts["m"].(map[string]any)["a"] = "changed"
	if !reflect.DeepEqual(c.Plugins[0].Options(), want) {
		t.Errorf("Options() exposed the spec's own data")
	}
	// Decoding into an interface must not hand out the spec's data either.
	var raw map[string]any
	if err := c.Plugins[0].Decode(&raw); err != nil {
		t.Fatal(err)
	}
	raw["m"].(map[string]any)["a"] = "changed"
	if !reflect.DeepEqual(c.Plugins[0].Options(), want) {
		t.Errorf("Decode exposed the spec's own data")
	}
}

func TestNewPluginSpecNormalises(t *testing.T) {
	s := NewPluginSpec("p", map[string]any{"n": 5, "l": []string{"a"}, "m": map[string]int{"x": 1}, "f": float32(1.5)})
	want := map[string]any{"n": int64(5), "l": []any{"a"}, "m": map[string]any{"x": int64(1)}, "f": 1.5}
	if !reflect.DeepEqual(s.Options(), want) {
		t.Errorf("Options = %#v", s.Options())
	}
	var o struct {
		N int              `toml:"n"`
		L []string         `toml:"l"`
		M map[string]uint8 `toml:"m"`
		F float32          `toml:"f"`
	}
	if err := s.Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o.N != 5 || o.L[0] != "a" || o.M["x"] != 1 || o.F != 1.5 {
		t.Errorf("decoded %+v", o)
	}
	if !s.AppliesTo(1) || !s.AppliesTo(65535) {
		t.Error("a spec without listen must apply to every port")
	}
	s.Listen = []int{3333}
	if !s.AppliesTo(3333) || s.AppliesTo(3334) {
		t.Error("listen restriction ignored")
	}
}
