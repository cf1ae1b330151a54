package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// sameConfig compares two configs the way a user would: every setting, the
// plugins by name, ports, required flag and options; not where they came
// from.
func sameConfig(t *testing.T, a, b *Config) {
	t.Helper()
	ac, bc := *a, *b
	ac.Path, bc.Path = "", ""
	ac.Plugins, bc.Plugins = nil, nil
	if !reflect.DeepEqual(ac, bc) {
		t.Errorf("configs differ:\n a: %+v\n b: %+v", ac, bc)
	}
	if len(a.Plugins) != len(b.Plugins) {
		t.Fatalf("plugins: %d vs %d", len(a.Plugins), len(b.Plugins))
	}
	for i := range a.Plugins {
		pa, pb := &a.Plugins[i], &b.Plugins[i]
		if pa.Name != pb.Name || !slices.Equal(pa.Listen, pb.Listen) || pa.Required != pb.Required || pa.Index != pb.Index ||
			!reflect.DeepEqual(pa.Options(), pb.Options()) {
			t.Errorf("plugins[%d] differ:\n a: %+v %v\n b: %+v %v", i, pa, pa.Options(), pb, pb.Options())
		}
	}
}

func TestLegacyRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "legacy", "*.json"))
	if len(files) < 3 {
		t.Fatalf("only %d legacy files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			fromJSON, warns, err := LoadLegacyJSON(f)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(f)
			text, warns2, err := ConvertLegacyJSON(data, f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(warns, warns2) {
				t.Errorf("warnings differ: %q vs %q", warns, warns2)
			}
			for _, w := range warns {
				if !bytes.Contains(text, []byte("# warning: "+w)) {
					t.Errorf("converted text lacks warning %q", w)
				}
			}
			fromTOML, err := Parse(text, "converted.toml")
			if err != nil {
				t.Fatalf("converted TOML does not load: %v\n%s", err, text)
			}
			sameConfig(t, fromJSON, fromTOML)
			// Loading by extension takes the legacy path too.
			viaLoad, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			sameConfig(t, fromJSON, viaLoad)
			if abs, _ := filepath.Abs(f); viaLoad.Path != abs {
				t.Errorf("Path = %q", viaLoad.Path)
			}
		})
	}
}

func TestLegacyReadmeExample(t *testing.T) {
	c, warns, err := LoadLegacyJSON(filepath.Join(testdata, "legacy", "agent_conf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	want := []Listener{{Name: "0.0.0.0:3333", Address: "0.0.0.0", Port: 3333, PoolUser: "kevin", Connections: 2, Pools: []Pool{
		{Host: "us.ss.btc.com", Port: 1800, Protocol: "agent"},
		{Host: "us.ss.btc.com", Port: 1800, Protocol: "agent"},
	}}}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("listen = %+v", c.Listen)
	}
	// The old agent dropped miners on a pool outage and guarded ASICBoost
	// unless told otherwise.
	if c.Outage.Policy != OutageDisconnect {
		t.Errorf("policy = %q", c.Outage.Policy)
	}
	ps := afterShareCheck(t, c.Plugins)
	if len(ps) != 1 || ps[0].Name != PluginASICBoostGuard || len(ps[0].Options()) != 0 {
		t.Errorf("plugins = %+v", c.Plugins)
	}
	if err := ps[0].Decode(nil); err != nil {
		t.Errorf("asicboost-guard has options: %v", err)
	}
}

func TestLegacyConvertedText(t *testing.T) {
	data := []byte(`{"agent_listen_port": 3333, "use_ip_as_worker_name": true, "pools": [["p", 1, "u"]]}`)
	text, warns, err := ConvertLegacyJSON(data, "agent_conf.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
	s := string(text)
	for _, want := range []string{
		"[outage]\npolicy = \"disconnect\"\n",
		"[[listen]]\nport = 3333\npool_user = \"u\"\n",
		"[[listen.pool]]\nhost = \"p\"\nport = 1\n",
		"[[plugins]]\nname = \"share-check\"\n\n[[plugins]]\nname = \"worker-name\"\nip_format = \"{1}x{2}x{3}x{4}\"\nmode = \"ip\"\n",
		"[[plugins]]\nname = \"asicboost-guard\"\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("converted text lacks %q:\n%s", want, s)
		}
	}
	// Defaults are not repeated.
	for _, absent := range []string{"[miner]", "[upstream]", "log_level", "address"} {
		if strings.Contains(s, absent) {
			t.Errorf("converted text repeats default %q:\n%s", absent, s)
		}
	}
}

func TestLegacyFullOptions(t *testing.T) {
	c, warns, err := LoadLegacyJSON(filepath.Join(testdata, "legacy", "agent_conf_full.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantWarn := []string{
		"advanced.bitcoin_default_version_mask is not supported",
		"advanced.message_queue_size is not supported",
		"multi_user_mode: a miner whose name has no dot (no sub-account) is refused",
	}
	if len(warns) != len(wantWarn) {
		t.Errorf("warnings: %q", warns)
	}
	for _, w := range wantWarn {
		if !slices.ContainsFunc(warns, func(s string) bool { return strings.Contains(s, w) }) {
			t.Errorf("no warning containing %q in %q", w, warns)
		}
	}
	if c.Upstream.Connections != 5 || c.Upstream.DialTimeout != 15*time.Second || c.Upstream.DeadAfter != 60*time.Second ||
		c.Outage.FakeJobInterval != 30*time.Second || c.Upstream.SubmitResponse {
		t.Errorf("advanced mapping: %+v %+v", c.Upstream, c.Outage)
	}
	if len(c.Listen[0].Pools) != 3 || c.Listen[0].Pools[1].Port != 443 || c.Listen[0].Pools[1].User != "" || c.Listen[0].Pools[0].TLS {
		t.Errorf("pools: %+v", c.Listen[0].Pools)
	}
	if c.Listen[0].Connections != 5 || c.Listen[0].SubAccounts.Connections != 5 {
		t.Errorf("listener connections = %d, per sub-account %d", c.Listen[0].Connections, c.Listen[0].SubAccounts.Connections)
	}
}

func TestLegacyTLSAndIPNames(t *testing.T) {
	c, warns, err := LoadLegacyJSON(filepath.Join(testdata, "legacy", "agent_conf_tls_ip_names.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || warns[0] != `unknown legacy key "log_dir" was ignored` {
		t.Errorf("warnings: %q", warns)
	}
	// The old defaults: use_proxy on, no direct race, direct fallback on.
	if !reflect.DeepEqual(c.Upstream.Proxy, []string{"socks5://127.0.0.1:1089"}) || c.Upstream.ProxyRaceDirect || !c.Upstream.ProxyFallbackDirect {
		t.Errorf("proxy import: %q race=%v fallback=%v", c.Upstream.Proxy, c.Upstream.ProxyRaceDirect, c.Upstream.ProxyFallbackDirect)
	}
	l := c.Listen[0]
	if l.Address != "192.168.1.10" || l.Port != 2000 || l.PoolUser != "farm" || l.Connections != 3 {
		t.Errorf("listener: %+v", l)
	}
	wantPools := []Pool{
		{Host: "pool-a.example.com", Port: 443, TLS: true, Protocol: "agent"},
		{Host: "pool-b.example.com", Port: 443, User: "farm-b", TLS: true, Protocol: "agent"},
		{Host: "pool-c.example.com", Port: 443, TLS: true, Protocol: "agent"},
	}
	if !reflect.DeepEqual(l.Pools, wantPools) {
		t.Errorf("pools: %+v", l.Pools)
	}
	if l.UserFor(&l.Pools[2]) != "farm" {
		t.Errorf("pool without sub-account must use pool_user")
	}
	if c.Outage.Policy != OutageFake || c.Outage.FakeJobInterval != 10*time.Second || !c.Upstream.SubmitResponse {
		t.Errorf("outage/upstream: %+v %+v", c.Outage, c.Upstream)
	}
	ps := afterShareCheck(t, c.Plugins)
	if len(ps) != 1 || ps[0].Name != PluginWorkerName {
		t.Fatalf("plugins: %+v", c.Plugins)
	}
	var o workerNameOpts
	if err := ps[0].Decode(&o); err != nil {
		t.Fatal(err)
	}
	if o != (workerNameOpts{Mode: "ip", IPFormat: "{3}x{4}"}) {
		t.Errorf("worker-name options: %+v", o)
	}
}

func TestLegacyFixedNameWins(t *testing.T) {
	c, warns, err := LoadLegacyJSON(filepath.Join(testdata, "legacy", "agent_conf_fixed_name.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "use_ip_as_worker_name is ignored because fixed_worker_name is set") {
		t.Errorf("warnings: %q", warns)
	}
	if got := afterShareCheck(t, c.Plugins)[0].Options(); !reflect.DeepEqual(got, map[string]any{"mode": "fixed", "fixed_name": "proxy1"}) {
		t.Errorf("options: %v", got)
	}
	// Advanced keys written at the top level are honoured.
	if c.Upstream.DialTimeout != 5*time.Second {
		t.Errorf("dial timeout = %v", c.Upstream.DialTimeout)
	}
}

func TestLegacyErrors(t *testing.T) {
	for _, tc := range []struct{ json, want string }{
		{`{"agent_type": "eth", "agent_listen_port": 1, "pools": [["p", 1, "u"]]}`, `agent_conf.json: legacy agent_type "eth" is not supported`},
		{`{"pools": [["p", 1, "u"]]}`, `agent_conf.json: legacy key "agent_listen_port" is missing`},
		{`{"agent_listen_port": "3333", "pools": [["p", 1, "u"]]}`, `agent_conf.json: legacy key "agent_listen_port": must be a number, got string "3333"`},
		{`{"agent_listen_port": 3333}`, `agent_conf.json: legacy key "pools" is missing`},
		{`{"agent_listen_port": 3333, "pools": []}`, `legacy key "pools" must be a non-empty array`},
		{`{"agent_listen_port": 3333, "pools": [["p", 1]]}`, `legacy pools[0] has no sub-account; one is required unless multi_user_mode is true`},
		{`{"agent_listen_port": 3333, "multi_user_mode": 1, "pools": [["p", 1]]}`, `legacy key "multi_user_mode" must be true or false, got number 1`},
		{`{"agent_listen_port": 3333, "pools": [["p", "x", "u"]]}`, `legacy pools[0]: port must be a number, got string "x"`},
		{`{"agent_listen_port": 3333, "pool_use_tls": "yes", "pools": [["p", 1, "u"]]}`, `legacy key "pool_use_tls" must be true or false`},
		{`{"agent_listen_port": 70000, "pools": [["p", 1, "u"]]}`, `agent_conf.json: after conversion from legacy JSON: listen[0]: port 70000 is out of range 1..65535`},
		{"{\n  \"agent_listen_port\": 3333,\n  \"pools\": [[\"p\", 1, \"u\"],]\n}", `agent_conf.json:3:27: JSON syntax error: invalid character ']'`},
		{`{"a": 1} {}`, `data after the top-level object`},
		{`[1]`, `the file must hold an object`},
		{``, `unexpected end of file`},
	} {
		_, _, err := ConvertLegacyJSON([]byte(tc.json), "agent_conf.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n  err = %v\n want %s", tc.json, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error %q", err)
		}
	}
}

func TestLegacyProxies(t *testing.T) {
	for _, tc := range []struct {
		name, json  string
		proxies     []string
		race, after bool
		warn, err   string
	}{
		{name: "switches", json: `"proxy": ["socks5://u:p@10.0.0.1:1080", "http://10.0.0.2:3128", "system"], "direct_connect_with_proxy": true, "direct_connect_after_proxy": false`,
			proxies: []string{"socks5://u:p@10.0.0.1:1080", "http://10.0.0.2:3128", "system"}, race: true},
		{name: "no scheme means http", json: `"proxy": ["10.0.0.2:3128"]`, proxies: []string{"http://10.0.0.2:3128"}, after: true},
		{name: "socks4 is socks5", json: `"proxy": ["socks4://10.0.0.1:1080", "socks://10.0.0.3:1080"]`,
			proxies: []string{"socks5://10.0.0.1:1080", "socks5://10.0.0.3:1080"}, after: true, warn: "used as socks5://"},
		{name: "use_proxy off", json: `"proxy": ["http://10.0.0.2:3128"], "use_proxy": false`, warn: "use_proxy is false"},
		{name: "empty", json: `"proxy": []`},
		{name: "malformed", json: `"proxy": ["http://user:secret@10.0.0.2"]`, err: `legacy proxy[0]: proxy URL "http://***@10.0.0.2" has no port`},
		{name: "not a list", json: `"proxy": "http://10.0.0.2:3128"`, err: `legacy key "proxy" must be an array`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(`{"agent_listen_port": 3333, "pools": [["p", 1, "u"]], ` + tc.json + `}`)
			text, warns, err := ConvertLegacyJSON(data, "agent_conf.json")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "secret") {
					t.Fatalf("error = %v, want %q without the password", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.warn != "" && !slices.ContainsFunc(warns, func(s string) bool { return strings.Contains(s, tc.warn) }) {
				t.Errorf("no warning %q in %q", tc.warn, warns)
			}
			c, err := Parse(text, "converted.toml")
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			u := c.Upstream
			if !reflect.DeepEqual(u.Proxy, tc.proxies) || (tc.proxies != nil && (u.ProxyRaceDirect != tc.race || u.ProxyFallbackDirect != tc.after)) {
				t.Errorf("upstream = %q race=%v fallback=%v\n%s", u.Proxy, u.ProxyRaceDirect, u.ProxyFallbackDirect, text)
			}
		})
	}
}

// afterShareCheck checks that a converted config starts with share-check
// (the safe default every conversion adds) and returns the plugins after it.
func afterShareCheck(t *testing.T, ps []PluginSpec) []PluginSpec {
	t.Helper()
	if len(ps) == 0 || ps[0].Name != PluginShareCheck || len(ps[0].Options()) != 0 || len(ps[0].Listen) != 0 {
		t.Fatalf("converted config does not start with share-check on every listener: %+v", ps)
	}
	return ps[1:]
}
