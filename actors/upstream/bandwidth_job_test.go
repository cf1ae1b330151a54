//go:build measure

package upstream_test

import (
	"fmt"
	"os"
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

// TestUpstreamBytesPerShareAndJob measures what one share and one job cost
// on the pool link in each upstream protocol, the two SV2 ones included.
// It is a measurement, not a check, built only with the measure tag:
//
//	go test -tags measure -run UpstreamBytesPerShareAndJob -v -timeout 20m ./actors/upstream/
//
// Optional: BTCAGENT_UPSTREAM_BENCH_MINERS (default 1000),
// BTCAGENT_UPSTREAM_BENCH_SHARES (shares per miner, default 5).
//
// Per mode, everything in this process on 127.0.0.1: poolsim with
// structural validation, fixed difficulty 16384, 12 merkle branches, no
// periodic jobs; the agent with its defaults (2 pool links, flush window
// 20 ms, no subres); N fast-mode miners with version rolling. Bytes are the
// pool's counters of what crossed its sockets (SV2: ciphertext, tags
// included). Shares: every miner sends its shares (one a second ± 20 %) and
// the window ends when all are answered. Jobs: then, with no share in
// flight, the pool publishes 5 jobs of the current block and 5 new blocks,
// each window ending when every miner has the job.
func TestUpstreamBytesPerShareAndJob(t *testing.T) {
	miners := envInt("BTCAGENT_UPSTREAM_BENCH_MINERS", 1000)
	per := envInt("BTCAGENT_UPSTREAM_BENCH_SHARES", 5)
	rows := []string{"| protocol | pool conns | shares | up B/share | down B/share | down B/job | down B/new block |",
		"|---|---:|---:|---:|---:|---:|---:|"}
	for _, proto := range []string{config.ProtocolAgent, config.ProtocolStratum, config.ProtocolStratumPerMiner, config.ProtocolSV2, config.ProtocolSV2PerMiner} {
		r := measurePerShareAndJob(t, proto, miners, per)
		rows = append(rows, r)
		t.Log(r)
	}
	fmt.Println(strings.Join(rows, "\n"))
}

// quiet waits until the pool's byte counters stop moving (a measurement
// boundary, not synchronisation: nothing is waiting for these bytes).
func quiet(t *testing.T, p *poolsim.Pool) sample {
	t.Helper()
	last := takeSample(p)
	for i := 0; i < 100; i++ {
		time.Sleep(200 * time.Millisecond)
		s := takeSample(p)
		if s.in == last.in && s.out == last.out {
			return s
		}
		last = s
	}
	t.Fatal("pool traffic never settled")
	return last
}

func measurePerShareAndJob(t *testing.T, proto string, n, per int) string {
	cfgPool := poolsim.Config{Validate: poolsim.ValidateStructural, FixedDiff: 16384, Branches: 12, EN2Size: 8}
	sv2 := proto == config.ProtocolSV2 || proto == config.ProtocolSV2PerMiner
	if sv2 {
		cfgPool.SV2Listen = "127.0.0.1:0"
	}
	pool := testenv.Pool(t, cfgPool)
	cfg := withProtocols(testenv.Config(t, "farm", pool.Addr()), proto)
	if sv2 {
		cfg.Listen[0].Pools[0] = sv2Entry(t, pool, proto)
	}
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
	conns := cfg.Listen[0].Connections
	if err := a.WaitReady(ctx, conns); err != nil {
		t.Fatal(err)
	}
	sim, err := minersim.Start(ctx, minersim.Config{Target: testenv.Addr(a), Miners: n, User: "john", VersionRolling: true,
		ShareInterval: time.Second, MaxSharesPerMiner: per, ConnectRate: 2000, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers >= registered(proto, n, conns) }); err != nil {
		t.Fatalf("%s: pool workers: %v (%d)", proto, err, pool.Stats().Totals.RegisteredWorkers)
	}
	// Shares: from the last registration to the last verdict. Miners that
	// registered early may have sent a share or two before s0: count the
	// pool's shares, not the miners'.
	s0 := takeSample(pool)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= int64(n*per) }); err != nil {
		t.Fatalf("%s: shares: %v", proto, err)
	}
	s1 := quiet(t, pool)
	shares := s1.shares - s0.shares
	upShare := float64(s1.in-s0.in) / float64(shares)
	downShare := float64(s1.out-s0.out) / float64(shares)

	jobs := func(clean bool) float64 {
		const k = 5
		j0 := quiet(t, pool)
		for i := 0; i < k; i++ {
			before := sim.Stats().Notifies
			pool.NewJob(clean)
			if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.Notifies >= before+int64(n) }); err != nil {
				t.Fatalf("%s: job %d not delivered: %v", proto, i, err)
			}
		}
		j1 := quiet(t, pool)
		return float64(j1.out-j0.out) / k
	}
	job, block := jobs(false), jobs(true)
	return fmt.Sprintf("| `%s` | %d | %d | %.1f | %.1f | %.0f | %.0f |", proto, len(pool.Stats().Conns), shares, upShare, downShare, job, block)
}
