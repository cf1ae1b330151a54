//go:build measure

package minersim

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// This file measures the simulator itself: memory of N idle miners and the
// fan-out latency it reports. It needs thousands of descriptors and tens of
// seconds, so it is built only with the measure tag:
//
//	MINERSIM_MEASURE=10000 MINERSIM_TRANSPORT=nbio go test -tags measure -run TestMeasure -v ./sim/minersim/
//
// Optional: MINERSIM_INTERVAL=10s (fast-mode share interval, default idle),
// MINERSIM_HOLD=20s (run that long with traffic and report CPU),
// MINERSIM_HASH=<threads> with MINERSIM_DIFF=<difficulty> (hash mode).
//
// The Stratum side is this test binary re-executed as a responder process, so
// the miners' memory is measured alone and each process stays under the
// per-process descriptor limit.

func init() { responder = runResponder }

func TestMeasureFarm(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("MINERSIM_MEASURE"))
	if n <= 0 {
		t.Fatal("set MINERSIM_MEASURE=<miners> to measure the farm")
	}
	tr := os.Getenv("MINERSIM_TRANSPORT")
	if tr == "" {
		tr = TransportNbio
	}
	interval, _ := time.ParseDuration(os.Getenv("MINERSIM_INTERVAL"))
	if interval <= 0 {
		interval = time.Hour
	}
	hold, _ := time.ParseDuration(os.Getenv("MINERSIM_HOLD"))
	threads, _ := strconv.Atoi(os.Getenv("MINERSIM_HASH"))
	addr, jobs, stop := startResponder(t)
	defer stop()

	runtime.GC()
	debug.FreeOSMemory()
	rss0, g0 := residentBytes(), runtime.NumGoroutine()
	t0 := time.Now()
	sim, err := Start(context.Background(), Config{Target: addr, Miners: n, User: "m", Transport: tr,
		ShareInterval: interval, Hash: threads > 0, HashThreads: threads, JobTimestamp: HexStamp(testMarker)})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := sim.WaitFor(ctx, func(s *Summary) bool { return s.Authorized == n && s.Notifies >= int64(n) }); err != nil {
		t.Fatal(err)
	}
	connectTime := time.Since(t0)
	runtime.GC()
	debug.FreeOSMemory()
	rss1 := residentBytes()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%s: %d miners authorized in %v; RSS %.1f MB before, %.1f MB idle (%.0f B/miner); heap %.1f MB; goroutines %d -> %d",
		tr, n, connectTime.Round(time.Millisecond), float64(rss0)/1e6, float64(rss1)/1e6,
		float64(rss1-rss0)/float64(n), float64(ms.HeapInuse)/1e6, g0, runtime.NumGoroutine())

	cpu0, w0 := processCPU(), time.Now()
	for k := 2; k <= 6; k++ {
		jobs <- struct{}{}
		if err := sim.WaitFor(ctx, func(s *Summary) bool { return s.Notifies >= int64(k*n) }); err != nil {
			t.Fatal(err)
		}
	}
	cpu := (processCPU() - cpu0).Seconds()
	sum := sim.Stats()
	t.Logf("%s: 5 jobs fanned out: CPU %.3f s (%.1f µs per notify), wall %v; fan-out p50 %v p99 %v max %v; RSS %.1f MB",
		tr, cpu, cpu/float64(5*n)*1e6, time.Since(w0).Round(time.Millisecond),
		sum.FanoutP50, sum.FanoutP99, sum.FanoutMax, float64(sum.RSSBytes)/1e6)
	for _, j := range sum.Jobs[1:] {
		t.Logf("  job %s: %d miners, last arrival %v after the pool wrote it", j.JobID, j.Miners, j.Max)
	}
	if hold <= 0 {
		return
	}
	before := sim.Stats()
	cpu0, w0 = processCPU(), time.Now()
	holdCtx, holdCancel := context.WithTimeout(context.Background(), hold)
	defer holdCancel()
	// Waiting for a condition that never holds is the bounded way to let the
	// farm run for a while without sleeping.
	_ = sim.WaitFor(holdCtx, func(*Summary) bool { return false })
	wall := time.Since(w0).Seconds()
	after := sim.Stats()
	t.Logf("%s: %v with traffic: %.0f shares/s sent, %.0f accepted/s, %.2f MH/s, CPU %.3f cores, RSS %.1f MB, submit p50 %v p99 %v, unanswered %d",
		tr, hold, float64(after.SharesSent-before.SharesSent)/wall, float64(after.SharesAccepted-before.SharesAccepted)/wall,
		float64(after.Hashes-before.Hashes)/wall/1e6, (processCPU()-cpu0).Seconds()/wall, float64(after.RSSBytes)/1e6,
		after.SubmitP50, after.SubmitP99, after.SharesUnanswered)
}

// startResponder re-executes the test binary as a responder; a send on jobs
// makes it broadcast a new job to all its connections.
func startResponder(t *testing.T) (string, chan<- struct{}, func()) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), responderEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(stdout)
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatalf("responder: %v", err)
	}
	addr := strings.TrimSpace(strings.TrimPrefix(line, "ADDR "))
	jobs := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range jobs {
			if _, err := io.WriteString(stdin, "job\n"); err != nil {
				return
			}
		}
	}()
	return addr, jobs, func() {
		close(jobs)
		<-done
		_ = stdin.Close()
		_ = cmd.Wait()
	}
}

// runResponder is a minimal Stratum pool: it answers the handshake, sends a
// stamped job after authorize, accepts every share and broadcasts a new job
// for every "job" line on stdin. It exits when stdin closes.
func runResponder() int {
	if _, err := raiseFileLimit(); err != nil {
		fmt.Fprintln(os.Stderr, "responder:", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "responder:", err)
		return 1
	}
	fmt.Printf("ADDR %s\n", ln.Addr())
	var mu sync.Mutex
	conns := map[net.Conn]*sync.Mutex{}
	seq := 1
	mkJob := func() []byte {
		now := time.Now()
		n := &codec.Notify{
			JobID: strconv.Itoa(seq), PrevHash: strings.Repeat("00", 32),
			Coinb1:   string(AppendHexStamp([]byte("0100000001ffffffff20"), testMarker, now)),
			Coinb2:   "ffffffff0100000000",
			Branches: []string{strings.Repeat("11", 32), strings.Repeat("22", 32)},
			Version:  "20000000", NBits: "1d00ffff", NTime: fmt.Sprintf("%08x", now.Unix()), Clean: true,
		}
		return n.AppendLine(nil, "", true)
	}
	job := mkJob()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			mu.Lock()
			seq++
			job = mkJob()
			line := job
			targets := make(map[net.Conn]*sync.Mutex, len(conns))
			for c, w := range conns {
				targets[c] = w
			}
			mu.Unlock()
			for c, w := range targets {
				w.Lock()
				_, _ = c.Write(line)
				w.Unlock()
			}
		}
		_ = ln.Close()
	}()
	var en1 uint32
	for {
		c, err := ln.Accept()
		if err != nil {
			return 0
		}
		en1++
		go serveResponder(c, en1, &mu, conns, &job)
	}
}

func serveResponder(c net.Conn, en1 uint32, mu *sync.Mutex, conns map[net.Conn]*sync.Mutex, job *[]byte) {
	diff, err := strconv.ParseFloat(os.Getenv("MINERSIM_DIFF"), 64)
	if err != nil || diff <= 0 {
		diff = 1
	}
	defer c.Close()
	w := &sync.Mutex{}
	write := func(b []byte) {
		w.Lock()
		_, _ = c.Write(b)
		w.Unlock()
	}
	rd := codec.NewReader(c, 0, false)
	var r codec.Request
	for {
		ch, err := rd.Next()
		if err != nil {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			return
		}
		if codec.ScanRequest(ch.Line, &r) != nil {
			continue
		}
		switch string(r.Method) {
		case codec.MethodSubscribe:
			write(codec.AppendSubscribeResult(nil, r.ID, hex.EncodeToString([]byte{byte(en1 >> 24), byte(en1 >> 16), byte(en1 >> 8), byte(en1)}), 4))
		case codec.MethodAuthorize:
			write(codec.AppendTrue(nil, r.ID))
			mu.Lock()
			conns[c] = w
			line := *job
			mu.Unlock()
			write(codec.AppendSetDifficulty(nil, diff))
			write(line)
		case codec.MethodConfigure:
			write(codec.AppendResult(nil, r.ID, `{"version-rolling":true,"version-rolling.mask":"1fffe000"}`))
		default:
			write(codec.AppendTrue(nil, r.ID))
		}
	}
}
