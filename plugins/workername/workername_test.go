package workername_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/plugins/plugintest"
	"github.com/btcagent/btcagent/plugins/workername"
)

func authorize(t *testing.T, opts map[string]any, user, remote string) string {
	t.Helper()
	c := plugintest.Build(t, plugintest.Spec(workername.Name, false, opts))
	m := &msg.MinerAuthorizing{Info: msg.MinerInfo{User: user, Worker: user, Remote: netip.MustParseAddrPort(remote)}}
	if v := c.OnAuthorize(m); v != msg.Continue {
		t.Fatalf("verdict %v, want continue", v)
	}
	return m.Info.Worker
}

func TestModes(t *testing.T) {
	cases := []struct {
		name   string
		opts   map[string]any
		remote string
		want   string
	}{
		{"fixed", map[string]any{"mode": "fixed", "fixed_name": "site-a"}, "10.0.0.1:1", "site-a"},
		{"ip default", map[string]any{"mode": "ip"}, "192.168.1.23:4028", "192x168x1x23"},
		{"ip legacy format", map[string]any{"mode": "ip", "ip_format": "{1}x{2}x{3}x{4}"}, "10.1.2.3:1", "10x1x2x3"},
		{"ip mapped", map[string]any{"mode": "ip"}, "[::ffff:10.1.2.3]:1", "10x1x2x3"},
		{"ip6 default", map[string]any{"mode": "ip"}, "[fe80::1:2:3:4]:1", "fe80x0x0x0x1x2x3x4"},
		{"ip6 custom", map[string]any{"mode": "ip", "ip6_format": "{1}-{8}"}, "[2001:db8::ff]:1", "2001-ff"},
		{"ip4 past octets", map[string]any{"mode": "ip", "ip_format": "{4}.{5}.{6}"}, "10.1.2.3:1", "3.."},
		{"literal braces", map[string]any{"mode": "ip", "ip_format": "{0}{9}{x}{4}{"}, "10.1.2.3:1", "{0}{9}{x}3{"},
		{"rules chain", map[string]any{"mode": "rules", "rules": []map[string]any{
			{"match": `^john\.`, "replace": ""}, {"match": `(\d+)$`, "replace": "-$1"}}}, "10.0.0.1:1", "rig-7"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := authorize(t, c.opts, "john.rig7", c.remote); got != c.want {
				t.Errorf("worker = %q, want %q", got, c.want)
			}
		})
	}
}

// Options are checked at start-up, naming the problem.
func TestProvisionErrors(t *testing.T) {
	cases := []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{}, "mode is required"},
		{map[string]any{"mode": "IP"}, `unknown mode "IP"`},
		{map[string]any{"mode": "fixed"}, "needs fixed_name"},
		{map[string]any{"mode": "fixed", "fixed_name": "!!!"}, "no character the pool accepts"},
		{map[string]any{"mode": "fixed", "fixed_name": "a", "ip_format": "{1}"}, `ip_format is not used with mode = "fixed"`},
		{map[string]any{"mode": "ip", "fixed_name": "a"}, `fixed_name is not used with mode = "ip"`},
		{map[string]any{"mode": "rules"}, "needs at least one"},
		{map[string]any{"mode": "rules", "rules": []map[string]any{{"match": "("}}}, "rules[0]: match: error parsing regexp"},
		{map[string]any{"mode": "rules", "rules": []map[string]any{{"replace": "x"}}}, "rules[0]: match is empty"},
		{map[string]any{"mode": "ip", "ip_fromat": "{1}"}, `unknown key "ip_fromat"`},
		{map[string]any{"mode": "rules", "rules": []map[string]any{{"match": "a", "replce": "b"}}}, `unknown key "rules.replce" (did you mean "replace"?)`},
	}
	for _, c := range cases {
		_, err := plugintest.BuildErr(plugintest.Spec(workername.Name, false, c.opts))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want it to contain %q", c.opts, err, c.want)
		}
		if err != nil && !strings.Contains(err.Error(), "worker-name") {
			t.Errorf("error %q does not name the plugin", err)
		}
	}
}
