package proxydial

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// Plan is how one pool is reached.
type Plan struct {
	Proxies []*url.URL // tried at once; first complete tunnel wins
	// RaceDirect adds a direct connection to the race.
	RaceDirect bool
	// FallbackDirect dials directly once every proxy has failed (not needed
	// when RaceDirect already raced one).
	FallbackDirect bool
	// ProxyTLS is the TLS configuration for https:// proxies; nil verifies
	// the proxy's certificate against the system roots. ServerName is set
	// from the proxy URL when empty.
	ProxyTLS *tls.Config
	// Log, if set, hears about proxies that failed while another route
	// won (a failure of every route is returned instead).
	Log logrus.FieldLogger
}

// NewPlan builds a plan from proxy list entries: URLs, or System for the
// environment's proxy (skipped when the environment names none). It returns
// nil when no proxy is left, which Dial treats as a direct connection.
func NewPlan(entries []string, raceDirect, fallbackDirect bool, getenv func(string) string) (*Plan, error) {
	p := &Plan{RaceDirect: raceDirect, FallbackDirect: fallbackDirect}
	for _, e := range entries {
		if e == System {
			if e = FromEnv(getenv); e == "" {
				continue
			}
		}
		u, err := ParseURL(e)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(p.Proxies, func(v *url.URL) bool { return v.String() == u.String() }) {
			p.Proxies = append(p.Proxies, u)
		}
	}
	if len(p.Proxies) == 0 {
		return nil, nil
	}
	return p, nil
}

// Active reports whether the plan sends anything through a proxy.
func (p *Plan) Active() bool { return p != nil && len(p.Proxies) > 0 }

// String describes the plan with credentials hidden.
func (p *Plan) String() string {
	if !p.Active() {
		return "direct"
	}
	parts := make([]string, 0, len(p.Proxies)+1)
	for _, u := range p.Proxies {
		parts = append(parts, Redact(u))
	}
	switch {
	case p.RaceDirect:
		parts = append(parts, "direct (raced)")
	case p.FallbackDirect:
		parts = append(parts, "direct (fallback)")
	}
	return strings.Join(parts, ", ")
}

// Attempt is one route that failed.
type Attempt struct {
	Via string // Redact of the proxy, or "direct"
	Err error
}

// Error is returned when no route reached the pool.
type Error struct {
	Attempts []Attempt // in the plan's order, the fallback last
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = "via " + a.Via + ": " + a.Err.Error()
	}
	return strings.Join(parts, "; ")
}

func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Attempts))
	for i, a := range e.Attempts {
		out[i] = a.Err
	}
	return out
}

// Summary is a short, stable description of the failure, for grouping
// repeated failures in logs.
func (e *Error) Summary() string {
	direct := slices.ContainsFunc(e.Attempts, func(a Attempt) bool { return a.Via == "direct" })
	switch {
	case errors.Is(e, ErrAuth):
		return "proxy refused the credentials"
	case direct:
		return "every proxy and the direct connection failed"
	}
	return "every proxy failed"
}

// Conn is a pool connection opened by a Plan; it remembers the route.
type Conn struct {
	net.Conn
	via string
}

// Via returns the route c was opened through (Redact of the proxy, or
// "direct"), looking inside TLS; "" for a connection not opened by a Plan.
func Via(c net.Conn) string {
	for {
		switch x := c.(type) {
		case *Conn:
			return x.via
		case *tls.Conn:
			c = x.NetConn()
		default:
			return ""
		}
	}
}

type result struct {
	idx  int
	conn net.Conn
	err  error
}

// Dial connects to addr ("host:port") following the plan, and runs the TLS
// handshake with the pool inside the tunnel when tlsCfg is set. Each route
// has timeout for its whole tunnel; a fallback direct dial gets its own.
func (p *Plan) Dial(ctx context.Context, addr string, timeout time.Duration, tlsCfg *tls.Config) (net.Conn, error) {
	if !p.Active() {
		return p.attempt(ctx, nil, addr, timeout, tlsCfg)
	}
	routes := slices.Clone(p.Proxies)
	if p.RaceDirect {
		routes = append(routes, nil)
	}
	rctx, cancel := context.WithCancel(ctx)
	results := make(chan result, len(routes))
	for i, u := range routes {
		go func() {
			c, err := p.attempt(rctx, u, addr, timeout, tlsCfg)
			results <- result{idx: i, conn: c, err: err}
		}()
	}
	var fails []result
	for n := range len(routes) {
		r := <-results
		if r.err != nil {
			fails = append(fails, r)
			continue
		}
		cancel()
		// Late finishers are closed as they come in; cancel makes them quick.
		go func(left int) {
			for range left {
				if l := <-results; l.conn != nil {
					_ = l.conn.Close()
				}
			}
		}(len(routes) - n - 1)
		p.logLosers(routes, fails, addr, Redact(routes[r.idx]))
		return r.conn, nil
	}
	cancel()
	slices.SortFunc(fails, func(a, b result) int { return a.idx - b.idx })
	e := &Error{}
	for _, f := range fails {
		e.Attempts = append(e.Attempts, Attempt{Via: Redact(routes[f.idx]), Err: f.err})
	}
	if p.FallbackDirect && !p.RaceDirect {
		c, err := p.attempt(ctx, nil, addr, timeout, tlsCfg)
		if err == nil {
			p.logLosers(routes, fails, addr, "direct")
			return c, nil
		}
		e.Attempts = append(e.Attempts, Attempt{Via: "direct", Err: err})
	}
	return nil, e
}

func (p *Plan) logLosers(routes []*url.URL, fails []result, addr, winner string) {
	if p.Log == nil {
		return
	}
	for _, f := range fails {
		p.Log.WithFields(logrus.Fields{"pool": addr, "proxy": Redact(routes[f.idx]), "via": winner, "error": f.err.Error()}).
			Warn("proxy failed; the pool was reached another way")
	}
}

// attempt opens one route: TCP to the proxy (or the pool when u is nil),
// the proxy handshake, and TLS with the pool when tlsCfg is set.
func (p *Plan) attempt(ctx context.Context, u *url.URL, addr string, timeout time.Duration, tlsCfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := addr
	if u != nil {
		target = proxyAddr(u)
	}
	d := net.Dialer{KeepAlive: 60 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		if u != nil {
			return nil, fmt.Errorf("connect to proxy: %w", err)
		}
		return nil, err
	}
	if tc, ok := raw.(*net.TCPConn); ok {
		// Shares are small and latency matters more than segment count.
		_ = tc.SetNoDelay(true)
	}
	// The proxy handshakes below are plain blocking I/O: a context that
	// ends (timeout, or another route won) interrupts them through the
	// deadline.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	conn, err := p.tunnel(ctx, raw, u, addr, tlsCfg)
	if !stop() && err == nil {
		err = fmt.Errorf("route abandoned: %w", context.Cause(ctx))
	}
	if err != nil {
		_ = raw.Close()
		if ctx.Err() != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (%v)", err, context.Cause(ctx))
		}
		return nil, err
	}
	return conn, nil
}

func (p *Plan) tunnel(ctx context.Context, raw net.Conn, u *url.URL, addr string, tlsCfg *tls.Config) (net.Conn, error) {
	conn := raw
	if u != nil {
		if u.Scheme == "https" {
			cfg := &tls.Config{MinVersion: tls.VersionTLS12}
			if p.ProxyTLS != nil {
				cfg = p.ProxyTLS.Clone()
			}
			if cfg.ServerName == "" {
				cfg.ServerName = u.Hostname()
			}
			tc := tls.Client(raw, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("TLS handshake with the proxy: %w", err)
			}
			conn = tc
		}
		var err error
		switch u.Scheme {
		case "socks5", "socks5h":
			err = socks5Connect(conn, u, addr)
		default:
			conn, err = httpConnect(conn, u, addr)
		}
		if err != nil {
			return nil, err
		}
	}
	var out net.Conn = &Conn{Conn: conn, via: Redact(u)}
	if tlsCfg != nil {
		tc := tls.Client(out, tlsCfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake with the pool: %w", err)
		}
		out = tc
	}
	return out, nil
}
