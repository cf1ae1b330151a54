package agent_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Starting and stopping an agent many times in one process leaves nothing
// behind: Stop ends the event loop, the dispatch workers, the actor system
// and every link goroutine.
func TestStartStopLeavesNothingBehind(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	settle := func() (goroutines int, heap uint64) {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ours(), ms.HeapInuse
	}
	cycle := func() {
		cfg := testenv.Config(t, "farm", pool.Addr())
		a, err := agent.New(cfg, testenv.Logger(t), agent.Options{Socket: testenv.Socket})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Start(); err != nil {
			t.Fatal(err)
		}
		if err := a.WaitReady(testenv.Ctx(t), cfg.Upstream.Connections); err != nil {
			t.Fatal(err)
		}
		a.Stop()
	}
	cycle() // first use initialises package-level state (pools, registries)
	g0, h0 := settle()
	const cycles = 10
	for i := 0; i < cycles; i++ {
		cycle()
	}
	// Goroutines wind down asynchronously after Stop (a link reader sees
	// its socket closed): wait for them, bounded.
	var g, h = settle()
	for deadline := time.Now().Add(10 * time.Second); g > g0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // nothing to await: the runtime has no goroutine-exit event
		g, h = settle()
	}
	if g > g0 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after %d start/stop cycles, %d before\n%s", g, cycles, g0, buf[:runtime.Stack(buf, true)])
	}
	if h > h0+4<<20 {
		t.Fatalf("heap in use grew from %d to %d bytes over %d cycles", h0, h, cycles)
	}
}

// ours counts goroutines, leaving out protoactor's dead-letter log
// throttle: it is started by the first dead letter of a period (a link
// reader reporting to a slot that has stopped) and exits by itself after
// the throttle interval, whatever Shutdown does.
func ours() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "NewDeadLetter.NewThrottle") {
			n++
		}
	}
	return n
}
