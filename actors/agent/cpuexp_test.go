package agent_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestCPUExperiment is an A/B measurement, not a pass/fail test: CPUEXP=pool
// or CPUEXP=inline runs 20,000 shares from 2,000 raw miners and logs the
// process CPU per share for each session dispatcher.
func TestCPUExperiment(t *testing.T) {
	if os.Getenv("CPUEXP") == "" {
		t.Skip()
	}
	const n = 2000
	pool := testenv.Pool(t, poolsim.Config{NotifyInterval: time.Hour, Branches: 12, Validate: "structural", FixedDiff: 1024})
	a := testenv.Agent(t, testenv.Config(t, "farm", pool.Addr()), agent.Options{PooledSessions: os.Getenv("CPUEXP") == "pool"})
	conns := make([]net.Conn, n)
	jobs := make([]string, n)
	for i := range conns {
		m := testenv.Dial(t, testenv.Addr(a))
		_, notify, _ := m.Login(fmt.Sprintf("john.w%05d", i), false)
		conns[i] = m.Conn()
		jobs[i] = notify.Str(0)
	}
	ctx := testenv.Ctx(t)
	pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers >= n })
	ntime := pool.CurrentJob().NTime
	base := pool.Stats().Totals.Accepted
	c0 := cpuNow()
	const shares = 20000
	for i := 0; i < shares; i++ {
		fmt.Fprintf(conns[i%n], "{\"id\":%d,\"method\":\"mining.submit\",\"params\":[\"john.w\",\"%s\",\"%08x\",\"%s\",\"%08x\"]}\n", i, jobs[i%n], i, ntime, i)
		if i%200 == 199 {
			time.Sleep(100 * time.Millisecond) // pace: ~2,000 shares/s
		}
	}
	pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= base+shares })
	cpu := cpuNow() - c0
	t.Logf("%s: %d shares, process CPU %v = %.1f µs per share (incl. client and pool)", os.Getenv("CPUEXP"), shares, cpu, float64(cpu.Microseconds())/shares)
	_ = strings.TrimSpace
}
