package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MinPublicTokenLen is the shortest http_token accepted when the HTTP server
// is reachable beyond loopback. The server throttles wrong guesses, but a
// token of a few characters would still fall to a patient attacker.
const MinPublicTokenLen = 16

// IsLoopbackListen reports whether an http_listen value binds loopback only
// ("127.0.0.1:8080", "[::1]:8080", "localhost:8080"). An empty host binds
// every interface, so it is not loopback.
func IsLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *Config) validateHTTP() *Error {
	if err := intRange(top("http_max_connections"), c.HTTPMaxConns, 1, 4096); err != nil {
		return err
	}
	for i, h := range c.HTTPAllowedHosts {
		if msg := checkAllowedHost(h); msg != "" {
			return errorAt(top("http_allowed_hosts").elem(i), "http_allowed_hosts[%d] %q %s", i, h, msg)
		}
	}
	if c.HTTPListen == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(c.HTTPListen); err != nil {
		return errorAt(top("http_listen"), "http_listen %q is not host:port: %v", c.HTTPListen, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return errorAt(top("http_listen"), "http_listen %q has an invalid port", c.HTTPListen)
	}
	// The token's value is never printed: the error may end up in a log.
	if c.HTTPToken != "" && len(c.HTTPToken) < MinPublicTokenLen && !IsLoopbackListen(c.HTTPListen) {
		return errorAt(top("http_token"), "http_token has %d characters; at least %d are required when http_listen (%q) is not a loopback address (generate one with: openssl rand -hex 16)", len(c.HTTPToken), MinPublicTokenLen, c.HTTPListen)
	}
	return nil
}

// checkAllowedHost returns why h is not a host name or IP address, or "".
// Ports are refused rather than ignored so that "example.com:8080" does not
// look as if it restricted the port.
func checkAllowedHost(h string) string {
	if h == "" {
		return "is empty"
	}
	if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); ip != nil {
		return ""
	}
	if strings.Contains(h, "://") || strings.Contains(h, "/") {
		return "must be a host name or IP address, not a URL"
	}
	if strings.Contains(h, ":") {
		return "must not include a port (the Host check ignores ports)"
	}
	if strings.Contains(h, "*") {
		return "must be an exact name: wildcards are not supported"
	}
	for i := 0; i < len(h); i++ {
		b := h[i]
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '-' || b == '_') {
			return "is not a host name or IP address"
		}
	}
	if h[0] == '.' || h[0] == '-' {
		return "is not a host name or IP address"
	}
	return ""
}

// Warnings lists settings that are accepted but probably unsafe; the agent
// logs them at start and reload, and `btcagent config check` prints them.
func (c *Config) Warnings() []string {
	if c.HTTPListen == "" {
		return nil
	}
	var out []string
	loopback := IsLoopbackListen(c.HTTPListen)
	switch {
	case c.HTTPToken == "" && !loopback:
		out = append(out, fmt.Sprintf("http_listen %q is not a loopback address and http_token is empty: anyone who can reach the port can read miner and pool details", c.HTTPListen))
	case c.HTTPToken != "" && len(c.HTTPToken) < MinPublicTokenLen:
		out = append(out, fmt.Sprintf("http_token has %d characters; use at least %d random ones (openssl rand -hex 16), which will be required if http_listen leaves loopback", len(c.HTTPToken), MinPublicTokenLen))
	}
	return out
}
