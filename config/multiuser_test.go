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

func TestMultiUserValues(t *testing.T) {
	c, err := Load(filepath.Join(testdata, "ok", "multi_user.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if l := c.Listen[0]; l.MultiUser || !l.SubAccounts.IsZero() {
		t.Errorf("single-user listener got multi-user settings: %+v", l)
	}
	cust := c.Listen[1]
	want := SubAccountOptions{Connections: 4, Max: 250, Grace: 5 * time.Minute, Allow: []string{"alice", "bob"}, AllowPattern: "cust[0-9]{1,4}"}
	if !cust.MultiUser || cust.PoolUser != "" || !reflect.DeepEqual(cust.SubAccounts, want) {
		t.Errorf("customers: multi %v user %q %+v", cust.MultiUser, cust.PoolUser, cust.SubAccounts)
	}
	// No table: every default, the listener's (here upstream's) link count.
	open := c.Listen[2]
	if want := (SubAccountOptions{Connections: 3, Max: DefaultMaxSubAccounts, Grace: 60 * time.Second}); !reflect.DeepEqual(open.SubAccounts, want) {
		t.Errorf("open: %+v", open.SubAccounts)
	}
	a, err := cust.SubAccounts.AllowList()
	if err != nil {
		t.Fatal(err)
	}
	for name, ok := range map[string]bool{"alice": true, "cust12": true, "cust12345": false, "carol": false} {
		if a.Allows(name) != ok {
			t.Errorf("Allows(%q) = %v", name, !ok)
		}
	}
	if a, _ := open.SubAccounts.AllowList(); !a.Open() {
		t.Error("a listener without allow keys must admit every name")
	}
}

// A key left out of [listen.subaccounts] takes its default; the others
// are kept as written.
func TestMultiUserPartialTable(t *testing.T) {
	text := "[[listen]]\nport = 3333\nmulti_user = true\n  [listen.subaccounts]\n  allow = []\n  grace = \"10s\"\n" +
		"  [[listen.pool]]\n  host = \"127.0.0.1\"\n  port = 3334\n"
	c, err := Parse([]byte(text), "mem")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Listen[0].SubAccounts, (SubAccountOptions{Connections: 2, Max: DefaultMaxSubAccounts, Grace: 10 * time.Second}); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// Code that builds a Config may leave the table empty: Validate accepts
// it and ApplyDefaults fills it.
func TestMultiUserBuiltInCode(t *testing.T) {
	c := Default()
	c.Listen = []Listener{{Port: 3333, MultiUser: true, Connections: 5, Pools: []Pool{{Host: "h", Port: 1}}}}
	if err := c.Validate(); err != nil {
		t.Fatalf("unfilled multi-user listener: %v", err)
	}
	c.ApplyDefaults()
	if got := c.Listen[0].SubAccounts; !reflect.DeepEqual(got, SubAccountOptions{Connections: 5, Max: 100, Grace: time.Minute}) {
		t.Errorf("ApplyDefaults: %+v", got)
	}
	c.Listen[0].SubAccounts.Allow = []string{"ok", "not ok"}
	err := c.Validate()
	if err == nil || err.Error() != `listen[0] (0.0.0.0:3333): subaccounts.allow[1]: sub-account name "not ok" has characters the pool drops (allowed: letters, digits and - _ : | ^ /)` {
		t.Errorf("err = %v", err)
	}
	if _, err := c.Listen[0].SubAccounts.AllowList(); err == nil || !strings.Contains(err.Error(), "config: subaccounts: allow-list:") {
		t.Errorf("AllowList on an invalid list: %v", err)
	}
}

// The shipped btccom Go agent file (agent_conf.default.json, pools pointed
// at local simulators) turns multi_user_mode on: it must become a
// multi-user listener with the old per-sub-account link count and no cap
// lower than the highest, and its placeholder sub-account must vanish.
func TestLegacyBtccomDefaultIsMultiUser(t *testing.T) {
	path := filepath.Join(testdata, "legacy", "agent_conf_default.json")
	c, warns, err := LoadLegacyJSON(path)
	if err != nil {
		t.Fatal(err)
	}
	wantWarns := []string{
		"advanced.message_queue_size is not supported and was ignored (it tuned internals of the old agent)",
		"multi_user_mode: a miner whose name has no dot (no sub-account) is refused; the old agent took the whole name as the sub-account",
	}
	if !slices.Equal(warns, wantWarns) {
		t.Errorf("warnings:\n got %q\nwant %q", warns, wantWarns)
	}
	want := []Listener{{Name: "0.0.0.0:3333", Address: "0.0.0.0", Port: 3333, Connections: 5, MultiUser: true,
		SubAccounts: SubAccountOptions{Connections: 5, Max: MaxSubAccountsLimit, Grace: time.Minute},
		Pools: []Pool{
			{Host: "127.0.0.1", Port: 3334, Protocol: "agent"},
			{Host: "127.0.0.1", Port: 3335, Protocol: "agent"},
			{Host: "127.0.0.1", Port: 3336, Protocol: "agent"},
		}}}
	if !reflect.DeepEqual(c.Listen, want) {
		t.Errorf("listen:\n got %+v\nwant %+v", c.Listen, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := ConvertLegacyJSON(data, "agent_conf.default.json")
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, want := range []string{
		"[upstream]\nconnections = 5\n",
		"[[listen]]\nport = 3333\nmulti_user = true\n\n[listen.subaccounts]\nmax = 10000\n\n[[listen.pool]]\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("converted text lacks %q:\n%s", want, s)
		}
	}
	for _, absent := range []string{"pool_user", "YourSubAccountName", "\nuser =", " user ="} {
		if strings.Contains(s, absent) {
			t.Errorf("converted text has %q:\n%s", absent, s)
		}
	}
}

func TestLegacyMultiUserWithoutSubAccounts(t *testing.T) {
	data := []byte(`{"agent_listen_port": 3333, "multi_user_mode": true, "pools": [["p", 1], ["q", 2, "x"]]}`)
	text, _, err := ConvertLegacyJSON(data, "agent_conf.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse(text, "converted.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	l := c.Listen[0]
	if !l.MultiUser || l.PoolUser != "" || l.Pools[1].User != "" || l.SubAccounts.Connections != 2 {
		t.Errorf("listener: %+v", l)
	}
}

func TestWriteTOMLMultiUser(t *testing.T) {
	c := Default()
	c.Listen = []Listener{{Port: 1, MultiUser: true, Connections: 3, Pools: []Pool{{Host: "h", Port: 2}},
		SubAccounts: SubAccountOptions{Connections: 7, Max: 5, Grace: 90 * time.Second, Allow: []string{"a"}, AllowPattern: "b+"}}}
	c.ApplyDefaults()
	var b bytes.Buffer
	if err := c.WriteTOML(&b); err != nil {
		t.Fatal(err)
	}
	want := "[[listen]]\nport = 1\nconnections = 3\nmulti_user = true\n\n[listen.subaccounts]\nconnections = 7\nmax = 5\ngrace = \"90s\"\nallow = [\"a\"]\nallow_pattern = \"b+\"\n\n[[listen.pool]]\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("output lacks\n%s\nin\n%s", want, b.String())
	}
	back, err := Parse(b.Bytes(), "out.toml")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	sameConfig(t, c, back)
}
