package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// Options configure a load run (Run) or a soak (Soak). Zero values select the
// reference workload of issue 9.
type Options struct {
	AgentBin    string // btcagent binary
	AgentKind   string // KindGo (default) or KindCpp: which agent AgentBin is, so how to configure and start it
	MinersimBin string // minersim binary
	Dir         string // this run's logs, config and summaries (created)

	Miners      int
	Connections int            // upstream links; 0 keeps the agent's default
	Flush       *time.Duration // upstream.flush_interval; nil keeps the agent's default

	ShareInterval  time.Duration // per miner, default 10s
	Jitter         float64       // relative spread of ShareInterval, default 0.2; negative: none
	NotifyInterval time.Duration // pool job period, default 30s
	BlockEvery     int           // every Nth job is a new block, default 10
	Branches       int           // merkle branches per job, default 12 (~1.4 KB notify)
	Diff           uint64        // fixed share difficulty at the pool, default 16384
	DialRate       int           // minersim new connections per second; 0 = as fast as it goes
	Pollers        int           // minersim epoll loops; 0 = minersim's default (1)
	Transport      string        // minersim -transport; "" = minersim's default

	RampTimeout time.Duration // all miners authorized within this, default 5m
	Settle      time.Duration // quiet time after the ramp, default 20s (and at least one job)
	Window      time.Duration // steady measurement window, default 120s
	SampleEvery time.Duration // agent RSS sampling period in the window, default 5s

	AgentEnv []string // extra KEY=VALUE environment for the agent (GOGC, GOMEMLIMIT experiments)

	// Floor is this machine's broadcast floor for Miners connections
	// (MeasureFloor), recorded with the result and used for the fan-out
	// ratios; nil: not measured.
	Floor *Floor

	// Before each run, wait up to QuietWait for the machine to be idle
	// (fewer than QuietBelow cores busy): other work on the same cores
	// inflates CPU and latency figures. Zero QuietWait skips the check.
	QuietBelow float64
	QuietWait  time.Duration

	Logf func(format string, args ...any) // progress messages; nil = silent
}

func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.ShareInterval, 10*time.Second)
	def(&o.NotifyInterval, 30*time.Second)
	def(&o.RampTimeout, 5*time.Minute)
	def(&o.Settle, 20*time.Second)
	def(&o.Window, 120*time.Second)
	def(&o.SampleEvery, 5*time.Second)
	if o.Jitter == 0 {
		o.Jitter = 0.2
	} else if o.Jitter < 0 {
		o.Jitter = 0
	}
	if o.BlockEvery == 0 {
		o.BlockEvery = 10
	}
	if o.Branches == 0 {
		o.Branches = 12
	}
	if o.Diff == 0 {
		o.Diff = 16384
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return o
}

// env is one pool simulator plus one agent process configured against it.
type env struct {
	o         Options
	pool      *poolsim.Pool
	agent     *child
	agentAddr string
	httpAddr  string        // the agent's HTTP API; "" for agents without one
	conns     int           // upstream links configured
	flush     time.Duration // flush interval configured
}

// startEnv starts the pool simulator in this process and the agent as its
// own process, and waits until the agent's pool links are up.
func startEnv(ctx context.Context, o Options) (_ *env, err error) {
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run directory: %w", err)
	}
	poolLog, err := os.Create(filepath.Join(o.Dir, "pool.log"))
	if err != nil {
		return nil, fmt.Errorf("create pool log: %w", err)
	}
	log := logrus.New()
	log.SetOutput(poolLog)
	log.SetLevel(logrus.WarnLevel)
	pool, err := poolsim.Start(poolConfig(o, log))
	if err != nil {
		poolLog.Close()
		return nil, fmt.Errorf("start pool simulator: %w", err)
	}
	e := &env{o: o, pool: pool}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	e.agentAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	prog, err := agentAlias(o.Dir, o.AgentBin)
	if err != nil {
		return nil, err
	}
	if o.AgentKind == KindCpp {
		if err := e.startLegacy(ctx, prog, port); err != nil {
			return nil, err
		}
		return e, nil
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	e.httpAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	cfgPath := filepath.Join(o.Dir, "agent.toml")
	if e.conns, e.flush, err = writeAgentConfig(cfgPath, port, e.httpAddr, pool.Addr(), o); err != nil {
		return nil, err
	}
	e.agent, err = startChild("btcagent", filepath.Join(o.Dir, "agent.log"), filepath.Join(o.Dir, "agent.stdout"), nil, o.AgentEnv, prog, "-c", cfgPath)
	if err != nil {
		return nil, err
	}
	err = poll(ctx, 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		if e.agent.Exited() {
			return false, fmt.Errorf("%w (see %s)", e.agent.ExitError(), filepath.Join(o.Dir, "agent.log"))
		}
		return pool.Stats().Totals.AgentConns >= e.conns, nil
	})
	if err != nil {
		return nil, fmt.Errorf("waiting for %d agent links at the pool: %w", e.conns, err)
	}
	return e, nil
}

// close stops the agent and the pool. The agent gets SIGTERM first so that
// a clean shutdown is part of every run.
func (e *env) close() {
	if e.agent != nil {
		if err := e.agent.Stop(15 * time.Second); err != nil {
			e.o.Logf("warning: %v", err)
		}
	}
	_ = e.pool.Close()
}

// alive fails when the agent or any of the given miner processes has ended
// unexpectedly: the numbers would be meaningless from then on.
func (e *env) alive(miners ...*child) error {
	for _, c := range append([]*child{e.agent}, miners...) {
		if c != nil && c.Exited() {
			return c.ExitError()
		}
	}
	return nil
}

// agentAlias returns a symlink to the agent binary named btcagent-bench.
// The kernel names a process (comm) after the file it was started from, and
// `btcagent reload` without -pidfile signals "the one other btcagent
// process": on a machine where someone runs that while a benchmark is going,
// the benchmark's agent must not be the one that gets the SIGHUP (an older
// build without a handler dies of it). The alias also tells the two apart
// in ps and top.
func agentAlias(dir, bin string) (string, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return "", fmt.Errorf("agent binary: %w", err)
	}
	link := filepath.Join(dir, "btcagent-bench")
	_ = os.Remove(link)
	if err := os.Symlink(abs, link); err != nil {
		return "", fmt.Errorf("agent alias: %w", err)
	}
	return link, nil
}

// writeAgentConfig writes the agent's TOML config: the agent's own defaults
// (so the benchmark measures what users get) except for the loopback
// listener, the pool simulator, quiet logging and the HTTP API on httpAddr.
// The API stays on in every run, asked or not, so that runs with and
// without questions to it measure the same agent; idle, it costs a
// listening socket and a once-a-minute history sample.
func writeAgentConfig(path string, port int, httpAddr, poolAddr string, o Options) (conns int, flush time.Duration, err error) {
	cfg := config.Default()
	cfg.LogLevel = "warn"
	cfg.HTTPListen = httpAddr
	if o.Connections > 0 {
		cfg.Upstream.Connections = o.Connections
	}
	if o.Flush != nil {
		cfg.Upstream.FlushInterval = *o.Flush
	}
	host, ps, err := net.SplitHostPort(poolAddr)
	if err != nil {
		return 0, 0, fmt.Errorf("pool address %q: %w", poolAddr, err)
	}
	pport, err := strconv.Atoi(ps)
	if err != nil {
		return 0, 0, fmt.Errorf("pool address %q: %w", poolAddr, err)
	}
	cfg.Listen = []config.Listener{{
		Name: "bench", Address: "127.0.0.1", Port: port, PoolUser: "bench",
		Pools: []config.Pool{{Host: host, Port: pport}},
	}}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return 0, 0, fmt.Errorf("agent config: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, 0, fmt.Errorf("write agent config: %w", err)
	}
	if err := cfg.WriteTOML(f); err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := f.Close(); err != nil {
		return 0, 0, fmt.Errorf("write agent config: %w", err)
	}
	return cfg.Listen[0].Connections, cfg.Upstream.FlushInterval, nil
}

// freePort asks the kernel for an unused loopback port. Another process could
// take it before the agent binds it; the agent then fails to start and the
// run reports that, which is rare enough not to warrant retries.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// minerGroup is one minersim process and what the harness knows about it.
type minerGroup struct {
	*child
	n        int
	summary  string // path of its JSON summary
	progress atomic.Pointer[Progress]
}

// startMiners runs minersim with n fast-mode, version-rolling miners named
// <prefix><i> against the agent.
func (e *env) startMiners(name string, n int, prefix string) (*minerGroup, error) {
	g := &minerGroup{n: n, summary: filepath.Join(e.o.Dir, name+".summary.json")}
	_ = os.Remove(g.summary) // a stale summary from an earlier cycle must not be read as this one's
	args := []string{
		"-target", e.agentAddr,
		"-miners", strconv.Itoa(n),
		"-user", "farm",
		"-worker-prefix", prefix,
		"-interval", e.o.ShareInterval.String(),
		"-jitter", strconv.FormatFloat(e.o.Jitter, 'f', -1, 64),
		"-version-rolling",
		"-stamp", "poolsim",
		"-summary", g.summary,
		"-stats-every", "1s",
		"-log-level", "warning",
	}
	if e.o.Pollers > 0 {
		args = append(args, "-pollers", strconv.Itoa(e.o.Pollers))
	}
	if e.o.Transport != "" {
		args = append(args, "-transport", e.o.Transport)
	}
	if e.o.DialRate > 0 {
		args = append(args, "-rate", strconv.Itoa(e.o.DialRate))
	}
	c, err := startChild(name, filepath.Join(e.o.Dir, name+".log"), filepath.Join(e.o.Dir, name+".stdout"),
		func(line string) {
			if p, ok := ParseProgress(line); ok {
				g.progress.Store(&p)
			}
		}, nil, e.o.MinersimBin, args...)
	if err != nil {
		return nil, err
	}
	g.child = c
	return g, nil
}

// Progress is the latest progress line, zero before the first.
func (g *minerGroup) Progress() Progress {
	if p := g.progress.Load(); p != nil {
		return *p
	}
	return Progress{}
}

// stopAndSummary stops the simulator (SIGTERM: it stops submitting, closes
// its miners and writes the summary) and reads the summary.
func (g *minerGroup) stopAndSummary() (minerSummary, error) {
	if err := g.Stop(60 * time.Second); err != nil {
		return minerSummary{}, err
	}
	data, err := os.ReadFile(g.summary)
	if err != nil {
		return minerSummary{}, fmt.Errorf("%s summary: %w", g.name, err)
	}
	var s minerSummary
	if err := json.Unmarshal(data, &s); err != nil {
		return minerSummary{}, fmt.Errorf("%s summary %s: %w", g.name, g.summary, err)
	}
	return s, nil
}

// minerSummary is the part of minersim's JSON summary the harness reads.
type minerSummary struct {
	Miners           int              `json:"miners"`
	Authorized       int              `json:"authorized"`
	SharesSent       int64            `json:"shares_sent"`
	SharesAccepted   int64            `json:"shares_accepted"`
	SharesRejected   map[string]int64 `json:"shares_rejected"`
	SharesUnanswered int64            `json:"shares_unanswered"`
	Reconnects       int64            `json:"reconnects"`
	Disconnects      int64            `json:"disconnects"`
	ConnectErrors    int64            `json:"connect_errors"`
	AuthFailures     int64            `json:"auth_failures"`
	ProtocolErrors   int64            `json:"protocol_errors"`
	Notifies         int64            `json:"notifies"`
	FanoutSamples    int64            `json:"fanout_samples"`
	SelfCPU          float64          `json:"self_cpu"`
	RSSBytes         int64            `json:"rss_bytes"`
	ElapsedS         float64          `json:"elapsed_s"`
	SubmitP50Ms      float64          `json:"submit_p50_ms"`
	SubmitP99Ms      float64          `json:"submit_p99_ms"`
	FanoutP50Ms      float64          `json:"fanout_p50_ms"`
	FanoutP99Ms      float64          `json:"fanout_p99_ms"`
	FanoutMaxMs      float64          `json:"fanout_max_ms"`
	// Absent when minersim did not measure to the kernel's receive time.
	FanoutKernelP50Ms *float64    `json:"fanout_kernel_p50_ms"`
	FanoutKernelP99Ms *float64    `json:"fanout_kernel_p99_ms"`
	FanoutKernelMaxMs *float64    `json:"fanout_kernel_max_ms"`
	Jobs              []JobRecord `json:"jobs"`
}

// waitAuthorized waits until every miner of the groups is authorized at the
// agent and registered at the pool (the agent registers a worker upstream
// when its miner authorizes; shares of an unregistered worker would be
// dropped, so the pool's count is the one that matters).
func (e *env) waitAuthorized(ctx context.Context, timeout time.Duration, groups ...*minerGroup) error {
	want := 0
	for _, g := range groups {
		want += g.n
	}
	last := time.Now()
	err := poll(ctx, time.Second, timeout, func() (bool, error) {
		got := 0
		for _, g := range groups {
			if err := e.alive(g.child); err != nil {
				return false, err
			}
			got += g.Progress().Authorized
		}
		if time.Since(last) >= 10*time.Second {
			e.o.Logf("  ramp: %d/%d miners authorized", got, want)
			last = time.Now()
		}
		if got < want {
			return false, nil
		}
		return e.pool.Stats().Totals.RegisteredWorkers >= want, nil
	})
	if err != nil {
		got := 0
		for _, g := range groups {
			got += g.Progress().Authorized
		}
		return fmt.Errorf("waiting for %d miners (%d authorized at the agent): %w", want, got, err)
	}
	return nil
}

// settle waits o.Settle and for at least one new pool job, so the window
// starts after a regular broadcast to the full farm.
func (e *env) settle(ctx context.Context, groups ...*minerGroup) error {
	job := e.pool.CurrentJob().JobID
	until := time.Now().Add(e.o.Settle)
	children := make([]*child, len(groups))
	for i, g := range groups {
		children[i] = g.child
	}
	err := poll(ctx, 500*time.Millisecond, e.o.Settle+2*e.o.NotifyInterval+10*time.Second, func() (bool, error) {
		if err := e.alive(children...); err != nil {
			return false, err
		}
		return !time.Now().Before(until) && e.pool.CurrentJob().JobID != job, nil
	})
	if err != nil {
		return fmt.Errorf("settling: %w", err)
	}
	return nil
}

// waitQuiet waits, in 5 s steps and at most o.QuietWait, until fewer than
// o.QuietBelow cores are busy on the machine. Nothing of the benchmark runs
// at this point, so all of that is other work. A machine that stays busy is
// measured anyway; the window's "other CPU" column and a note show it.
func waitQuiet(ctx context.Context, o Options) error {
	if o.QuietWait <= 0 {
		return nil
	}
	deadline := time.Now().Add(o.QuietWait)
	var logged time.Time
	for {
		a, err := ReadMachineCPU()
		if err != nil {
			return err
		}
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		b, err := ReadMachineCPU()
		if err != nil {
			return err
		}
		busy := BusyCores(a, b)
		if busy < o.QuietBelow {
			return nil
		}
		if !time.Now().Before(deadline) {
			o.Logf("  machine still busy (%.2f cores used by other processes) after %v; measuring anyway", busy, o.QuietWait)
			return nil
		}
		if time.Since(logged) >= time.Minute {
			o.Logf("  machine busy (%.2f cores used by other processes); waiting up to %v for it to calm down",
				busy, time.Until(deadline).Round(time.Second))
			logged = time.Now()
		}
	}
}

// fanoutTail is how long after a pool job the miners are kept running so
// that its fan-out completes: a job written just before the end of the
// window would otherwise be cut short and look as if it reached only part
// of the farm. Broadcasts to 19,000 miners take well under a second.
const fanoutTail = 5 * time.Second

// finishFanout waits, if the newest pool job is younger than fanoutTail,
// until it is that old.
func (e *env) finishFanout(ctx context.Context) error {
	written, ok := poolsim.JobTimestamp(e.pool.CurrentJob().Coinb1)
	if !ok {
		return nil
	}
	wait := time.Until(written.Add(fanoutTail))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(min(wait, fanoutTail))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// poolShares is every share the pool has seen, by outcome.
func poolShares(t poolsim.Totals) (accepted, rejected, dropped uint64) {
	for _, n := range t.Rejected {
		rejected += n
	}
	return t.Accepted, rejected, t.Dropped
}

// drain waits until the pool has seen `sent` shares or the count has stopped
// moving for 2 s, and returns the pool's totals. Shares still in the agent's
// flush buffer or in a socket when the miners stop arrive within
// milliseconds; anything missing after that is lost.
func (e *env) drain(ctx context.Context, sent int64) (poolsim.Totals, error) {
	var tot poolsim.Totals
	var last uint64
	stable := 0
	err := poll(ctx, 500*time.Millisecond, 30*time.Second, func() (bool, error) {
		tot = e.pool.Stats().Totals
		a, r, d := poolShares(tot)
		got := a + r + d
		if int64(got) >= sent {
			return true, nil
		}
		if got == last {
			stable++
		} else {
			stable = 0
		}
		last = got
		return stable >= 4, nil
	})
	if err != nil && !errors.Is(err, errTimeout) {
		return tot, err
	}
	return tot, nil
}

var errTimeout = errors.New("timed out")

// poll calls check at once and then every interval until it reports done,
// fails, ctx ends or timeout passes. The agent and the miners are separate
// processes with nothing to block on, so bounded polling is how the harness
// follows them.
func poll(ctx context.Context, interval, timeout time.Duration, check func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w after %v", errTimeout, timeout)
		}
		t.Reset(min(interval, left))
	}
}

// Run performs one load run: start the pool and the agent, connect the
// miners, wait for all of them, settle, measure one steady window, stop the
// miners, drain, and stop everything.
func Run(ctx context.Context, o Options) (res Result, err error) {
	o = o.withDefaults()
	res = Result{Miners: o.Miners, AgentKind: o.AgentKind, AgentEnv: o.AgentEnv, Pollers: o.Pollers, Started: time.Now().UTC().Truncate(time.Second)}
	if err := waitQuiet(ctx, o); err != nil {
		return res, err
	}
	e, err := startEnv(ctx, o)
	if err != nil {
		return res, err
	}
	defer e.close()
	res.Connections, res.FlushMs = e.conns, float64(e.flush)/float64(time.Millisecond)

	o.Logf("  agent up (pid %d, %s, %d links); starting %d miners", e.agent.Pid(), e.agentAddr, e.conns, o.Miners)
	rampStart := time.Now()
	ms, err := e.startMiners("minersim", o.Miners, "w")
	if err != nil {
		return res, err
	}
	defer func() {
		if err := ms.Stop(60 * time.Second); err != nil {
			o.Logf("warning: %v", err)
		}
	}()
	if err := e.waitAuthorized(ctx, o.RampTimeout, ms); err != nil {
		return res, err
	}
	res.RampS = time.Since(rampStart).Seconds()
	o.Logf("  all %d miners in after %.1f s; settling", o.Miners, res.RampS)
	if err := e.settle(ctx, ms); err != nil {
		return res, err
	}

	o.Logf("  measuring for %v", o.Window)
	w, err := e.window(ctx, ms.child)
	if err != nil {
		return res, err
	}

	if err := e.finishFanout(ctx); err != nil {
		return res, err
	}
	// Asked while the miners are still connected, so the agent's record
	// is that of the steady state and holds the window's last job.
	var bcasts []Broadcast
	haveBcasts := false
	if e.httpAddr != "" {
		var err error
		if bcasts, haveBcasts, err = fetchBroadcasts(ctx, e.httpAddr); err != nil {
			// The window's other figures stand without it.
			o.Logf("  warning: agent fan-out not measured: %v", err)
		}
	}
	o.Logf("  stopping miners and draining")
	sum, err := ms.stopAndSummary()
	if err != nil {
		return res, err
	}
	tot, err := e.drain(ctx, sum.SharesSent)
	if err != nil {
		return res, err
	}
	w.fill(&res)
	fillShares(&res, sum, tot)
	jobs := JobsWritten(sum.Jobs, w.a0.Time, w.a1.Time)
	var lasts []float64
	res.JobMinersMin = math.NaN()
	for i, j := range jobs {
		lasts = append(lasts, j.LastMs)
		if i == 0 || float64(j.Miners) < res.JobMinersMin {
			res.JobMinersMin = float64(j.Miners)
		}
	}
	res.JobsInWindow = float64(len(jobs))
	res.JobLastP50Ms = Percentile(lasts, 50)
	res.JobLastMaxMs = Percentile(lasts, 100)
	res.AgentFanoutP50Ms, res.AgentFanoutMaxMs, res.AgentFanoutJobs = math.NaN(), math.NaN(), math.NaN()
	if haveBcasts {
		done := AgentJobFanout(bcasts, jobs, min(fanoutTail, o.NotifyInterval/2))
		res.AgentFanoutJobs = float64(len(done))
		res.AgentFanoutP50Ms = Percentile(done, 50)
		res.AgentFanoutMaxMs = Percentile(done, 100)
	}
	res.setFloor(o.Floor)
	res.setFloorRatios()
	return res, nil
}

// windowData is what one steady window measured.
type windowData struct {
	a0, a1     ProcSample // agent
	m0, m1     ProcSample // minersim
	h0, h1     ProcSample // this process
	c0, c1     MachineCPU // all cores
	rssMax     uint64
	tcp        TCPDelta
	tot0, tot1 poolsim.Totals
}

// window measures the steady state: /proc of the agent, the miners and this
// process, TCP_INFO of the pool links and the pool's share counters at both
// ends, and the agent's RSS every SampleEvery in between.
func (e *env) window(ctx context.Context, miners *child) (windowData, error) {
	var w windowData
	var err error
	read := func(pid int, dst *ProcSample) {
		if err == nil {
			*dst, err = ReadProc(pid)
		}
	}
	self := os.Getpid()
	tcp0 := e.pool.TCPInfo()
	w.tot0 = e.pool.Stats().Totals
	read(e.agent.Pid(), &w.a0)
	read(miners.Pid(), &w.m0)
	read(self, &w.h0)
	if err != nil {
		return w, err
	}
	if w.c0, err = ReadMachineCPU(); err != nil {
		return w, err
	}
	w.rssMax = w.a0.RSS
	end := w.a0.Time.Add(e.o.Window)
	t := time.NewTimer(min(e.o.SampleEvery, e.o.Window))
	defer t.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return w, ctx.Err()
		case <-t.C:
		}
		if err := e.alive(miners); err != nil {
			return w, err
		}
		s, err := ReadProc(e.agent.Pid())
		if err != nil {
			return w, err
		}
		w.rssMax = max(w.rssMax, s.RSS)
		if left := time.Until(end); left > 0 {
			t.Reset(min(e.o.SampleEvery, left))
		}
	}
	read(e.agent.Pid(), &w.a1)
	read(miners.Pid(), &w.m1)
	read(self, &w.h1)
	if err == nil {
		w.c1, err = ReadMachineCPU()
	}
	w.tot1 = e.pool.Stats().Totals
	w.tcp = DiffTCP(tcp0, e.pool.TCPInfo())
	w.rssMax = max(w.rssMax, w.a1.RSS)
	return w, err
}

// fill writes the window's rates and resources into r.
func (w windowData) fill(r *Result) {
	secs := w.a1.Time.Sub(w.a0.Time).Seconds()
	r.WindowS = secs
	r.AgentRSSMiB = mib(w.a1.RSS)
	r.AgentRSSMaxMiB = mib(w.rssMax)
	r.AgentHWMMiB = mib(w.a1.HWM)
	r.AgentAnonMiB = mib(w.a1.RSSAnon)
	r.AgentCPU = CoresBetween(w.a0, w.a1)
	r.AgentThreads = float64(w.a1.Threads)
	r.MinersimCPU = CoresBetween(w.m0, w.m1)
	r.MinersimRSSMiB = mib(w.m1.RSS)
	r.HarnessCPU = CoresBetween(w.h0, w.h1)
	r.SoftIRQCPU = SoftIRQCores(w.c0, w.c1)
	r.OtherCPU = max(0, BusyCores(w.c0, w.c1)-r.AgentCPU-r.MinersimCPU-r.HarnessCPU-r.SoftIRQCPU)
	r.UpBytesPerS = float64(w.tcp.BytesIn) / secs
	r.DownBytesPerS = float64(w.tcp.BytesOut) / secs
	r.UpSegsPerS = float64(w.tcp.SegsIn) / secs
	r.DownSegsPerS = float64(w.tcp.SegsOut) / secs
	r.UpDataSegsPerS = float64(w.tcp.DataSegsIn) / secs
	r.DownDataSegsPerS = float64(w.tcp.DataSegsOut) / secs
	r.LinkChanges = float64(w.tcp.Changes)
	a0, r0, d0 := poolShares(w.tot0)
	a1, r1, d1 := poolShares(w.tot1)
	shares := float64((a1 + r1 + d1) - (a0 + r0 + d0))
	r.SharesPerS = shares / secs
	r.UpBytesPerShare = math.NaN()
	if shares > 0 {
		r.UpBytesPerShare = float64(w.tcp.BytesIn) / shares
	}
}

// fillShares writes the miners' summary and the pool's final counters into r.
func fillShares(r *Result, s minerSummary, tot poolsim.Totals) {
	a, rej, d := poolShares(tot)
	r.SharesSent = float64(s.SharesSent)
	r.PoolAccepted = float64(a)
	r.PoolRejected = float64(rej)
	r.PoolDropped = float64(d)
	r.SharesLost = float64(s.SharesSent) - float64(a) - float64(rej)
	r.MinerDisconnects = float64(s.Disconnects)
	r.MinerReconnects = float64(s.Reconnects)
	r.MinerErrors = float64(s.ProtocolErrors + s.AuthFailures)
	r.FanoutP50Ms = s.FanoutP50Ms
	r.FanoutP99Ms = s.FanoutP99Ms
	r.FanoutMaxMs = s.FanoutMaxMs
	r.FanoutKernelP50Ms, r.FanoutKernelP99Ms, r.FanoutKernelMaxMs = orNaN(s.FanoutKernelP50Ms), orNaN(s.FanoutKernelP99Ms), orNaN(s.FanoutKernelMaxMs)
	r.SubmitP50Ms = s.SubmitP50Ms
	r.SubmitP99Ms = s.SubmitP99Ms
}

// poolConfig is the workload's pool simulator (the load runs and the
// floor's notify size must describe the same jobs).
func poolConfig(o Options, log *logrus.Logger) poolsim.Config {
	return poolsim.Config{
		Listen:         "127.0.0.1:0",
		Validate:       poolsim.ValidateStructural,
		FixedDiff:      o.Diff,
		NotifyInterval: o.NotifyInterval,
		BlockEvery:     o.BlockEvery,
		Branches:       o.Branches,
		Logger:         log,
	}
}
