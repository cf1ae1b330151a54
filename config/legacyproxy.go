package config

import (
	"slices"
	"strings"

	"github.com/btcagent/btcagent/internal/proxydial"
)

// proxies imports the old agent's proxy list and its switches, with the old
// defaults: use_proxy on, no direct race, direct fallback on.
func (lg *legacy) proxies(m map[string]any, u *UpstreamOptions) {
	raw, ok := m["proxy"]
	use := lg.boolean(m, "use_proxy", true)
	with := lg.boolean(m, "direct_connect_with_proxy", false)
	after := lg.boolean(m, "direct_connect_after_proxy", true)
	if !ok || raw == nil {
		return
	}
	list, isArr := raw.([]any)
	if !isArr {
		lg.fail("legacy key \"proxy\" must be an array of proxy URLs, got %s", jsonType(raw))
		return
	}
	var out []string
	for i, e := range list {
		s, isStr := e.(string)
		if !isStr {
			lg.fail("legacy proxy[%d] must be a string, got %s", i, jsonType(e))
			return
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s != proxydial.System {
			s = lg.proxyURL(i, s)
		}
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return
	}
	if !use {
		lg.warn("use_proxy is false: the proxy list was not imported and pools are dialed directly")
		return
	}
	u.Proxy, u.ProxyRaceDirect, u.ProxyFallbackDirect = out, with, after
}

// proxyURL carries an old proxy entry over: no scheme meant HTTP, and
// socks/socks4/socks4a all meant SOCKS5 to the old agent.
func (lg *legacy) proxyURL(i int, s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "http", s
	}
	switch strings.ToLower(scheme) {
	case "socks", "socks4", "socks4a":
		if !strings.EqualFold(scheme, "socks") {
			lg.warn("proxy[%d] uses %s://; it is used as socks5://, as the old agent did", i, strings.ToLower(scheme))
		}
		scheme = "socks5"
	}
	s = strings.ToLower(scheme) + "://" + rest
	if _, err := proxydial.ParseURL(s); err != nil {
		lg.fail("legacy proxy[%d]: %v", i, err)
		return ""
	}
	return s
}
