//go:build measure

package upstream_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// TestUpstreamModeBandwidth measures the pool link's traffic in the three
// upstream protocols under the same farm workload. It is a measurement, not
// a check, and is built only with the measure tag:
//
//	go test -tags measure -run UpstreamModeBandwidth -v -timeout 20m ./actors/upstream/
//
// Optional: BTCAGENT_UPSTREAM_BENCH_MINERS (default 1000),
// BTCAGENT_UPSTREAM_BENCH_WINDOW (default 60s; a multiple of the 30 s job
// period), BTCAGENT_UPSTREAM_BENCH_OUT (append the markdown rows to this
// file).
//
// Workload per mode, everything in this process on 127.0.0.1: poolsim with
// structural validation, fixed difficulty 16384, 12 merkle branches (1,314
// byte notify), a new job every 30 s; the agent with its
// defaults (2 pool links, flush window 20 ms, no subres); N fast-mode
// miners with version rolling, one share per 10 s ± 20 % each. After every
// miner is authorized and served at the pool and 5 s of settling, the pool's
// byte counters (application bytes, both directions, all connections) and
// the kernel's TCP segment counters are read at the start and end of the
// window, which starts half a job period after a job: every window holds
// the same number of jobs.
func TestUpstreamModeBandwidth(t *testing.T) {
	miners := envInt("BTCAGENT_UPSTREAM_BENCH_MINERS", 1000)
	window := 60 * time.Second
	if v := os.Getenv("BTCAGENT_UPSTREAM_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatal(err)
		}
		window = d
	}
	var rows []string
	for _, proto := range []string{config.ProtocolAgent, config.ProtocolStratum, config.ProtocolStratumPerMiner} {
		r := measureMode(t, proto, miners, window)
		rows = append(rows, r)
		t.Log(r)
	}
	header := "| protocol | miners | pool conns | jobs | shares | app bytes up | app bytes down | total kB/min | bytes/share (up) | TCP data segs (up+down) | est. wire kB/min | goroutines added | heap added MB |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	out := header + "\n" + strings.Join(rows, "\n") + "\n"
	fmt.Println(out)
	if f := os.Getenv("BTCAGENT_UPSTREAM_BENCH_OUT"); f != "" {
		fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		fmt.Fprintf(fh, "<!-- %s, window %s, GOMAXPROCS %d -->\n%s", time.Now().UTC().Format(time.RFC3339), window, runtime.GOMAXPROCS(0), out)
	}
}

func envInt(k string, d int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return d
}

type sample struct {
	in, out, segs uint64
	shares        uint64
}

func takeSample(p *poolsim.Pool) sample {
	st := p.Stats()
	var segs uint64
	for _, c := range p.TCPInfo() {
		segs += c.DataSegsIn + c.DataSegsOut
	}
	n := st.Totals.Accepted + poolRejected(&st)
	return sample{in: st.Totals.BytesIn, out: st.Totals.BytesOut, segs: segs, shares: n}
}

func measureMode(t *testing.T, proto string, n int, window time.Duration) string {
	const period = 30 * time.Second
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural, FixedDiff: 16384, Branches: 12, EN2Size: 8, NotifyInterval: period})
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), proto)
	cfg.Upstream.FlushInterval = 20 * time.Millisecond // the shipped default
	cfg.Upstream.ReconnectMin, cfg.Upstream.ReconnectMax = time.Second, time.Minute
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	log.SetOutput(os.Stderr)
	a, err := agent.New(cfg, log, agent.Options{Socket: testenv.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	ctx := testenv.Ctx(t)
	if err := a.WaitReady(ctx, cfg.Listen[0].Connections); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)
	g0 := runtime.NumGoroutine()
	sim, err := minersim.Start(ctx, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", VersionRolling: true,
		ShareInterval: 10 * time.Second, ConnectRate: 2000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Authorized == n }); err != nil {
		t.Fatalf("%s: miners not authorized: %v", proto, err)
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.RegisteredWorkers >= registered(proto, n, cfg.Listen[0].Connections)
	}); err != nil {
		t.Fatalf("%s: pool workers: %v (%d)", proto, err, pool.Stats().Totals.RegisteredWorkers)
	}
	time.Sleep(5 * time.Second) // settle (a measurement, not synchronisation)
	// The miners' simulator and the pool share this process: their cost is
	// the same in every mode, so the differences are the agent's.
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	g1 := runtime.NumGoroutine()

	seq := pool.Stats().Job.Seq
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Job.Seq > seq }); err != nil {
		t.Fatal(err)
	}
	time.Sleep(period / 2)
	s0 := takeSample(pool)
	seq = pool.Stats().Job.Seq
	start := time.Now()
	time.Sleep(window)
	s1 := takeSample(pool)
	jobs := pool.Stats().Job.Seq - seq
	el := time.Since(start)

	conns := len(pool.Stats().Conns)
	// Goroutines added for the miners, without the pool simulator's own
	// (one per pool connection); the miner simulator's are the same in
	// every mode.
	goroutines := (g1 - g0) - (conns - cfg.Listen[0].Connections)
	up, down := s1.in-s0.in, s1.out-s0.out
	shares := s1.shares - s0.shares
	perMin := func(b uint64) float64 { return float64(b) / el.Minutes() }
	perShare := 0.0
	if shares > 0 {
		perShare = float64(up) / float64(shares)
	}
	segs := s1.segs - s0.segs
	// IPv4 + TCP with timestamps: 52 bytes per segment; ACK-only segments
	// are left out (they are not counted in data segments).
	wire := float64(up+down) + 52*float64(segs)
	heap := (float64(m1.HeapInuse) - float64(m0.HeapInuse)) / (1 << 20)
	return fmt.Sprintf("| %s | %d | %d | %d | %d | %d | %d | %.1f | %.1f | %d | %.1f | %d | %.1f |",
		proto, n, conns, jobs, shares, up, down, perMin(up+down)/1000, perShare, segs, wire/el.Minutes()/1000, goroutines, heap)
}

func registered(proto string, n, conns int) int {
	switch proto {
	case config.ProtocolStratum, config.ProtocolSV2:
		return conns
	case config.ProtocolStratumPerMiner, config.ProtocolSV2PerMiner:
		return n + conns
	}
	return n
}
