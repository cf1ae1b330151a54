package api

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// A web page can make the operator's browser resolve the page's own name to
// 127.0.0.1 (DNS rebinding) and then read this server's answers as its own.
// The browser still sends the page's name in Host, so the server answers
// only to Host values that name it: loopback names and addresses, the host
// of http_listen, the address the request arrived at, and the names the
// operator listed in http_allowed_hosts. An IP-literal Host cannot come from
// a rebinding page (its origin would be that IP), so the local address is
// safe to accept. Ports are not compared: the attack is about names.

// hostPolicy is the set of extra names, normalised by hostName.
type hostPolicy map[string]bool

// SetAllowedHosts replaces the names from http_allowed_hosts. Safe to call
// while serving.
func (s *Server) SetAllowedHosts(hosts []string) {
	s.hostMu.Lock()
	defer s.hostMu.Unlock()
	s.allowedHosts = append([]string(nil), hosts...)
	s.rebuildHosts()
}

// rebuildHosts publishes allowedHosts plus the listen host; hostMu is held.
func (s *Server) rebuildHosts() {
	p := hostPolicy{}
	for _, h := range s.allowedHosts {
		if n := hostName(h); n != "" {
			p[n] = true
		}
	}
	if n := hostName(s.listenHost); n != "" {
		if ip, err := netip.ParseAddr(n); err != nil || !ip.IsUnspecified() {
			p[n] = true
		}
	}
	s.hosts.Store(&p)
}

// hostName normalises a Host header or a configured name: port and IPv6
// brackets removed, lower case, no trailing dot.
func hostName(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

func (s *Server) hostAllowed(r *http.Request) bool {
	h := hostName(r.Host)
	if h == "" {
		return false
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true // RFC 6761: always loopback, nobody can own such a name
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		ip = ip.Unmap()
		if ip.IsLoopback() {
			return true
		}
		if local, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
			if la, ok := netip.AddrFromSlice(local.IP); ok && la.Unmap() == ip.WithZone("") {
				return true
			}
		}
	}
	p := s.hosts.Load()
	return p != nil && (*p)[h]
}

// misdirected answers a request for a name this server does not answer to.
func (s *Server) misdirected(w http.ResponseWriter, r *http.Request) {
	s.limiter.Warn("http-host", logrus.Fields{"remote": r.RemoteAddr, "host": codec.PrintableUA(r.Host)},
		"http: request for an unknown Host refused (a DNS-rebinding page, or a name missing from http_allowed_hosts)")
	w.Header().Set("Connection", "close")
	writeError(w, http.StatusMisdirectedRequest, "this agent does not answer to that Host name; add it to http_allowed_hosts if it is yours")
}
