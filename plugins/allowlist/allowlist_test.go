package allowlist_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins/allowlist"
	"github.com/btcagent/btcagent/plugins/plugintest"
)

func TestConnect(t *testing.T) {
	c := plugintest.Build(t, plugintest.Spec(allowlist.Name, false, map[string]any{"cidrs": []string{"10.0.0.0/8", "2001:db8::/32", "192.168.1.23"}}))
	for remote, allowed := range map[string]bool{
		"10.255.255.255:1": true, "11.0.0.0:1": false, "192.168.1.23:1": true, "192.168.1.22:1": false,
		"[::ffff:10.0.0.1]:1": true, "[2001:db8:1::5]:1": true, "[2001:db9::5]:1": false,
	} {
		m := &msg.MinerConnecting{Remote: netip.MustParseAddrPort(remote)}
		v := c.OnConnect(m)
		if (v == msg.Continue) != allowed {
			t.Errorf("%s: verdict %v, want allowed=%v", remote, v, allowed)
		}
		if !allowed && !strings.Contains(m.Text, netip.MustParseAddrPort(remote).Addr().Unmap().String()) {
			t.Errorf("%s: refusal %q does not name the address", remote, m.Text)
		}
	}
	// Without a workers list, every name is allowed.
	a := &msg.MinerAuthorizing{Info: msg.MinerInfo{User: "anyone"}}
	if v := c.OnAuthorize(a); v != msg.Continue {
		t.Errorf("authorize without a workers list: %v", v)
	}
}

func TestAuthorize(t *testing.T) {
	for _, tc := range []struct {
		match, user, worker string
		allowed             bool
	}{
		{"", "farm1.rig1", "rig1", true},
		{"", "farm2.rig1", "rig1", false},
		{"user", "x.rack7-3", "rack7-3", false}, // anchored at the start of the name as sent
		{"worker", "x.rack7-3", "rack7-3", true},
		{"worker", "farm1.rig1", "rig1", false},
	} {
		opts := map[string]any{"workers": []string{`^farm1\.`, `^rack7-`}}
		if tc.match != "" {
			opts["match"] = tc.match
		}
		c := plugintest.Build(t, plugintest.Spec(allowlist.Name, false, opts))
		m := &msg.MinerAuthorizing{Info: msg.MinerInfo{User: tc.user, Worker: tc.worker}}
		v := c.OnAuthorize(m)
		if (v == msg.Continue) != tc.allowed {
			t.Errorf("%+v: verdict %v", tc, v)
		}
		if !tc.allowed && (m.Code != codec.StatusUnauthorized || !strings.Contains(m.Text, "allow list")) {
			t.Errorf("%+v: refusal %d %q, want 24 and a clear text", tc, m.Code, m.Text)
		}
		// Connections are not filtered without a cidrs list.
		if v := c.OnConnect(&msg.MinerConnecting{Remote: netip.MustParseAddrPort("203.0.113.9:1")}); v != msg.Continue {
			t.Errorf("connect without a cidrs list: %v", v)
		}
	}
}

func TestProvisionErrors(t *testing.T) {
	for want, opts := range map[string]map[string]any{
		"needs cidrs or workers": {},
		`cidrs: [1] "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)`: {"cidrs": []string{"10.0.0.0/8", "10.0.0.1/8"}},
		`cidrs: [0] "10.0.0.300"`:        {"cidrs": []string{"10.0.0.300"}},
		"write IPv4 networks as IPv4":    {"cidrs": []string{"::ffff:10.0.0.0/104"}},
		"workers[1]: error parsing":      {"workers": []string{"ok", "("}},
		`match = "name": want "user" or`: {"workers": []string{"a"}, "match": "name"},
	} {
		_, err := plugintest.BuildErr(plugintest.Spec(allowlist.Name, false, opts))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want %q", opts, err, want)
		}
	}
}
