package reliability

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/api"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// Upstream proxies against real proxy servers from Debian packages
// (microsocks for SOCKS5, tinyproxy for HTTP CONNECT; .ci/run installs
// both). Each test starts its own instances on free loopback ports, with
// credentials, and has each proxy bind its outgoing connections to an
// address of its own (SOCKS5 127.0.0.3, HTTP 127.0.0.2), so the pool can
// tell from a connection's source address which route it came by: a direct
// connection arrives from 127.0.0.1.

const (
	socksBind = "127.0.0.3"
	httpBind  = "127.0.0.2"
)

// realProxy is one proxy server process started by a test.
type realProxy struct {
	addr string // host:port it listens on
	url  string // with credentials
	bind string // source address of its connections to the pool
	cmd  *exec.Cmd
	out  *lockedBuffer

	stopOnce sync.Once
	stopFn   func()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func proxyBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (Debian package %s; .ci/run installs it), so the real-proxy test cannot run", name, pkg)
	}
	return p
}

// startMicrosocks runs a SOCKS5 server requiring user/pass.
func startMicrosocks(t *testing.T, user, pass string) *realProxy {
	t.Helper()
	bin := proxyBinary(t, "microsocks", "microsocks")
	port := testenv.Port(t)
	testenv.Release(port) // an external process binds it: the short window of a released port is unavoidable
	p := &realProxy{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bind: socksBind, out: &lockedBuffer{}}
	p.url = "socks5://" + user + ":" + pass + "@" + p.addr
	p.cmd = exec.Command(bin, "-i", "127.0.0.1", "-p", strconv.Itoa(port), "-u", user, "-P", pass, "-b", socksBind)
	p.start(t)
	return p
}

// startTinyproxy runs an HTTP CONNECT proxy requiring Basic auth, with its
// own config file.
func startTinyproxy(t *testing.T, user, pass string) *realProxy {
	t.Helper()
	bin := proxyBinary(t, "tinyproxy", "tinyproxy")
	dir := t.TempDir()
	port := testenv.Port(t)
	testenv.Release(port) // an external process binds it: the short window of a released port is unavoidable
	conf := fmt.Sprintf(`Port %d
Listen 127.0.0.1
Bind %s
Timeout 600
MaxClients 100
Allow 127.0.0.1
BasicAuth %s %s
LogLevel Info
LogFile "%s"
PidFile "%s"
DisableViaHeader Yes
`, port, httpBind, user, pass, filepath.Join(dir, "tinyproxy.log"), filepath.Join(dir, "tinyproxy.pid"))
	path := filepath.Join(dir, "tinyproxy.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &realProxy{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), bind: httpBind, out: &lockedBuffer{}}
	p.url = "http://" + user + ":" + pass + "@" + p.addr
	p.cmd = exec.Command(bin, "-d", "-c", path)
	p.start(t)
	return p
}

func (p *realProxy) start(t *testing.T) {
	t.Helper()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(exited) }()
	stop := func() {
		p.stopOnce.Do(func() { _ = p.cmd.Process.Kill() })
		<-exited
	}
	p.stopFn = stop
	t.Cleanup(stop)
	// Ready when it accepts a connection: it has no other signal.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case <-exited:
			t.Fatalf("%s exited at start: %s", p.cmd.Path, p.out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v\n%s", p.cmd.Path, p.addr, err, p.out.String())
		}
	}
}

// Stop kills the proxy process (the test started it) and waits for it.
func (p *realProxy) Stop() { p.stopFn() }

// poolRemotes are the source hosts of the pool's connections, open and
// recently closed.
func poolRemotes(p *poolsim.Pool) (open, closed []string) {
	st := p.Stats()
	for _, c := range st.Conns {
		open = append(open, hostOf(c.Remote))
	}
	for _, c := range st.Closed {
		closed = append(closed, hostOf(c.Remote))
	}
	return open, closed
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func allFrom(hosts []string, want string) bool {
	for _, h := range hosts {
		if h != want {
			return false
		}
	}
	return len(hosts) > 0
}

// proxiedConfig is a one-listener config whose pool is reached as given.
func proxiedConfig(t *testing.T, pool config.Pool, conns int) *config.Config {
	cfg := baseConfig(t)
	cfg.Listen = nil
	addListener(t, cfg, "farm", conns, pool)
	return cfg
}

// noSecret fails the test if any log line holds one of the secrets.
func noSecret(t *testing.T, logs *logCapture, secrets ...string) {
	t.Helper()
	for _, e := range logs.Entries() {
		for _, s := range secrets {
			if strings.Contains(e.Text, s) {
				t.Errorf("proxy credential %q logged: %s", s, e.Text)
			}
		}
	}
}

// Every upstream protocol, with and without TLS to the pool, through each
// real proxy: the link comes up, shares are accepted, every connection the
// pool (or its TLS front) saw came from the proxy's address, and the ready
// line names the route with the credentials hidden.
func TestRealProxiesCarryEveryProtocol(t *testing.T) {
	const socksPW, httpPW = "s0cks-pw-71c2", "http-pw-9e0d"
	socks := startMicrosocks(t, "farm", socksPW)
	tp := startTinyproxy(t, "farm", httpPW)
	for _, tc := range []struct {
		px    *realProxy
		proto string
		tls   bool
	}{
		{socks, config.ProtocolAgent, false},
		{socks, config.ProtocolStratum, false},
		{socks, config.ProtocolStratumPerMiner, false},
		{socks, config.ProtocolAgent, true},
		{tp, config.ProtocolAgent, false},
		{tp, config.ProtocolStratum, false},
		{tp, config.ProtocolStratum, true},
	} {
		scheme, _, _ := strings.Cut(tc.px.url, "://")
		t.Run(fmt.Sprintf("%s-%s-tls=%v", scheme, tc.proto, tc.tls), func(t *testing.T) {
			ctx := ctxFor(t, 60*time.Second)
			pool := testenv.Pool(t, poolsim.Config{})
			target := pool.Addr()
			var front *proxy
			if tc.tls {
				front = startProxy(t, pool.Addr(), selfSignedTLS(t))
				target = front.Addr()
			}
			pc := poolAt(t, target)
			pc.Protocol, pc.TLS, pc.TLSSkipVerify = tc.proto, tc.tls, tc.tls
			pc.Proxy = []string{tc.px.url}
			cfg := proxiedConfig(t, pc, 1)
			a, logs := startAgent(t, cfg, agent.Options{}, "farm")
			sim := farm(t, testenv.Addr(a), 2)
			poolAccepts(t, ctx, pool, 4, "through the proxy")
			moreAccepted(t, ctx, sim, 4, "through the proxy")

			if tc.tls {
				if got := front.Remotes(); !allFrom(got, tc.px.bind) {
					t.Errorf("the pool's TLS front saw connections from %v, want all from the proxy's %s", got, tc.px.bind)
				}
			} else if open, closed := poolRemotes(pool); !allFrom(append(open, closed...), tc.px.bind) {
				t.Errorf("the pool saw connections from %v (closed %v), want all from the proxy's %s", open, closed, tc.px.bind)
			}
			ready, err := logs.WaitMsg(ctx, "pool link ready")
			if err != nil {
				t.Fatal(err)
			}
			wantVia := scheme + "://***@" + tc.px.addr
			if !strings.Contains(ready.Text, "via=\""+wantVia+"\"") {
				t.Errorf("ready line does not name the route %s: %s", wantVia, ready.Text)
			}
			a.Stop()
			noSecret(t, logs, socksPW, httpPW)
		})
	}
}

// slowRelay forwards to a proxy, but only after delay: a slow path to it.
// A client that closes before then is dropped without ever reaching the
// proxy, and counted in Abandoned.
type slowRelay struct {
	ln        net.Listener
	target    string
	delay     time.Duration
	accepted  atomic.Int32
	abandoned chan struct{}
}

func startSlowRelay(t *testing.T, target string, delay time.Duration) *slowRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &slowRelay{ln: ln, target: target, delay: delay, abandoned: make(chan struct{}, 64)}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() { close(done); _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.accepted.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.serve(c, done)
			}()
		}
	}()
	return r
}

func (r *slowRelay) serve(c net.Conn, done <-chan struct{}) {
	defer c.Close()
	// Read what the client sends while waiting, so that its close is seen.
	type chunk struct {
		b   []byte
		err error
	}
	in := make(chan chunk, 16)
	go func() {
		for {
			b := make([]byte, 4096)
			n, err := c.Read(b)
			in <- chunk{b[:n], err}
			if err != nil {
				return
			}
		}
	}()
	var early []byte
	timer := time.NewTimer(r.delay)
	defer timer.Stop()
	for waiting := true; waiting; {
		select {
		case ch := <-in:
			early = append(early, ch.b...)
			if ch.err != nil {
				r.abandoned <- struct{}{}
				return
			}
		case <-timer.C:
			waiting = false
		case <-done:
			return
		}
	}
	up, err := net.Dial("tcp", r.target)
	if err != nil {
		return
	}
	defer up.Close()
	if _, err := up.Write(early); err != nil {
		return
	}
	go func() {
		for ch := range in {
			if len(ch.b) > 0 {
				if _, err := up.Write(ch.b); err != nil {
					return
				}
			}
			if ch.err != nil {
				_ = up.Close()
				return
			}
		}
	}()
	buf := make([]byte, 32*1024)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Two proxies, the first in the list slow: both are tried at once, every
// link goes through the fast one, and the slow one's attempts are
// abandoned before it ever reaches the pool.
func TestRealProxyFastestWins(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	socks := startMicrosocks(t, "farm", "fast-pw-1")
	tp := startTinyproxy(t, "farm", "slow-pw-2")
	relay := startSlowRelay(t, tp.addr, 3*time.Second)
	slowURL := "http://farm:slow-pw-2@" + relay.ln.Addr().String()

	pool := testenv.Pool(t, poolsim.Config{})
	pc := poolAt(t, pool.Addr())
	pc.Proxy = []string{slowURL, socks.url}
	cfg := proxiedConfig(t, pc, 2)
	cfg.Upstream.DialTimeout = 10 * time.Second
	a, logs := startAgent(t, cfg, agent.Options{}, "farm")
	if err := eventually(ctx, func() bool { return readyLinks(t, listener(a, "farm")) == 2 }); err != nil {
		t.Fatalf("two links never came up: %v\n%s", err, logs.Dump())
	}
	sim := farm(t, testenv.Addr(a), 2)
	moreAccepted(t, ctx, sim, 4, "through the fast proxy")
	for range 2 {
		select {
		case <-relay.abandoned:
		case <-ctx.Done():
			t.Fatalf("the slow proxy's attempts were not abandoned (accepted %d)", relay.accepted.Load())
		}
	}
	open, closed := poolRemotes(pool)
	if !allFrom(append(open, closed...), socksBind) || len(open) != 2 {
		t.Errorf("pool connections from %v (closed %v), want 2 open, all from the fast proxy's %s", open, closed, socksBind)
	}
	for _, e := range logs.Entries() {
		if strings.Contains(e.Msg, "pool link ready") && !strings.Contains(e.Text, "via=\"socks5://***@"+socks.addr+"\"") {
			t.Errorf("a link came up another way: %s", e.Text)
		}
	}
}

// A proxy that goes down while carrying the link: with the direct fallback
// on, the link comes back directly (the pool sees 127.0.0.1) and the dead
// proxy is named in one warning.
func TestRealProxyDownFallsBackDirect(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	socks := startMicrosocks(t, "farm", "down-pw-3")
	pool := testenv.Pool(t, poolsim.Config{})
	pc := poolAt(t, pool.Addr())
	pc.Proxy = []string{socks.url}
	fallback := true
	pc.ProxyFallbackDirect = &fallback
	cfg := proxiedConfig(t, pc, 1)
	a, logs := startAgent(t, cfg, agent.Options{}, "farm")
	sim := farm(t, testenv.Addr(a), 2)
	moreAccepted(t, ctx, sim, 2, "through the proxy")
	if open, _ := poolRemotes(pool); !allFrom(open, socksBind) {
		t.Fatalf("before the proxy went down the pool saw %v, want %s", open, socksBind)
	}

	socks.Stop()
	if _, err := logs.WaitMsg(ctx, "proxy failed; the pool was reached another way"); err != nil {
		t.Fatalf("%v\n%s", err, logs.Dump())
	}
	if err := eventually(ctx, func() bool {
		open, _ := poolRemotes(pool)
		return allFrom(open, "127.0.0.1")
	}); err != nil {
		open, closed := poolRemotes(pool)
		t.Fatalf("no direct link after the proxy went down: open %v closed %v\n%s", open, closed, logs.Dump())
	}
	moreAccepted(t, ctx, sim, 4, "after falling back to a direct link")
	ready := 0
	for _, e := range logs.Entries() {
		if strings.Contains(e.Msg, "pool link ready") && strings.Contains(e.Text, `via=direct`) {
			ready++
		}
	}
	if ready == 0 {
		t.Errorf("no ready line says via=direct:\n%s", logs.Dump())
	}
	noSecret(t, logs, "down-pw-3")
}

// Wrong credentials at either proxy: the link never comes up, one clear
// log line says so however often the agent retries, and the password is
// in no log line, API answer or metric.
func TestRealProxyWrongCredentials(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	const badSocks, badHTTP = "wr0ng-socks-4a1", "wr0ng-http-8b2"
	socks := startMicrosocks(t, "farm", "right-pw-5")
	tp := startTinyproxy(t, "farm", "right-pw-6")
	pool := testenv.Pool(t, poolsim.Config{})

	cfg := baseConfig(t)
	cfg.Listen = nil
	p1 := poolAt(t, pool.Addr())
	p1.Proxy = []string{"socks5://farm:" + badSocks + "@" + socks.addr}
	p2 := poolAt(t, pool.Addr())
	p2.Proxy = []string{"http://farm:" + badHTTP + "@" + tp.addr}
	addListener(t, cfg, "socks", 1, p1)
	addListener(t, cfg, "http", 1, p2)
	a, logs := startAgent(t, cfg, agent.Options{})
	// Several attempts each (the backoff is 50..400 ms here).
	for _, name := range []string{"socks", "http"} {
		l := listener(a, name)
		if err := eventually(ctx, func() bool { return l.Stats.Reconnects.Load() >= 5 }); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, logs.Dump())
		}
		if readyLinks(t, l) != 0 {
			t.Errorf("%s: a link came up with wrong proxy credentials", name)
		}
	}
	for _, name := range []string{"socks", "http"} {
		n := 0
		for _, e := range logs.Entries() {
			if strings.Contains(e.Text, "listener="+name) && strings.Contains(e.Msg, "proxy refused the credentials") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d log lines about the refused credentials, want exactly 1\n%s", name, n, logs.Dump())
		}
	}
	if st := pool.Stats(); st.Totals.ConnsAccepted != 0 {
		t.Errorf("the pool saw %d connections; a refused proxy must not reach it", st.Totals.ConnsAccepted)
	}

	srv := api.New(api.Options{Source: a, Log: logrus.New()})
	for _, path := range []string{"/api/v1/upstreams", "/api/v1/summary", "/metrics"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = "127.0.0.1" // httptest's example.com would be refused as a foreign Host
		srv.Handler().ServeHTTP(rec, req)
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d", path, rec.Code)
		}
		for _, s := range []string{badSocks, badHTTP} {
			if strings.Contains(body, s) {
				t.Errorf("%s shows the proxy password %q", path, s)
			}
		}
	}
	a.Stop()
	noSecret(t, logs, badSocks, badHTTP)
}

// proxy = ["system"] takes the proxy from ALL_PROXY (credentials included)
// when the listener starts.
func TestRealProxyFromEnvironment(t *testing.T) {
	ctx := ctxFor(t, 60*time.Second)
	socks := startMicrosocks(t, "farm", "env-pw-7")
	t.Setenv("ALL_PROXY", socks.url)
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := baseConfig(t)
	cfg.Listen = nil
	cfg.Upstream.Proxy = []string{"system"}
	addListener(t, cfg, "farm", 1, poolAt(t, pool.Addr()))
	a, logs := startAgent(t, cfg, agent.Options{}, "farm")
	sim := farm(t, testenv.Addr(a), 1)
	moreAccepted(t, ctx, sim, 2, "through the environment's proxy")
	if open, closed := poolRemotes(pool); !allFrom(append(open, closed...), socksBind) {
		t.Errorf("the pool saw connections from %v (closed %v), want all from %s", open, closed, socksBind)
	}
	a.Stop()
	noSecret(t, logs, "env-pw-7")
}
