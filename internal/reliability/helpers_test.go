package reliability

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// ---- log capture ----

// logEntry is one captured log line.
type logEntry struct {
	At    time.Time
	Level logrus.Level
	Msg   string
	Kind  string // the rate limiter's "kind" field, if any
	Text  string // the whole line as the text formatter writes it (fields included)
}

// logCapture is a logrus hook that keeps every entry, so tests can count
// lines by kind or reason and await a line.
type logCapture struct {
	mu      sync.Mutex
	entries []logEntry
	changed chan struct{}
	fmt     logrus.TextFormatter
}

func newLogCapture() *logCapture {
	return &logCapture{changed: make(chan struct{}), fmt: logrus.TextFormatter{DisableColors: true, DisableTimestamp: true}}
}

func (c *logCapture) Levels() []logrus.Level { return logrus.AllLevels }

func (c *logCapture) Fire(e *logrus.Entry) error {
	b, _ := c.fmt.Format(e)
	kind, _ := e.Data["kind"].(string)
	c.mu.Lock()
	c.entries = append(c.entries, logEntry{At: e.Time, Level: e.Level, Msg: e.Message, Kind: kind, Text: string(b)})
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return nil
}

// Entries returns a copy of what was logged so far.
func (c *logCapture) Entries() []logEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]logEntry(nil), c.entries...)
}

// Count counts entries whose message contains substr.
func (c *logCapture) Count(substr string) int {
	n := 0
	for _, e := range c.Entries() {
		if strings.Contains(e.Msg, substr) {
			n++
		}
	}
	return n
}

// CountKind counts rate-limited entries of one kind.
func (c *logCapture) CountKind(kind string) int {
	n := 0
	for _, e := range c.Entries() {
		if e.Kind == kind {
			n++
		}
	}
	return n
}

// WaitFor blocks until cond holds for the entries logged so far; it is
// re-evaluated on every new entry.
func (c *logCapture) WaitFor(ctx context.Context, cond func([]logEntry) bool) error {
	for {
		c.mu.Lock()
		ch := c.changed
		es := append([]logEntry(nil), c.entries...)
		c.mu.Unlock()
		if cond(es) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("log condition not met: %w", ctx.Err())
		}
	}
}

// WaitMsg waits for an entry whose message contains substr and returns it.
func (c *logCapture) WaitMsg(ctx context.Context, substr string) (logEntry, error) {
	var got logEntry
	err := c.WaitFor(ctx, func(es []logEntry) bool {
		for _, e := range es {
			if strings.Contains(e.Msg, substr) {
				got = e
				return true
			}
		}
		return false
	})
	return got, err
}

// Dump is the captured log for failure messages.
func (c *logCapture) Dump() string {
	var b strings.Builder
	for _, e := range c.Entries() {
		b.WriteString(e.Text)
	}
	return b.String()
}

// newLogger returns an info-level logger feeding a capture (and the test log
// with -v).
func newLogger(t testing.TB, level logrus.Level) (*logrus.Logger, *logCapture) {
	l := logrus.New()
	l.SetLevel(level)
	l.SetOutput(io.Discard)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
	}
	c := newLogCapture()
	l.AddHook(c)
	return l, c
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ---- agent ----

// baseConfig is testenv.Config with the fault-test timings: fast backoff
// (50 ms doubling to 400 ms), short handshake and dial timeouts.
func baseConfig(t testing.TB, pools ...string) *config.Config {
	cfg := testenv.Config(t, "farm", pools...)
	cfg.Upstream.ReconnectMin = 50 * time.Millisecond
	cfg.Upstream.ReconnectMax = 400 * time.Millisecond
	cfg.Upstream.DialTimeout = 2 * time.Second
	cfg.Upstream.HandshakeTimeout = 2 * time.Second
	cfg.Upstream.SubmitResponse = true
	// CPU miners at the test difficulty submit well over the default 50
	// requests/s without the race detector; tests of the limit set their own.
	cfg.Miner.MaxRequestsPerSec = 2000
	return cfg
}

// addListener appends a listener on a free loopback port.
func addListener(t testing.TB, cfg *config.Config, name string, conns int, pools ...config.Pool) {
	t.Helper()
	cfg.Listen = append(cfg.Listen, config.Listener{Name: name, Address: "127.0.0.1", Port: testenv.Port(t), PoolUser: "farm", Connections: conns, Pools: pools})
	cfg.ApplyDefaults()
}

func poolAt(t testing.TB, addr string) config.Pool {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	return config.Pool{Host: host, Port: p, Protocol: config.ProtocolAgent}
}

// startAgent validates cfg, starts an agent logging into a capture and
// waits until the listeners named in ready have a ready pool link.
func startAgent(t testing.TB, cfg *config.Config, opts agent.Options, ready ...string) (*agent.Agent, *logCapture) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config is not valid: %v", err)
	}
	if opts.TickInterval == 0 {
		opts.TickInterval = 100 * time.Millisecond
	}
	if opts.Socket == nil {
		opts.Socket = testenv.Socket
	}
	log, capture := newLogger(t, logrus.InfoLevel)
	a, err := agent.New(cfg, log, opts)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(a.Stop)
	if len(ready) > 0 {
		waitReady(t, a, capture, ready...)
	}
	return a, capture
}

func listener(a *agent.Agent, name string) *agent.Listener {
	for _, l := range a.Listeners() {
		if l.Cfg.Name == name {
			return l
		}
	}
	return nil
}

// readyLinks counts a listener's ready pool links.
func readyLinks(t testing.TB, l *agent.Listener) int {
	t.Helper()
	s, err := l.Snapshot(5 * time.Second)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	n := 0
	for _, u := range s.Upstreams {
		if u.Ready {
			n++
		}
	}
	return n
}

func waitReady(t testing.TB, a *agent.Agent, capture *logCapture, names ...string) {
	t.Helper()
	ctx := testenv.Ctx(t)
	// The coordinator has no change notification: poll its snapshot.
	err := eventually(ctx, func() bool {
		for _, n := range names {
			l := listener(a, n)
			if l == nil || readyLinks(t, l) == 0 {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Fatalf("listeners %v never got a ready pool link: %v\nlog:\n%s", names, err, capture.Dump())
	}
}

// eventually polls cond until it holds (for state that has no change
// notification, such as the agent's session count).
func eventually(ctx context.Context, cond func() bool) error {
	tk := time.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for !cond() {
		select {
		case <-tk.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ---- healthy miners ----

// farm is a set of hash-mode miners that find real shares.
func farm(t testing.TB, target string, n int) *minersim.Sim {
	return testenv.Miners(t, minersim.Config{Target: target, Miners: n, Hash: true, VersionRolling: true, Password: minerPassword,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond, Logger: quietLogger()})
}

// minerPassword is what simulated miners authorize with; it must never be logged.
const minerPassword = "s3cret-miner-pw-7f3a"

func quietLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// moreAccepted waits until the farm has k more accepted shares than now.
func moreAccepted(t testing.TB, ctx context.Context, sim *minersim.Sim, k int64, what string) {
	t.Helper()
	mark := sim.Stats().SharesAccepted
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= mark+k }); err != nil {
		t.Fatalf("healthy miners got no accepted shares %s: %v", what, err)
	}
}

// poolAccepts waits until pool p has accepted k more shares than now.
func poolAccepts(t testing.TB, ctx context.Context, p *poolsim.Pool, k uint64, what string) {
	t.Helper()
	mark := p.Stats().Totals.Accepted
	if err := p.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+k }); err != nil {
		t.Fatalf("pool accepted no shares %s: %v (totals %+v)", what, err, p.Stats().Totals)
	}
}

// noDuplicates fails if a pool saw a duplicate share or dropped one
// without a verdict.
func noDuplicates(t testing.TB, pools ...*poolsim.Pool) {
	t.Helper()
	for i, p := range pools {
		tot := p.Stats().Totals
		if d := tot.Rejected[22]; d != 0 {
			t.Errorf("pool %d saw %d duplicate shares", i, d)
		}
		if tot.Dropped != 0 {
			t.Errorf("pool %d dropped %d shares without a verdict", i, tot.Dropped)
		}
	}
}

// ---- dial attempts and backoff ----

// attemptTimes lists when connections reached the pool (accepted or
// refused), oldest first, from the pool's event ring.
func attemptTimes(p *poolsim.Pool) []time.Time {
	var out []time.Time
	for _, e := range p.Stats().Events {
		if e.Kind == "connect" || e.Kind == "refused" {
			out = append(out, e.Time)
		}
	}
	return out
}

// checkBackoff checks a single pool link's dial attempts (times at the
// pool, oldest first) against the reconnect schedule: before the n-th
// retry the link waits at least 0.8 × min(reconnect_min × 2^⌊n/pools⌋,
// reconnect_max) — the jitter is ±20% — so there is never more than one
// attempt per backoff step; and once the cap is reached retries keep coming
// (the gap stays under the capped step plus the time an attempt takes).
// first is the index of the first retry in the schedule (1 after a lost
// link, 0 when the very first dial failed).
func checkBackoff(t testing.TB, times []time.Time, cfg config.UpstreamOptions, pools, first int, attemptCost time.Duration) {
	t.Helper()
	if pools < 1 {
		pools = 1
	}
	for i := 1; i < len(times); i++ {
		n := first + i // failures before this retry
		d := cfg.ReconnectMin
		for k := 0; k < n/pools && d < cfg.ReconnectMax; k++ {
			d *= 2
		}
		d = min(d, cfg.ReconnectMax)
		gap := times[i].Sub(times[i-1])
		if lo := time.Duration(float64(d)*0.8) - 2*time.Millisecond; gap < lo {
			t.Errorf("reconnect storm: attempt %d came %v after the previous one; the backoff step is %v (at least %v with jitter)\nattempts: %v", i, gap, d, lo, gaps(times))
			return
		}
		if hi := time.Duration(float64(cfg.ReconnectMax)*1.2) + attemptCost + 2*time.Second; gap > hi {
			t.Errorf("backoff not capped: attempt %d came %v after the previous one (cap %v)", i, gap, cfg.ReconnectMax)
			return
		}
	}
}

func gaps(times []time.Time) []string {
	out := make([]string, 0, len(times))
	for i := 1; i < len(times); i++ {
		out = append(out, times[i].Sub(times[i-1]).Round(time.Millisecond).String())
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = crand.Read(b)
	return hex.EncodeToString(b)
}

// knownUpstreamBug reports a regression of a pool-link bug this suite found
// and that was fixed in actors/upstream (see docs/RELIABILITY.md).
func knownUpstreamBug(t testing.TB, id, format string, args ...any) {
	t.Helper()
	// U1 and U2 were fixed in actors/upstream; a regression fails the suite.
	t.Errorf("upstream bug "+id+": "+format, args...)
}
