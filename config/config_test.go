package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const testdata = "../testdata/config"

// TestBadConfigs walks testdata/config/bad: every *.toml must be refused with
// a one-line error containing the text of its sibling *.err file.
func TestBadConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "bad", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("only %d bad configs found; testdata missing?", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".toml"), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".toml") + ".err")
			if err != nil {
				t.Fatalf("no expected error: %v", err)
			}
			wantMsg := strings.TrimSpace(string(want))
			c, err := Load(f)
			if err == nil {
				t.Fatalf("loaded without error: %+v", c)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			if !strings.Contains(msg, wantMsg) {
				t.Errorf("error\n  %s\ndoes not contain\n  %s", msg, wantMsg)
			}
			if !strings.HasPrefix(msg, f) {
				t.Errorf("error %q does not start with the file name %q", msg, f)
			}
		})
	}
}

func TestOKConfigsLoad(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testdata, "ok", "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("only %d ok configs", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			abs, _ := filepath.Abs(f)
			if c.Path != abs {
				t.Errorf("Path = %q, want %q", c.Path, abs)
			}
			for i := range c.Plugins {
				// The test plugins have no decoder here; only check that
				// the guard notices that.
				if len(c.Plugins[i].Options()) > 0 && c.Plugins[i].CheckDecoded() == nil {
					t.Errorf("plugin %s: CheckDecoded passed without Decode", c.Plugins[i].Name)
				}
			}
		})
	}
}

func TestTwoListenersValues(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "ok", "two_listeners.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if c.LogLevel != "debug" || c.LogFormat != "json" || c.HTTPListen != "" {
		t.Errorf("top level: %q %q %q", c.LogLevel, c.LogFormat, c.HTTPListen)
	}
	if c.Upstream.Connections != 4 || c.Upstream.ReconnectMin != 500*time.Millisecond || c.Upstream.ReconnectMax != 30*time.Second || c.Upstream.FailbackInterval != 5*time.Minute {
		t.Errorf("upstream: %+v", c.Upstream)
	}
	// Untouched settings keep their defaults.
	if c.Upstream.DeadAfter != 90*time.Second || c.Miner != Default().Miner || c.Outage != Default().Outage {
		t.Errorf("defaults lost: %+v %+v %+v", c.Upstream, c.Miner, c.Outage)
	}
	want := []Listener{
		{Name: "0.0.0.0:3333", Address: "0.0.0.0", Port: 3333, PoolUser: "farm1", Connections: 4, Pools: []Pool{
			{Host: "pool-a.example.com", Port: 1800, Protocol: "agent"},
			{Host: "pool-b.example.com", Port: 1800, User: "farm1-backup", Protocol: "agent"},
		}},
		{Name: "east", Address: "127.0.0.1", Port: 3334, PoolUser: "farm2", Connections: 1, StratumWorker: "east-rack", Pools: []Pool{
			{Host: "10.0.0.5", Port: 3333, Protocol: "stratum"},
		}},
	}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("listeners:\n got %+v\nwant %+v", c.Listen, want)
	}
	l := &c.Listen[0]
	if got := l.UserFor(&l.Pools[0]); got != "farm1" {
		t.Errorf("UserFor(pool 0) = %q", got)
	}
	if got := l.UserFor(&l.Pools[1]); got != "farm1-backup" {
		t.Errorf("UserFor(pool 1) = %q", got)
	}
	if got := l.Pools[0].Addr(); got != "pool-a.example.com:1800" {
		t.Errorf("Addr = %q", got)
	}
}

func TestTLSPoolIPv6Key(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "ok", "tls_pool.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listen[0].Key(); got != "[::]:4000" {
		t.Errorf("Key = %q", got)
	}
	p := c.Listen[0].Pools
	if !p[0].TLS || p[0].TLSSkipVerify || !p[1].TLS || !p[1].TLSSkipVerify {
		t.Errorf("tls flags: %+v", p)
	}
	if c.Outage.Policy != OutageFake || c.Outage.FakeJobInterval != 10*time.Second {
		t.Errorf("outage: %+v", c.Outage)
	}
}

// TestExampleConfig keeps the documented config.toml loadable and in step
// with the defaults it claims to show.
func TestExampleConfig(t *testing.T) {
	c, err := Load("../config.toml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if !reflect.DeepEqual(c.Upstream, def.Upstream) || c.Miner != def.Miner || c.Outage != def.Outage || c.FarmWatch != def.FarmWatch {
		t.Errorf("config.toml does not show the defaults:\n%+v\n%+v", c, def)
	}
	if c.LogLevel != def.LogLevel || c.LogFormat != def.LogFormat || c.LogDir != def.LogDir ||
		c.LogMaxSizeMB != def.LogMaxSizeMB || c.LogMaxFiles != def.LogMaxFiles || c.HTTPListen != def.HTTPListen || c.HTTPToken != def.HTTPToken {
		t.Errorf("config.toml top-level keys differ from defaults: %+v", c)
	}
	want := []Listener{{Name: "main", Address: "0.0.0.0", Port: 3333, PoolUser: "demo", Connections: 2,
		Pools: []Pool{{Host: "127.0.0.1", Port: 3334, Protocol: "agent"}}}}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("listen = %+v", c.Listen)
	}
	// Safe default: local share validation is on in the shipped file.
	if len(c.Plugins) != 1 || c.Plugins[0].Name != PluginShareCheck || len(c.Plugins[0].Listen) != 0 {
		t.Errorf("example must enable exactly share-check on every listener: %+v", c.Plugins)
	}
	// Every key of the schema appears in the example (the plugin example is
	// commented out), so the documentation cannot fall behind the code.
	text, _ := os.ReadFile("../config.toml")
	for _, key := range schemaKeys(reflect.TypeFor[Config]()) {
		if !strings.Contains(string(text), "\n"+key+" =") && !strings.Contains(string(text), "  "+key+" =") {
			t.Errorf("config.toml does not document %q", key)
		}
	}
}

func schemaKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
			out = append(out, schemaKeys(ft)...)
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestLoadResolvesLogDirAgainstConfigDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, logDir string) string {
		p := filepath.Join(dir, name)
		text := "log_dir = " + tomlString(logDir) + "\n" + minimalListener
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ logDir, want string }{
		{"logs", filepath.Join(dir, "logs")},
		{"/var/log/btcagent", "/var/log/btcagent"},
		{"stderr", "stderr"},
		{"", ""},
	} {
		c, err := Load(write("c.toml", tc.logDir))
		if err != nil {
			t.Fatal(err)
		}
		if c.LogDir != tc.want {
			t.Errorf("log_dir %q: got %q, want %q", tc.logDir, c.LogDir, tc.want)
		}
	}
	// Parse has no directory to anchor to and leaves the path alone.
	c, err := Parse([]byte("log_dir = \"logs\"\n"+minimalListener), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if c.LogDir != "logs" || c.Path != "" {
		t.Errorf("Parse: LogDir %q Path %q", c.LogDir, c.Path)
	}
}

const minimalListener = `
[[listen]]
port = 3333
pool_user = "demo"
  [[listen.pool]]
  host = "127.0.0.1"
  port = 3334
`

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("err = %v", err)
	}
}

func TestHTTPListenEmptyDisables(t *testing.T) {
	c, err := Parse([]byte("http_listen = \"\"\n"+minimalListener), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListen != "" {
		t.Errorf("HTTPListen = %q, want disabled", c.HTTPListen)
	}
	c, err = Parse([]byte(minimalListener), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPListen != "127.0.0.1:8080" {
		t.Errorf("default HTTPListen = %q", c.HTTPListen)
	}
}

func TestFlushIntervalZeroAllowed(t *testing.T) {
	c, err := Parse([]byte("[upstream]\nflush_interval = \"0s\"\n"+minimalListener), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if c.Upstream.FlushInterval != 0 {
		t.Errorf("FlushInterval = %v", c.Upstream.FlushInterval)
	}
}

// TestValidateBuiltInCode covers configs assembled by other packages' code
// rather than read from a file.
func TestValidateBuiltInCode(t *testing.T) {
	c := Default()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "at least one listener") {
		t.Fatalf("Default() without listeners: %v", err)
	}
	c.Listen = []Listener{{Port: 3333, PoolUser: "u", Pools: []Pool{{Host: "h", Port: 1}}}}
	if err := c.Validate(); err != nil {
		t.Fatalf("unfilled defaults must validate: %v", err)
	}
	c.ApplyDefaults()
	l := c.Listen[0]
	if l.Address != "0.0.0.0" || l.Name != "0.0.0.0:3333" || l.Connections != 2 || l.Pools[0].Protocol != ProtocolAgent {
		t.Errorf("ApplyDefaults: %+v", l)
	}
	c.Path = "/etc/btcagent.toml"
	c.Upstream.ReconnectMax = 0
	err := c.Validate()
	if err == nil || err.Error() != `/etc/btcagent.toml: upstream.reconnect_max = "0s" must be positive` {
		t.Errorf("err = %v", err)
	}
}

func TestPluginsFor(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "ok", "plugins.toml"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(port int) []string {
		var out []string
		for _, s := range c.PluginsFor(port) {
			out = append(out, s.Name)
		}
		return out
	}
	if got := names(3333); !reflect.DeepEqual(got, []string{"worker-name", "share-filter", "asicboost-guard"}) {
		t.Errorf("3333: %v", got)
	}
	if got := names(3335); !reflect.DeepEqual(got, []string{"share-filter", "asicboost-guard"}) {
		t.Errorf("3335: %v", got)
	}
	if !c.Plugins[1].Required || c.Plugins[0].Required {
		t.Errorf("required flags: %+v", c.Plugins)
	}
	for i, line := range []int{15, 21, 32} {
		if c.Plugins[i].Line != line || c.Plugins[i].Index != i {
			t.Errorf("plugins[%d]: line %d index %d, want line %d", i, c.Plugins[i].Line, c.Plugins[i].Index, line)
		}
	}
}

// A pool's proxy list replaces the [upstream] one ([] meaning direct), and
// each switch left out on the pool is the [upstream] one.
func TestProxyInheritance(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "ok", "proxies.toml"))
	if err != nil {
		t.Fatal(err)
	}
	pools := c.Listen[0].Pools
	want := []ProxySettings{
		{Proxies: []string{"socks5://farm:secret@10.0.0.5:1080", "http://10.0.0.6:3128", "system"}, FallbackDirect: true},
		{Proxies: []string{"https://proxy.example.com:8443"}, RaceDirect: true, FallbackDirect: true},
		{Proxies: []string{}, FallbackDirect: true},
	}
	for i := range pools {
		if got := c.Upstream.ProxyFor(&pools[i]); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("pool %d: %+v, want %+v", i, got, want[i])
		}
	}
}
