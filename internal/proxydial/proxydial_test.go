package proxydial

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

func mustPlan(t *testing.T, entries []string, race, fallback bool) *Plan {
	t.Helper()
	p, err := NewPlan(entries, race, fallback, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{in: "socks5://127.0.0.1:1080", want: "socks5://127.0.0.1:1080"},
		{in: "SOCKS5H://user:pw@proxy.example:1080", want: "socks5h://***@proxy.example:1080"},
		{in: "http://[::1]:3128/", want: "http://[::1]:3128"},
		{in: "https://u@p.example:443", want: "https://***@p.example:443"},
		{in: "socks5://u:secret@h", err: `proxy URL "socks5://***@h" has no port`},
		{in: "socks4://h:1080", err: "SOCKS4 is not supported"},
		{in: "ftp://h:21", err: `scheme "ftp" is not one of`},
		{in: "h:3128", err: "has no scheme"},
		{in: "http://h:0", err: "out of range"},
		{in: "http://h:99999", err: "out of range"},
		{in: "http://:3128", err: "has no host"},
		{in: "http://h:3128?x=1", err: "must not have a path"},
		{in: " http://h:3128", err: "spaces"},
		{in: "http://u:sec ret@h:3128", err: `"http://***@h:3128" is malformed`},
		{in: "socks5://" + strings.Repeat("u", 256) + ":p@h:1", err: "255 bytes"},
	} {
		u, err := ParseURL(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && (strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "sec ret")) {
				t.Errorf("%q: error shows the password: %v", tc.in, err)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case Redact(u) != tc.want:
			t.Errorf("%q: Redact = %q, want %q", tc.in, Redact(u), tc.want)
		}
	}
}

func TestFromEnvOrder(t *testing.T) {
	env := map[string]string{"HTTP_PROXY": "http://h:1", "https_proxy": "10.0.0.1:3128"}
	if got := FromEnv(func(k string) string { return env[k] }); got != "http://10.0.0.1:3128" {
		t.Errorf("HTTPS_PROXY before HTTP_PROXY, scheme-less means http: got %q", got)
	}
	env["ALL_PROXY"] = "socks5://h:2"
	if got := FromEnv(func(k string) string { return env[k] }); got != "socks5://h:2" {
		t.Errorf("ALL_PROXY first: got %q", got)
	}
	p, err := NewPlan([]string{System, "socks5://h:2"}, false, false, func(k string) string { return env[k] })
	if err != nil || len(p.Proxies) != 1 {
		t.Errorf("system and the same URL must collapse to one proxy: %v %v", p, err)
	}
	if p, err := NewPlan([]string{System}, false, true, func(string) string { return "" }); p != nil || err != nil {
		t.Errorf("system without environment must mean direct: %v %v", p, err)
	}
}

// Through SOCKS5 with credentials, the pool's name is sent to the proxy
// unresolved (the agent never looks it up), and TLS to the pool runs inside.
func TestSOCKS5AuthDomainAndTLS(t *testing.T) {
	srv, cli := selfSigned(t, "pool.test")
	pool := startEchoPool(t, srv)
	_, port, _ := net.SplitHostPort(pool.Addr())
	px := startFakeProxy(t, true, "farm", "s3cret", map[string]string{"domain=pool.test": "127.0.0.1"}, nil)
	plan := mustPlan(t, []string{px.URL("socks5")}, false, false)
	c, err := plan.Dial(ctx(t), "pool.test:"+port, 5*time.Second, cli)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)
	if got := px.Asked(); len(got) != 1 || got[0] != "domain=pool.test:"+port {
		t.Errorf("proxy was asked for %q, want the unresolved name", got)
	}
	if v := Via(c); v != "socks5://***@"+px.ln.Addr().String() {
		t.Errorf("Via = %q", v)
	}
}

func TestWrongCredentials(t *testing.T) {
	for _, socks := range []bool{true, false} {
		px := startFakeProxy(t, socks, "farm", "right", nil, nil)
		u, _ := url.Parse(px.URL("http"))
		scheme := "http"
		if socks {
			scheme = "socks5"
		}
		bad := scheme + "://farm:wrong-pass@" + u.Host
		plan := mustPlan(t, []string{bad}, false, false)
		_, err := plan.Dial(ctx(t), "127.0.0.1:1", 5*time.Second, nil)
		var pe *Error
		if !errors.As(err, &pe) || !errors.Is(err, ErrAuth) || pe.Summary() != "proxy refused the credentials" {
			t.Fatalf("%s: error %v, want ErrAuth", scheme, err)
		}
		if strings.Contains(err.Error(), "wrong-pass") || strings.Contains(err.Error(), "farm") {
			t.Errorf("%s: error shows the credentials: %v", scheme, err)
		}
		// No credentials at all against a proxy that wants them.
		plan = mustPlan(t, []string{scheme + "://" + u.Host}, false, false)
		if _, err := plan.Dial(ctx(t), "127.0.0.1:1", 5*time.Second, nil); !errors.Is(err, ErrAuth) {
			t.Errorf("%s without credentials: %v, want ErrAuth", scheme, err)
		}
	}
}

// HTTP CONNECT over TLS to the proxy, Basic auth, and the pool's first
// bytes arriving in the same segment as the proxy's 200 are kept.
func TestHTTPSConnect(t *testing.T) {
	pool := startEchoPool(t, nil)
	psrv, pcli := selfSigned(t, "proxy.test")
	px := startFakeProxy(t, false, "farm", "pw", nil, psrv)
	plan := mustPlan(t, []string{px.URL("https")}, false, false)
	plan.ProxyTLS = pcli
	c, err := plan.Dial(ctx(t), pool.Addr(), 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)
	if got := px.Asked(); len(got) != 1 || got[0] != pool.Addr() {
		t.Errorf("CONNECT asked for %q", got)
	}

	// The same proxy without its CA: the proxy's certificate is checked.
	plan.ProxyTLS = nil
	if _, err := plan.Dial(ctx(t), pool.Addr(), 5*time.Second, nil); err == nil || !strings.Contains(err.Error(), "TLS handshake with the proxy") {
		t.Errorf("untrusted proxy certificate: %v", err)
	}
}

// The first complete tunnel wins; a stalled proxy's connection is closed
// as soon as the other one is through, not when the timeout ends.
func TestRaceKeepsFirstAndClosesTheOther(t *testing.T) {
	pool := startEchoPool(t, nil)
	slow := startFakeProxy(t, true, "", "", nil, nil)
	slow.stall = make(chan struct{}) // never released
	fast := startFakeProxy(t, false, "", "", nil, nil)
	// The fast proxy serves only once the slow one holds a request: on a
	// loaded machine the fast route could otherwise win before the slow one
	// had even connected, and there would be nothing to close.
	hold := make(chan struct{})
	fast.mu.Lock()
	fast.hold = hold
	fast.mu.Unlock()
	go func() {
		defer close(hold)
		deadline := time.Now().Add(10 * time.Second)
		for len(slow.Asked()) == 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // polling a fake's state, bounded
		}
	}()
	plan := mustPlan(t, []string{slow.URL("socks5"), fast.URL("http")}, false, false)
	start := time.Now()
	c, err := plan.Dial(ctx(t), pool.Addr(), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c)
	if v := Via(c); v != fast.URL("http") {
		t.Errorf("won via %q, want the fast proxy", v)
	}
	select {
	case <-slow.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the stalled proxy's connection was not closed after the race was won")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("race took %v", d)
	}
}

func TestDirectFallbackAndRace(t *testing.T) {
	pool := startEchoPool(t, nil)
	dead := "http://" + closedAddr(t)

	// Fallback: every proxy failed, then direct.
	c, err := mustPlan(t, []string{dead}, false, true).Dial(ctx(t), pool.Addr(), 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	if Via(c) != "direct" {
		t.Errorf("Via = %q, want direct", Via(c))
	}
	c.Close()

	// Without fallback the failure names every route and is not an auth error.
	_, err = mustPlan(t, []string{dead, "socks5://" + closedAddr(t)}, false, false).Dial(ctx(t), pool.Addr(), 5*time.Second, nil)
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Attempts) != 2 || pe.Summary() != "every proxy failed" || errors.Is(err, ErrAuth) {
		t.Fatalf("error %v", err)
	}
	if !strings.HasPrefix(err.Error(), "via "+dead+": connect to proxy:") {
		t.Errorf("error text %q", err)
	}

	// Raced direct beats a stalled proxy.
	slow := startFakeProxy(t, true, "", "", nil, nil)
	slow.stall = make(chan struct{})
	c, err = mustPlan(t, []string{slow.URL("socks5")}, true, false).Dial(ctx(t), pool.Addr(), 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, c)
	if Via(c) != "direct" {
		t.Errorf("Via = %q, want direct", Via(c))
	}
	c.Close()

	// Fallback and a failing pool: the summary says both failed.
	_, err = mustPlan(t, []string{dead}, false, true).Dial(ctx(t), closedAddr(t), 5*time.Second, nil)
	if !errors.As(err, &pe) || pe.Summary() != "every proxy and the direct connection failed" {
		t.Errorf("error %v", err)
	}
}

func TestTimeoutInterruptsAStalledProxy(t *testing.T) {
	slow := startFakeProxy(t, false, "", "", nil, nil)
	slow.stall = make(chan struct{})
	start := time.Now()
	_, err := mustPlan(t, []string{slow.URL("http")}, false, false).Dial(ctx(t), "127.0.0.1:1", 300*time.Millisecond, nil)
	if err == nil {
		t.Fatal("a proxy that never answers must fail the dial")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("dial took %v with a 300ms timeout", d)
	}
}

// closedAddr is a loopback address nobody listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	_ = ln.Close()
	return a
}

// Bytes the pool sent right behind the proxy's 200, read ahead with the
// reply, reach the caller first.
func TestConnectKeepsBytesReadAhead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1024)
		_, _ = c.Read(buf) // the CONNECT request
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n\r\nearly line\n"))
		_, _ = c.Read(buf) // wait for the client to close
	}()
	c, err := mustPlan(t, []string{"http://" + ln.Addr().String()}, false, false).Dial(ctx(t), "pool.test:1", 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("early line\n"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "early line\n" {
		t.Fatalf("read %q %v", got, err)
	}
}
