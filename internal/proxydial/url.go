// Package proxydial opens pool connections through upstream proxies: SOCKS5
// (RFC 1928, with RFC 1929 username/password) and HTTP CONNECT, reached
// over plain TCP (http://) or TLS (https://).
//
// A Plan lists the proxies of one pool and whether a direct connection is
// raced alongside them or tried once they have all failed. Plan.Dial starts
// every candidate at once and keeps the first whose tunnel is complete: TCP
// to the proxy, the proxy's own handshake (SOCKS negotiation or CONNECT
// answered 2xx, which means the proxy has reached the pool) and, when the
// pool is dialed with TLS, the TLS handshake with the pool inside the
// tunnel. The others are closed. The pool's login (subscribe, authorize) is
// not part of the race: it is protocol specific and runs once, on the
// winner, as for a direct connection.
//
// Proxy URLs may carry credentials. They are printed only through Redact,
// which hides user and password, in errors and in log lines alike.
package proxydial

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Schemes accepted in proxy URLs. socks5h is accepted as a synonym of
// socks5: host names are always sent to the proxy to resolve.
var Schemes = []string{"socks5", "socks5h", "http", "https"}

// System is the proxy list entry that stands for the proxy named in the
// environment (see FromEnv).
const System = "system"

// ParseURL checks a proxy URL and returns it parsed. Errors never quote the
// password.
func ParseURL(s string) (*url.URL, error) {
	if strings.TrimSpace(s) != s || s == "" {
		return nil, errors.New("proxy URL must not be empty or have spaces around it")
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return nil, fmt.Errorf("proxy URL %q has no scheme; write socks5://host:port or http://host:port", hideUserinfo(s))
	}
	switch strings.ToLower(scheme) {
	case "socks5", "socks5h", "http", "https":
	case "socks4", "socks4a":
		return nil, fmt.Errorf("proxy URL %q: SOCKS4 is not supported; use socks5://", hideUserinfo(s))
	default:
		return nil, fmt.Errorf("proxy URL %q: scheme %q is not one of %s", hideUserinfo(s), scheme, strings.Join(Schemes, ", "))
	}
	u, err := url.Parse(s)
	if err != nil {
		// url's own message quotes the input, password included.
		return nil, fmt.Errorf("proxy URL %q is malformed", hideUserinfo(scheme+"://"+rest))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	shown := Redact(u)
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("proxy URL %q has no host", shown)
	}
	port := u.Port()
	if port == "" {
		return nil, fmt.Errorf("proxy URL %q has no port", shown)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("proxy URL %q: port %s is out of range 1..65535", shown, port)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("proxy URL %q must not have a path, query or fragment", shown)
	}
	if u.User != nil && strings.HasPrefix(u.Scheme, "socks5") {
		pw, _ := u.User.Password()
		if len(u.User.Username()) > 255 || len(pw) > 255 {
			return nil, fmt.Errorf("proxy URL %q: SOCKS5 user and password are limited to 255 bytes each", shown)
		}
	}
	u.Path = ""
	return u, nil
}

// Redact prints u with its user and password replaced by "***", so that it
// can go into logs, errors and the API.
func Redact(u *url.URL) string {
	if u == nil {
		return "direct"
	}
	s := u.Scheme + "://"
	if u.User != nil {
		s += "***@"
	}
	return s + u.Host
}

// hideUserinfo masks what sits between "://" and the last "@" of a string
// that did not parse as a URL.
func hideUserinfo(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "", s
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "***" + rest[at:]
	}
	if ok {
		return scheme + "://" + rest
	}
	return rest
}

// envVars are read in this order by FromEnv, as curl and most tools do.
var envVars = []string{"ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"}

// FromEnv returns the proxy named by ALL_PROXY, HTTPS_PROXY or HTTP_PROXY
// (upper or lower case, in that order), or "" when none is set. A value
// without a scheme is taken as an HTTP proxy, as curl does.
func FromEnv(getenv func(string) string) string {
	for _, k := range envVars {
		if v := strings.TrimSpace(getenv(k)); v != "" {
			if !strings.Contains(v, "://") {
				v = "http://" + v
			}
			return v
		}
	}
	return ""
}

// proxyAddr is where to open the TCP connection to the proxy.
func proxyAddr(u *url.URL) string {
	return net.JoinHostPort(u.Hostname(), u.Port())
}
