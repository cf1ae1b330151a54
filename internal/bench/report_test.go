package bench

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func TestDiffTCP(t *testing.T) {
	a := []poolsim.ConnTCP{
		{ID: 1, Agent: true, SegsIn: 100, SegsOut: 50, DataSegsIn: 90, DataSegsOut: 10, BytesReceived: 1000, BytesAcked: 500},
		{ID: 2, Agent: true, SegsIn: 10, BytesReceived: 100},
		{ID: 3, Agent: false, SegsIn: 7}, // a plain miner at the pool: not the agent link
	}
	b := []poolsim.ConnTCP{
		{ID: 1, Agent: true, SegsIn: 160, SegsOut: 70, DataSegsIn: 140, DataSegsOut: 12, BytesReceived: 2000, BytesAcked: 900},
		{ID: 4, Agent: true, SegsIn: 5, BytesReceived: 40}, // opened during the window
		{ID: 3, Agent: false, SegsIn: 700},
	}
	d := DiffTCP(a, b)
	want := TCPDelta{SegsIn: 65, SegsOut: 20, DataSegsIn: 50, DataSegsOut: 2, BytesIn: 1040, BytesOut: 400, Changes: 2}
	if d != want {
		t.Fatalf("got %+v\nwant %+v", d, want)
	}
}

func TestJobsWritten(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	recs := []JobRecord{
		// One pool job seen through two agent links.
		{JobID: "1.5", Written: t0.Add(30 * time.Second), Stamped: true, Miners: 600, MaxMs: 12},
		{JobID: "2.5", Written: t0.Add(30 * time.Second), Stamped: true, Miners: 400, MaxMs: 17},
		{JobID: "1.4", Written: t0, Stamped: true, Miners: 1000, MaxMs: 99},                        // before the window
		{JobID: "1.6", Written: t0.Add(60 * time.Second), Stamped: false, Miners: 1000, MaxMs: 50}, // no stamp
		{JobID: "1.7", Written: t0.Add(50 * time.Second), Stamped: true, Miners: 1000, MaxMs: 8},
	}
	jobs := JobsWritten(recs, t0.Add(time.Second), t0.Add(90*time.Second))
	if len(jobs) != 2 {
		t.Fatalf("got %d jobs, want 2: %+v", len(jobs), jobs)
	}
	if jobs[0].Miners != 1000 || jobs[0].LastMs != 17 || !jobs[0].Written.Equal(t0.Add(30*time.Second)) {
		t.Errorf("first job %+v", jobs[0])
	}
	if jobs[1].LastMs != 8 {
		t.Errorf("second job %+v", jobs[1])
	}
}

func TestResultJSONNaN(t *testing.T) {
	r := Result{Miners: 1000, AgentRSSMiB: 21.5, UpBytesPerShare: math.NaN(), JobLastMaxMs: math.NaN()}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.Contains(s, `"up_bytes_per_share":null`) || !strings.Contains(s, `"job_last_max_ms":null`) {
		t.Fatalf("NaN not written as null: %s", s)
	}
	// The null replacement must not touch a key that merely ends the same way.
	if !strings.Contains(s, `"up_bytes_per_s":0`) {
		t.Fatalf("neighbouring key changed: %s", s)
	}
	var back Result
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.Miners != 1000 || back.AgentRSSMiB != 21.5 || !math.IsNaN(back.UpBytesPerShare) || back.UpBytesPerS != 0 {
		t.Fatalf("round trip gave %+v", back)
	}
}

func entry(miners int, rss float64, m Machine) Entry {
	r := Result{Miners: miners, Connections: 2, FlushMs: 20, AgentRSSMiB: rss, AgentHWMMiB: rss + 4, AgentCPU: 0.03,
		UpSegsPerS: 80, FanoutP99Ms: 25, SharesLost: 0, JobsInWindow: 4, JobMinersMin: float64(miners),
		UpBytesPerShare: math.NaN(), JobLastP50Ms: math.NaN(), JobLastMaxMs: math.NaN(),
		AgentFanoutP50Ms: math.NaN(), AgentFanoutMaxMs: math.NaN(), AgentFanoutJobs: math.NaN(),
		FanoutKernelP50Ms: math.NaN(), FanoutKernelP99Ms: math.NaN(), FanoutKernelMaxMs: math.NaN()}
	r.setFloor(nil) // as in a run with -floor=false
	r.setFloorRatios()
	return NewEntry([]Result{r}, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC), "agentbench -miners x", m, BinaryInfo{Revision: "0123456789abcdef"})
}

func TestDBAddAndGrowth(t *testing.T) {
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Kernel: "6.1", GoVersion: "go1.26"}
	var db DB
	db.Add(entry(10000, 30, m))
	db.Add(entry(1000, 12, m))
	db.Add(entry(10000, 31, m)) // replaces the first
	if len(db.Entries) != 2 || db.Entries[0].Result.Miners != 1000 || db.Entries[1].Result.AgentRSSMiB != 31 {
		t.Fatalf("entries %+v", db.Entries)
	}
	if g := Growth(db.Entries[0], db.Entries[1]); math.Abs(g-19*1024/9000.0) > 1e-9 {
		t.Errorf("growth %v", g)
	}
	other := m
	other.Cores = 8
	if g := Growth(db.Entries[0], entry(10000, 31, other)); !math.IsNaN(g) {
		t.Errorf("growth across machines should not be computed, got %v", g)
	}

	path := filepath.Join(t.TempDir(), "r.json")
	if err := SaveDB(path, db); err != nil {
		t.Fatal(err)
	}
	back, err := LoadDB(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Entries) != 2 || !math.IsNaN(back.Entries[0].Result.UpBytesPerShare) {
		t.Fatalf("reloaded %+v", back.Entries)
	}
	if empty, err := LoadDB(filepath.Join(t.TempDir(), "missing.json")); err != nil || len(empty.Entries) != 0 {
		t.Fatalf("missing file: %v %+v", err, empty)
	}
}

func TestRenderMarkdown(t *testing.T) {
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Kernel: "6.1", GoVersion: "go1.26"}
	db := DB{}
	db.Add(entry(1000, 12, m))
	big := entry(10000, 33, m) // misses the 32 MB target
	db.Add(big)
	db.AddSoak(SoakEntry{Date: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC), Command: "agentbench -soak 30m", Machine: m,
		Result: SoakResult{Miners: 10000, DurationS: 1800, PoolRestarts: 6, ChurnCycles: 30, ChurnMiners: 100, RSSFirstMiB: 30, RSSLastMiB: 31}})
	md := RenderMarkdown(db)
	for _, want := range []string{
		"- **M1**: Test CPU, 2 cores, linux 6.1, go1.26",
		"| 1,000 | 1 | 2026-11-25 | M1 | 2 × 20ms | 12.0 |",
		"#### Against the reference figures (10,000 miners)",
		"| RSS, steady | 36 MB | 326 MB | ≤ 32 MB | 33.0 MiB | ❌ |",
		"| CPU | 0.045 core | 0.10 core | ≤ 0.04 core | 0.030 core | ✅ |",
		"| growth per extra miner | – | – | ≤ 2.5 KB | 2.39 KiB | ✅ |",
		"1,000 → 10,000 miners: 2.39 KiB",
		"agent 0123456789ab: `agentbench -miners x`",
		"#### Soak runs",
		"| 2026-11-25 | M1 | 10,000 | 30.0 | 6 | 30 × 100 | 30.0 → 31.0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "NaN") {
		t.Errorf("NaN leaked into the markdown:\n%s", md)
	}
}

func TestSpliceSection(t *testing.T) {
	got, err := SpliceSection("", "rows v1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "# Benchmarks\n\n## Results\n\n"+MarkBegin) || !strings.Contains(got, "rows v1") {
		t.Fatalf("new file:\n%s", got)
	}
	doc := "# Benchmarks\n\nprose before\n\n" + MarkBegin + "\nold rows\n" + MarkEnd + "\n\nprose after\n"
	got, err = SpliceSection(doc, "new rows\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nprose before\n\n" + MarkBegin + "\n\nnew rows\n\n" + MarkEnd + "\n\nprose after\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	// Idempotent: splicing the same section again changes nothing.
	again, _ := SpliceSection(got, "new rows\n")
	if again != got {
		t.Fatalf("second splice changed the document:\n%s", again)
	}
	if _, err := SpliceSection(MarkEnd+"\n"+MarkBegin, "x"); err == nil {
		t.Error("reversed markers accepted")
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		v      float64
		digits int
		want   string
	}{
		{math.NaN(), 1, "–"}, {12.345, 1, "12.3"}, {120345, 0, "120,345"}, {-12000, 0, "-12,000"}, {999, 0, "999"}, {1000, 0, "1,000"}, {1001.94, 1, "1,001.9"}, {-0.5, 2, "-0.50"},
	} {
		if got := format(c.v, c.digits); got != c.want {
			t.Errorf("format(%v, %d) = %q, want %q", c.v, c.digits, got, c.want)
		}
	}
}

func TestRenderMarkdownFloor(t *testing.T) {
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Kernel: "6.1", GoVersion: "go1.26"}
	plain := entry(1000, 12, m)
	if md := RenderMarkdown(DB{Entries: []Entry{plain}}); strings.Contains(md, "broadcast floor") {
		t.Errorf("floor table without a floor or the agent's record:\n%s", md)
	}
	e := entry(10000, 30, m)
	e.Result.Floor = &Floor{Conns: 10000, Bytes: 1324, Rounds: 7, Runs: []FloorRun{{Writers: 2, MedianMs: 20, MinMs: 18, MaxMs: 30, DrainedMs: []float64{24, 25, 26}, DrainedMedianMs: 25}, {Writers: 1, MedianMs: 35}}}
	e.Result.setFloor(e.Result.Floor)
	e.Result.AgentFanoutP50Ms, e.Result.AgentFanoutMaxMs, e.Result.AgentFanoutJobs = 22, 24, 4
	e.Result.FanoutKernelP99Ms = 23
	e.Result.setFloorRatios()
	md := RenderMarkdown(DB{Entries: []Entry{plain, e}})
	for _, want := range []string{
		"#### Fan-out: the agent's own account, and this machine's broadcast floor",
		"| miners | floor write B | floor rounds | floor ms | floor min ms | floor max ms | floor 1w ms | floor drained ms | floor write errors | fan-out p99 ms | fan-out (kernel) p99 ms | agent fan-out p50 ms | agent fan-out max ms | agent jobs | fan-out p99/floor | fan-out p99/floor drained | fan-out (kernel) p99/floor | agent max/floor |",
		"| 1,000 | – | – | – | – | – | – | – | – | 25.0 | – | – |",
		"| 10,000 | 1,324 | 7 | 20.0 | 18.0 | 30.0 | 35.0 | 25.0 | 0 | 25.0 | 23.0 | 22.0 | 24.0 | 4 | 1.25 | 1.00 | 1.15 | 1.20 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
}

// The harness reads minersim's JSON summary: the kernel-arrival figures
// come through when minersim measured them and read as "not measured"
// (NaN) when it did not, never as 0 ms.
func TestFillSharesReadsMinersimKernelArrival(t *testing.T) {
	for _, measured := range []bool{true, false} {
		sum := minersim.Summary{FanoutP99: 90 * time.Millisecond, FanoutSamples: 10}
		if measured {
			sum.FanoutKernelP50, sum.FanoutKernelP99, sum.FanoutKernelMax, sum.FanoutKernelSamples = 40*time.Millisecond, 70*time.Millisecond, 75*time.Millisecond, 10
		}
		data, err := json.Marshal(sum)
		if err != nil {
			t.Fatal(err)
		}
		var ms minerSummary
		if err := json.Unmarshal(data, &ms); err != nil {
			t.Fatal(err)
		}
		var r Result
		fillShares(&r, ms, poolsim.Totals{})
		r.FloorMs = 50
		r.setFloorRatios()
		if r.FanoutP99Ms != 90 {
			t.Errorf("measured=%v: fan-out p99 %v, want 90", measured, r.FanoutP99Ms)
		}
		if measured {
			if r.FanoutKernelP50Ms != 40 || r.FanoutKernelP99Ms != 70 || r.FanoutKernelMaxMs != 75 || r.FanoutKernelP99PerFloor != 1.4 {
				t.Errorf("kernel p50 %v p99 %v max %v, p99/floor %v", r.FanoutKernelP50Ms, r.FanoutKernelP99Ms, r.FanoutKernelMaxMs, r.FanoutKernelP99PerFloor)
			}
		} else if !math.IsNaN(r.FanoutKernelP99Ms) || !math.IsNaN(r.FanoutKernelMaxMs) || !math.IsNaN(r.FanoutKernelP99PerFloor) {
			t.Errorf("not measured, yet kernel p99 %v max %v, p99/floor %v", r.FanoutKernelP99Ms, r.FanoutKernelMaxMs, r.FanoutKernelP99PerFloor)
		}
	}
}
