package minersim

import (
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// benchNotifyLine is a job as the agent broadcasts it in the reference
// workload: 12 merkle branches (~1.4 KB), coinb1 stamped in the HexStamp
// format, coinb1 suffixed with the agent's upstream extranonce1.
func benchNotifyLine(b testing.TB, written time.Time) []byte {
	b.Helper()
	branches := make([]string, 12)
	for i := range branches {
		branches[i] = strings.Repeat(fmt.Sprintf("%02x", 0x10+i), 32)
	}
	n := &codec.Notify{
		JobID:    "1a2b",
		PrevHash: strings.Repeat("ab", 32),
		Coinb1:   string(AppendHexStamp([]byte("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff3f03a1b20c"), testMarker, written)),
		Coinb2: "0b2f737475622d706f6f6c2fffffffff03205fa01200000000160014" + strings.Repeat("9a", 20) +
			"205fa01200000000160014" + strings.Repeat("9b", 20) +
			"0000000000000000266a24aa21a9ed" + strings.Repeat("cd", 32) + "00000000",
		Branches: branches,
		Version:  "20000000",
		NBits:    "1703a30c",
		NTime:    "6650e1a0",
	}
	line := n.AppendLine(nil, "f000000f", true)
	if len(line) < 1350 {
		b.Fatalf("notify line is %d bytes, want the ~1.4 KB of the reference workload", len(line))
	}
	return line
}

// benchMiner is an authorized fast-mode miner in steady state (its share
// timer armed, a job already received), on a Sim that is not running: what
// onData does per notify, without sockets.
func benchMiner(b testing.TB) (*miner, *link) {
	b.Helper()
	cfg, err := Config{Target: "127.0.0.1:1", Miners: 1, User: "bench", JobTimestamp: HexStamp(testMarker)}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, start: time.Now(), changes: newChanges(), rejects: map[int]int64{}}
	s.sched = newScheduler(s.start)
	m := &miner{s: s, name: "bench.w000"}
	l := &link{m: m, gen: 1, counted: true, gotJob: true}
	m.link, m.linkGen = l, 1
	m.subscribed, m.authorized, m.hasJob, m.shareArmed = true, true, true, true
	m.en1, m.en2Size = []byte{0xf0, 0, 0, 0x0f}, 4
	return m, l
}

// BenchmarkNotify is the simulator's cost per mining.notify received,
// transport excluded: split, scan, job bookkeeping, fan-out sample.
func BenchmarkNotify(b *testing.B) {
	m, l := benchMiner(b)
	line := benchNotifyLine(b, time.Now())
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	now := time.Now()
	for b.Loop() {
		m.onData(l, line, arrival{now: now})
	}
	b.StopTimer()
	s := m.s
	if s.protocolErrors.Load() != 0 || s.notifies.Load() < int64(b.N) || s.fanout.n.Load() < int64(b.N) {
		b.Fatalf("protocol errors %d, notifies %d, fan-out samples %d after %d notifies",
			s.protocolErrors.Load(), s.notifies.Load(), s.fanout.n.Load(), b.N)
	}
}

// BenchmarkTransportFanout is a job broadcast as the simulator sees it: a
// notify written to each of 1,000 sockets, read by the transport and handled
// by the miners. One op is one notify received; cpu-ns/notify is this
// process's CPU (the writing side included, the same for every transport).
func BenchmarkTransportFanout(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr, func(b *testing.B) { benchTransportFanout(b, tr, 1000) })
	}
}

func benchTransportFanout(b *testing.B, tr string, n int) {
	if _, err := raiseFileLimit(); err != nil {
		b.Skip(err)
	}
	cfg, err := Config{Target: "127.0.0.1:1", Miners: n, User: "bench", Transport: tr, JobTimestamp: HexStamp(testMarker)}.withDefaults()
	if err != nil {
		b.Fatal(err)
	}
	s := &Sim{cfg: cfg, log: cfg.Logger, start: time.Now(), changes: newChanges(), rejects: map[int]int64{}}
	s.sched = newScheduler(s.start)
	switch tr {
	case TransportNetio:
		// As cmd/minersim runs it: the loop keeps its P while it waits, so
		// the writer here gets one of its own.
		if runtime.GOOS == "linux" {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1))
		}
		s.tr, err = newNetioTransport(1, cfg.KernelArrival, cfg.Logger)
	case TransportNbio:
		s.tr, err = newNbioTransport(1)
	default:
		s.tr = &goroutineTransport{}
	}
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	peers := make([]net.Conn, 0, n)
	defer func() {
		s.stopping.Store(true)
		for _, m := range s.miners {
			m.mu.Lock()
			if m.link != nil {
				m.dropLocked(m.link, dropStop, nil)
			}
			m.mu.Unlock()
		}
		s.tr.stop()
		for _, p := range peers {
			_ = p.Close()
		}
	}()
	for i := range n {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		peer, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		peers = append(peers, peer)
		m := &miner{s: s, idx: int32(i), name: WorkerName("bench", "w", n, i)}
		s.miners = append(s.miners, m)
		l := &link{m: m, gen: 1, counted: true, gotJob: true, nc: nc}
		if err := s.tr.attach(l); err != nil {
			b.Fatal(err)
		}
		m.mu.Lock()
		m.link, m.linkGen = l, 1
		m.subscribed, m.authorized, m.hasJob, m.shareArmed = true, true, true, true
		m.mu.Unlock()
	}
	line := benchNotifyLine(b, time.Now())

	s.changes.waiters.Add(1)
	defer s.changes.waiters.Add(-1)
	rounds := (b.N + n - 1) / n
	cpu0 := processCPU()
	b.ResetTimer()
	for r := 1; r <= rounds; r++ {
		for _, p := range peers {
			if _, err := p.Write(line); err != nil {
				b.Fatal(err)
			}
		}
		want := int64(r * n)
		deadline := time.After(30 * time.Second)
		for s.notifies.Load() < want {
			ch := s.changes.wait()
			if s.notifies.Load() >= want {
				break
			}
			select {
			case <-ch:
			case <-deadline:
				b.Fatalf("%d of %d notifies after 30 s", s.notifies.Load(), want)
			}
		}
	}
	b.StopTimer()
	got := s.notifies.Load()
	// One op is one notify: scale the elapsed time from rounds×n to b.N.
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/notify")
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(got), "cpu-ns/notify")
	if pe := s.protocolErrors.Load(); pe != 0 || s.fanout.n.Load() != got {
		b.Fatalf("protocol errors %d, fan-out samples %d of %d notifies", pe, s.fanout.n.Load(), got)
	}
}
