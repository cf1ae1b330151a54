package reliability

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// minerFaultAgent starts a pool, an agent with tight miner limits and a
// healthy farm on it.
func minerFaultAgent(t *testing.T, tune func(*config.Config), opts agent.Options, healthy int) (*poolsim.Pool, *agent.Agent, *logCapture, *minersim.Sim) {
	t.Helper()
	pc := poolsim.Config{}
	probe := config.Default()
	probe.Miner.MaxRequestsPerSec = 2000 // as baseConfig
	if tune != nil {
		tune(probe)
	}
	if probe.Miner.MaxRequestsPerSec < 100 {
		// A rate-limit test: keep each healthy CPU miner well under the
		// limit (one hash thread serves the whole farm, so more miners at a
		// higher difficulty submit less each), with or without -race.
		pc.JSONDiff = 0.000025
		healthy = max(healthy, 16)
	}
	pool := testenv.Pool(t, pc)
	cfg := baseConfig(t, pool.Addr())
	cfg.Miner.MaxLineBytes = 1024
	cfg.Miner.LoginTimeout = 2 * time.Second
	if tune != nil {
		tune(cfg)
	}
	a, logs := startAgent(t, cfg, opts, cfg.Listen[0].Name)
	var sim *minersim.Sim
	if healthy > 0 {
		sim = farm(t, testenv.Addr(a), healthy)
		moreAccepted(t, ctxFor(t, 60*time.Second), sim, int64(min(2*healthy, 8)), "before the bad miners")
	}
	return pool, a, logs, sim
}

// readUntilClosed reads and discards until the agent closes the
// connection; it returns what was read and how long the close took.
func readUntilClosed(c net.Conn, limit time.Duration) ([]byte, time.Duration, error) {
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	var out bytes.Buffer
	_, err := io.Copy(&out, c)
	took := time.Since(start)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		return out.Bytes(), took, err // a timeout: still open
	}
	return out.Bytes(), took, nil
}

func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clientHello returns the first flight of a real TLS client, with any
// newline byte changed, so that it cannot end a line by chance.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		_ = tls.Client(a, &tls.Config{ServerName: "pool.example", InsecureSkipVerify: true}).Handshake()
		_ = a.Close()
	}()
	buf := make([]byte, 4096)
	_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := b.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	return bytes.ReplaceAll(buf[:n], []byte{'\n'}, []byte{'\v'})
}

// Bad input from miners, each on its own connection while a healthy farm
// keeps mining: whatever a broken or hostile client sends gets an error
// reply or a prompt close, never a hang, a crash or a stall for the others.
func TestBadMinerInput(t *testing.T) {
	_, a, logs, sim := minerFaultAgent(t, func(cfg *config.Config) { cfg.Miner.LoginTimeout = time.Minute }, agent.Options{}, 4)
	addr := testenv.Addr(a)
	rng := rand.New(rand.NewPCG(1, 2))
	binary := make([]byte, 600)
	for i := range binary {
		binary[i] = byte(rng.IntN(256))
		if binary[i] == '\n' || binary[i] == '{' {
			binary[i] = 0xff
		}
	}
	// Closed at once (well before the one-minute login timeout).
	closes := []struct {
		name  string
		data  []byte
		reply string // expected in what the agent sent before closing ("" = nothing)
	}{
		{"line over the cap", append([]byte("{"), bytes.Repeat([]byte("a"), 1500)...), "request line too long"},
		{"line over the cap, JSON", append([]byte(`{"id":1,"method":"mining.subscribe","params":["`), bytes.Repeat([]byte("x"), 1100)...), "request line too long"},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8\r\n\r\n"), ""},
		{"TLS ClientHello", clientHello(t), ""},
		{"random binary", binary, ""},
		{"random binary with newlines", bytes.ReplaceAll(binary, []byte{0xff}, []byte{'\n'}), ""},
		{"ten malformed JSON lines", bytes.Repeat([]byte("{\"id\":1,\n"), 10), "malformed JSON"},
	}
	for _, c := range closes {
		t.Run(c.name, func(t *testing.T) {
			conn := dialRaw(t, addr)
			if _, err := conn.Write(c.data); err != nil {
				t.Fatal(err)
			}
			got, took, err := readUntilClosed(conn, 10*time.Second)
			if err != nil {
				t.Fatalf("not closed after %v (%v); got %q", took, err, got)
			}
			if c.reply == "" && len(got) != 0 {
				t.Errorf("answered non-Stratum input: %q", got)
			}
			if !strings.Contains(string(got), c.reply) {
				t.Errorf("reply %q, want it to mention %q", got, c.reply)
			}
		})
	}
	// Answered with an error; the connection stays usable.
	type exchange struct{ send, want string }
	answered := []struct {
		name  string
		login bool // log in first
		steps []exchange
	}{
		{"params as an object", false, []exchange{
			{`{"id":1,"method":"mining.authorize","params":{"user":"john.x","pass":"x"}}`, `"id":1`},
		}},
		{"numbers where strings belong", false, []exchange{
			{`{"id":1,"method":"mining.subscribe","params":[]}`, `"id":1`},
			{`{"id":2,"method":"mining.authorize","params":[123,456]}`, `"worker name must be a string"`},
		}},
		{"submit before subscribe", false, []exchange{
			{`{"id":3,"method":"mining.submit","params":["john.x","1","00000000","5f5e1000","00000000"]}`, `[25,`},
		}},
		{"submit before authorize", false, []exchange{
			{`{"id":1,"method":"mining.subscribe","params":[]}`, `"id":1`},
			{`{"id":3,"method":"mining.submit","params":["john.x","1","00000000","5f5e1000","00000000"]}`, `[24,`},
		}},
		{"submit with numbers", true, []exchange{
			{`{"id":7,"method":"mining.submit","params":["john.x",1,2,3,4]}`, `"id":7,"result":null,"error":[`},
		}},
		{"submit with malformed hex", true, []exchange{
			{`{"id":8,"method":"mining.submit","params":["john.x","JOB","0000zz00","5f5e1000","0000000g"]}`, `"id":8,"result":null,"error":[`},
		}},
		{"unknown method", false, []exchange{
			{`{"id":9,"method":"mining.launch_rockets","params":[]}`, `unsupported method`},
		}},
		{"one malformed line", false, []exchange{
			{`{"id":1,"method":`, `malformed JSON`},
		}},
	}
	for _, c := range answered {
		t.Run(c.name, func(t *testing.T) {
			m := testenv.Dial(t, addr)
			job := ""
			if c.login {
				_, notify, _ := m.Login("john.x", false)
				job = notify.Str(0)
			}
			for _, s := range c.steps {
				m.Send(strings.ReplaceAll(s.send, "JOB", job))
				line := m.Line(10 * time.Second)
				if !strings.Contains(line, s.want) {
					t.Fatalf("sent %s\ngot  %s\nwant it to contain %s", s.send, line, s.want)
				}
			}
			// still usable: a proper login works on the same connection
			if !c.login {
				m.Login("john.y", false)
			} else {
				m.Send(`{"id":99,"method":"mining.extranonce.subscribe","params":[]}`)
				m.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == "99" })
			}
		})
	}
	moreAccepted(t, ctxFor(t, 60*time.Second), sim, 8, "while bad miners misbehaved")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners disconnected: %+v", s)
	}
	for _, kind := range []string{"not-stratum", "line-too-long", "bad-json"} {
		if n := logs.CountKind(kind); n != 1 {
			t.Errorf("%q logged %d times, want once:\n%s", kind, n, logs.Dump())
		}
	}
}

// A miner that connects and says nothing is closed after login_timeout.
func TestSilentMinerClosedAfterLoginTimeout(t *testing.T) {
	const timeout = 500 * time.Millisecond
	_, a, logs, sim := minerFaultAgent(t, func(cfg *config.Config) { cfg.Miner.LoginTimeout = timeout }, agent.Options{TickInterval: 50 * time.Millisecond}, 4)
	base := a.Sessions()
	conns := make([]net.Conn, 20)
	for i := range conns {
		conns[i] = dialRaw(t, testenv.Addr(a))
	}
	for i, c := range conns {
		got, took, err := readUntilClosed(c, 10*time.Second)
		if err != nil {
			t.Fatalf("silent miner %d not closed: %v", i, err)
		}
		if len(got) != 0 {
			t.Errorf("silent miner %d was sent %q", i, got)
		}
		if i == 0 && took > timeout+time.Second {
			t.Errorf("closed after %v; login_timeout is %v", took, timeout)
		}
	}
	ctx := ctxFor(t, 30*time.Second)
	if err := eventually(ctx, func() bool { return a.Sessions() == base }); err != nil {
		t.Errorf("session ids not freed: %d in use, %d before", a.Sessions(), base)
	}
	moreAccepted(t, ctx, sim, 8, "while silent miners held connections")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners hit the login timeout: %+v", s)
	}
	if n := logs.CountKind("login-timeout"); n != 1 {
		t.Errorf("login timeout logged %d times for 20 miners, want once", n)
	}
}

// A miner that floods requests is rate-limited, then disconnected.
func TestRequestFloodLimitedThenDropped(t *testing.T) {
	const rate = 50
	_, a, logs, sim := minerFaultAgent(t, func(cfg *config.Config) { cfg.Miner.MaxRequestsPerSec = rate }, agent.Options{}, 4)
	m := testenv.Dial(t, testenv.Addr(a))
	m.Login("john.flood", false)
	var burst bytes.Buffer
	for i := 0; i < 5000; i++ {
		burst.WriteString(`{"id":1000,"method":"mining.suggest_difficulty","params":[1]}` + "\n")
	}
	go func() { _, _ = m.Conn().Write(burst.Bytes()) }() // the agent may close before it has read it all
	got, _, err := readUntilClosed(m.Conn(), 10*time.Second)
	if err != nil {
		t.Fatalf("flooding miner not disconnected: %v", err)
	}
	// The burst allowance is 2×rate (less the login's lines); everything
	// over it is dropped, and the miner is cut once the flood is sustained.
	if replies := bytes.Count(got, []byte(`"id":1000`)); replies > 2*rate || replies == 0 {
		t.Errorf("%d of 5000 flood requests answered; the limit is %d/s with a burst of %d", replies, rate, 2*rate)
	}
	if d := a.Listeners()[0].Stats.RateDropped.Load(); d < 4*rate {
		t.Errorf("%d flood lines counted as dropped, want at least %d before the disconnect", d, 4*rate)
	}
	moreAccepted(t, ctxFor(t, 60*time.Second), sim, 8, "during the flood")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners disconnected: %+v", s)
	}
	if n := logs.CountKind("request-flood"); n != 1 {
		t.Errorf("flood logged %d times, want once", n)
	}
}

// 50 bad miners misbehaving in every way at once: each kind of complaint
// is logged at most once (per minute), however many miners cause it.
func TestBadMinerLogLinesRateLimited(t *testing.T) {
	_, a, logs, sim := minerFaultAgent(t, func(cfg *config.Config) {
		cfg.Miner.LoginTimeout = time.Second
		cfg.Miner.MaxRequestsPerSec = 30
	}, agent.Options{TickInterval: 50 * time.Millisecond}, 4)
	addr := testenv.Addr(a)
	flood := bytes.Repeat([]byte(`{"id":5,"method":"mining.extranonce.subscribe","params":[]}`+"\n"), 500)
	kinds := [][]byte{
		[]byte("GET / HTTP/1.0\r\n\r\n"),                        // not-stratum
		append([]byte("{"), bytes.Repeat([]byte("z"), 2000)...), // line-too-long
		[]byte("{\"id\":1,\n{\"id\":2,\n"),                      // bad-json
		flood,                                                   // request-flood
		nil,                                                     // login-timeout
		[]byte(`{"id":1,"method":"nope"}` + "\n"), // unsupported method (not logged)
	}
	conns := make([]net.Conn, 50)
	for i := range conns {
		conns[i] = dialRaw(t, addr)
		if b := kinds[i%len(kinds)]; b != nil {
			go func(c net.Conn) { _, _ = c.Write(b) }(conns[i])
		}
	}
	for i, c := range conns {
		if i%len(kinds) == len(kinds)-1 {
			continue // the unsupported-method miners stay
		}
		if _, _, err := readUntilClosed(c, 10*time.Second); err != nil {
			t.Fatalf("bad miner %d (kind %d) not closed: %v", i, i%len(kinds), err)
		}
	}
	moreAccepted(t, ctxFor(t, 60*time.Second), sim, 8, "while 50 bad miners misbehaved")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners disconnected: %+v", s)
	}
	counts := map[string]int{}
	warns := 0
	for _, e := range logs.Entries() {
		if e.Kind != "" {
			counts[e.Kind]++
		}
		if e.Level <= 3 { // warn and worse
			warns++
		}
	}
	for _, k := range []string{"not-stratum", "line-too-long", "bad-json", "request-flood", "login-timeout"} {
		if counts[k] != 1 {
			t.Errorf("kind %q logged %d times, want exactly once: %v\n%s", k, counts[k], counts, logs.Dump())
		}
	}
	if warns > 8 {
		t.Errorf("%d warnings for 50 bad miners:\n%s", warns, logs.Dump())
	}
}

// All session ids in use: the next miner gets a clear "agent full" error
// and is closed; the miners already there keep mining, and a freed id is
// used again.
func TestAgentFull(t *testing.T) {
	const max = 6
	_, a, logs, sim := minerFaultAgent(t, nil, agent.Options{MaxSessions: max}, max-1)
	addr := testenv.Addr(a)
	last := testenv.Dial(t, addr) // the sixth: fills the agent
	last.Login("john.last", false)
	for i := 0; i < 10; i++ {
		c := dialRaw(t, addr)
		got, _, err := readUntilClosed(c, 10*time.Second)
		if err != nil {
			t.Fatalf("miner over the limit not closed: %v", err)
		}
		if !strings.Contains(string(got), "agent full") || !strings.Contains(string(got), `"error":[20,`) {
			t.Fatalf("miner over the limit got %q", got)
		}
	}
	moreAccepted(t, ctxFor(t, 60*time.Second), sim, 2*max, "while the agent was full")
	if n := logs.CountKind("agent-full"); n != 1 {
		t.Errorf("agent full logged %d times for 10 refusals", n)
	}
	_ = last.Conn().Close()
	ctx := ctxFor(t, 30*time.Second)
	if err := eventually(ctx, func() bool { return a.Sessions() == max-1 }); err != nil {
		t.Fatalf("closed miner's id not freed: %d", a.Sessions())
	}
	again := testenv.Dial(t, addr)
	again.Login("john.again", false)
}

// A connect flood — a few thousand connections in about a second that
// connect and hang up — leaves no sessions behind and does not stop the
// healthy miners.
func TestConnectFlood(t *testing.T) {
	_, a, logs, sim := minerFaultAgent(t, nil, agent.Options{}, 4)
	addr := testenv.Addr(a)
	base := a.Sessions()
	const total, workers = 3000, 16
	start := time.Now()
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		go func() {
			var first error
			for i := 0; i < total/workers; i++ {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					if first == nil {
						first = err
					}
					continue
				}
				_ = c.Close()
			}
			errs <- first
		}()
	}
	for w := 0; w < workers; w++ {
		if err := <-errs; err != nil {
			t.Logf("some flood dials failed: %v", err)
		}
	}
	took := time.Since(start)
	t.Logf("%d connections in %v (%.0f/s)", total, took, float64(total)/took.Seconds())
	ctx := ctxFor(t, 60*time.Second)
	if err := eventually(ctx, func() bool { return a.Sessions() == base }); err != nil {
		t.Fatalf("sessions left after the flood: %d, %d before", a.Sessions(), base)
	}
	moreAccepted(t, ctx, sim, 8, "after the connect flood")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners dropped by the flood: %+v", s)
	}
	if n := len(logs.Entries()); n > 20 {
		t.Errorf("%d log lines for a connect flood:\n%s", n, logs.Dump())
	}
	m := testenv.Dial(t, addr)
	m.Login("john.after", false)
}

var _ = context.Background

// stuckMiner logs in with a tiny receive window and then never reads again.
func stuckMiner(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_, _ = c.Write([]byte(`{"id":1,"method":"mining.subscribe","params":["stuck/1.0"]}` + "\n" + `{"id":2,"method":"mining.authorize","params":["john.stuck","` + minerPassword + `"]}` + "\n"))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var seen []byte
	buf := make([]byte, 512)
	for !bytes.Contains(seen, []byte("mining.notify")) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("stuck miner login: %v (%q)", err, seen)
		}
		seen = append(seen, buf[:n]...)
	}
	return c // and from here on nobody reads it
}

// pushJobsUntil publishes jobs one at a time, each after the healthy farm
// got the previous one, until done() or max jobs.
func pushJobsUntil(t *testing.T, ctx context.Context, pool *poolsim.Pool, sim *minersim.Sim, healthy int, max int, done func() bool) int {
	t.Helper()
	for i := 1; i <= max; i++ {
		mark := sim.Stats().Notifies
		pool.NewJob(false)
		if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Notifies >= mark+int64(healthy) }); err != nil {
			t.Fatalf("job %d did not reach the healthy miners: %v", i, err)
		}
		if done() {
			return i
		}
	}
	return max
}

// A miner that stops reading overflows its bounded output queue and is
// disconnected, with one log line; the others keep getting every job and
// shares accepted.
func TestStuckMinerDisconnected(t *testing.T) {
	const healthy = 6
	pool := testenv.Pool(t, poolsim.Config{Branches: 12})
	cfg := baseConfig(t, pool.Addr())
	cfg.Miner.WriteBufferBytes = 4096
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	ctx := ctxFor(t, 90*time.Second)
	sim := farm(t, testenv.Addr(a), healthy)
	moreAccepted(t, ctx, sim, 2*healthy, "before the stuck miner")
	stuck := stuckMiner(t, testenv.Addr(a))
	jobs := pushJobsUntil(t, ctx, pool, sim, healthy, 1000, func() bool { return logs.CountKind("slow-miner") > 0 })
	if logs.CountKind("slow-miner") == 0 {
		t.Fatalf("stuck miner still connected after %d jobs", jobs)
	}
	t.Logf("stuck miner disconnected after %d jobs of ~1.4 KB", jobs)
	if _, _, err := readUntilClosed(stuck, 10*time.Second); err != nil {
		t.Fatalf("stuck miner's socket not closed: %v", err)
	}
	if err := eventually(ctx, func() bool { return a.Sessions() == healthy }); err != nil {
		t.Fatalf("stuck miner's session not freed: %d", a.Sessions())
	}
	pushJobsUntil(t, ctx, pool, sim, healthy, 10, func() bool { return false })
	moreAccepted(t, ctx, sim, 2*healthy, "after the stuck miner")
	if s := sim.Stats(); s.Disconnects != 0 {
		t.Errorf("healthy miners disconnected: %+v", s)
	}
	if n := logs.CountKind("slow-miner"); n != 1 {
		t.Errorf("slow miner logged %d times", n)
	}
}

// One stuck miner among 1,000 does not delay the job fan-out to the
// others: the median of the per-job worst fan-out latency (pool write to
// the last miner) with the stuck miner is compared with the same farm
// without it.
func TestStuckMinerDoesNotDelayFanout(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 200
	}
	const jobs = 12
	pool := testenv.Pool(t, poolsim.Config{Branches: 12})
	cfg := baseConfig(t, pool.Addr())
	cfg.Miner.WriteBufferBytes = 4096
	a, logs := startAgent(t, cfg, agent.Options{}, cfg.Listen[0].Name)
	ctx := ctxFor(t, 120*time.Second)
	start := time.Now()
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, ShareInterval: time.Hour, JobTimestamp: poolsim.JobTimestamp, Logger: quietLogger(),
		HandshakeTimeout: 10 * time.Second, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Authorized == n && s.Notifies >= int64(n) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d miners logged in in %v", n, time.Since(start))
	base := sim.Stats()
	median := func() time.Duration {
		js := sim.Stats().Jobs
		js = js[max(0, len(js)-2*jobs):] // one entry per job and link
		ds := make([]time.Duration, 0, len(js))
		for _, j := range js {
			ds = append(ds, j.Max)
		}
		slicesSort(ds)
		return ds[len(ds)/2]
	}
	pushJobsUntil(t, ctx, pool, sim, n, jobs, func() bool { return false })
	without := median()
	stuck := stuckMiner(t, testenv.Addr(a))
	pushJobsUntil(t, ctx, pool, sim, n, jobs, func() bool { return false })
	with := median()
	t.Logf("median per-job fan-out to all %d miners: %v without, %v with a stuck miner (slow-miner logged %d)", n, without, with, logs.CountKind("slow-miner"))
	if with > 3*without+100*time.Millisecond {
		t.Errorf("a stuck miner slowed the fan-out: %v → %v", without, with)
	}
	_ = stuck
	s := sim.Stats()
	if s.Disconnects != base.Disconnects || s.Authorized != n {
		t.Errorf("healthy miners affected: %+v", s)
	}
}

func slicesSort(ds []time.Duration) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}
