package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRatioOf(t *testing.T) {
	for _, c := range []struct {
		ours, ref, want float64
	}{
		{0.03, 0.06, 0.5},
		{90, 900, 0.1},
		{5, 0, math.NaN()}, // no ratio against zero
		{0, 0, math.NaN()},
		{math.NaN(), 1, math.NaN()},
		{1, math.NaN(), math.NaN()},
	} {
		got := RatioOf(c.ours, c.ref)
		if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-c.want) > 1e-12) {
			t.Errorf("RatioOf(%v, %v) = %v, want %v", c.ours, c.ref, got, c.want)
		}
	}
}

// side builds one run of a comparison side.
func sideRun(cpu, rss, segs, p99, lost, other float64, links int) Result {
	return Result{Miners: 10000, Connections: links, AgentCPU: cpu, AgentRSSMiB: rss, UpSegsPerS: segs, FanoutP99Ms: p99,
		SharesLost: lost, OtherCPU: other, SharesPerS: 1000, JobsInWindow: 4, JobMinersMin: 10000,
		UpBytesPerShare: 20, JobLastMaxMs: math.NaN()}
}

func testComparison() Comparison {
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Kernel: "6.1", GoVersion: "go1.26"}
	ours := CompareSide{Kind: KindGo, Label: "this agent", Build: BinaryInfo{Revision: "0123456789abcdef"}, Raw: []Result{
		sideRun(0.02, 20, 80, 30, 0, 0.05, 2),
		sideRun(0.04, 22, 100, 50, 3, 0.05, 2), // lost is a maximum, not a median
	}}
	ref := CompareSide{Kind: KindCpp, Build: BinaryInfo{Revision: "d61642c"}, Raw: []Result{
		sideRun(0.06, 36, 900, 170, 0, 0.50, 5), // the machine was busier during this one
		sideRun(0.06, 36, 920, 150, 0, 0.05, 5),
	}}
	return NewComparison(ours, ref, []string{SideOurs, SideRef, SideRef, SideOurs},
		time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC), "agentbench -miners 10000 -ref x", m)
}

func ratioByKey(t *testing.T, c Comparison, key string) Ratio {
	t.Helper()
	for _, r := range c.Ratios {
		if r.Key == key {
			return r
		}
	}
	t.Fatalf("no ratio %q in %+v", key, c.Ratios)
	return Ratio{}
}

func TestNewComparison(t *testing.T) {
	c := testComparison()
	if c.Miners != 10000 || c.Runs != 2 || c.Ours.Result.AgentCPU != 0.03 || c.Ref.Result.AgentRSSMiB != 36 {
		t.Fatalf("summaries: %+v", c)
	}
	for _, w := range []struct {
		key             string
		ours, ref, want float64
	}{
		{"agent_cpu", 0.03, 0.06, 0.5},                          // ratio of the medians
		{"agent_rss_mib", 21, 36, 21.0 / 36},                    //
		{"up_segs_per_s", 90, 910, 90.0 / 910},                  //
		{"fanout_p99_ms", 40, 160, 0.25},                        //
		{"shares_lost", 3, 0, math.NaN()},                       // maxima; no ratio against 0
		{"other_cpu", 0.05, 0.5, math.NaN()},                    // context row: maxima, never a ratio
		{"up_bytes_per_share", 20, 20, 1},                       //
		{"job_last_max_ms", math.NaN(), math.NaN(), math.NaN()}, // not measured
	} {
		r := ratioByKey(t, c, w.key)
		same := func(a, b float64) bool { return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-12 }
		if !same(r.Ours, w.ours) || !same(r.Ref, w.ref) || !same(r.Ratio, w.want) {
			t.Errorf("%s: got %+v, want ours %v ref %v ratio %v", w.key, r, w.ours, w.ref, w.want)
		}
	}
	notes := strings.Join(c.Notes, "\n")
	for _, want := range []string{
		"ours used 2 pool link(s), the reference 5",
		"other processes used 0.05 cores during ours and 0.50 during the reference",
		"ours: 3 share(s) sent by miners never reached a verdict",
		"reference: other processes used up to 0.50 cores",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "workloads differed") {
		t.Errorf("equal share rates flagged as different workloads:\n%s", notes)
	}
	if !strings.Contains(c.Key, "miners=10000") || !strings.Contains(c.Key, "ref=cpp") {
		t.Errorf("key %q", c.Key)
	}
}

func TestComparisonWorkloadNote(t *testing.T) {
	m := Machine{Cores: 2}
	o := sideRun(0.02, 20, 80, 30, 0, 0, 5)
	r := o
	r.SharesPerS = 800 // the reference's pool saw a fifth fewer shares
	c := NewComparison(CompareSide{Kind: KindGo, Raw: []Result{o}}, CompareSide{Kind: KindCpp, Raw: []Result{r}}, nil, time.Time{}, "", m)
	if !strings.Contains(strings.Join(c.Notes, "\n"), "the workloads differed") {
		t.Errorf("different share rates not flagged: %q", c.Notes)
	}
	if strings.Contains(strings.Join(c.Notes, "\n"), "pool link(s)") {
		t.Errorf("equal link counts flagged: %q", c.Notes)
	}
}

func TestComparisonJSON(t *testing.T) {
	c := testComparison()
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.Contains(s, `{"key":"shares_lost","ours":3,"ref":0,"ratio":null}`) {
		t.Fatalf("NaN ratio not written as null: %s", s)
	}
	if !strings.Contains(s, `{"key":"agent_cpu","ours":0.03,"ref":0.06,"ratio":0.5}`) {
		t.Fatalf("ratio missing: %s", s)
	}
	var back Comparison
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	r := ratioByKey(t, back, "shares_lost")
	if r.Ours != 3 || r.Ref != 0 || !math.IsNaN(r.Ratio) || len(back.Ours.Raw) != 2 || back.Ref.Kind != KindCpp {
		t.Fatalf("round trip: %+v", back)
	}
}

func TestAddComparison(t *testing.T) {
	var db DB
	a := testComparison()
	db.AddComparison(a)
	b := testComparison()
	b.Date = b.Date.Add(time.Hour)
	db.AddComparison(b) // same key: replaces
	if len(db.Comparisons) != 1 || !db.Comparisons[0].Date.Equal(b.Date) {
		t.Fatalf("same key not replaced: %+v", db.Comparisons)
	}
	for i := range 12 {
		c := testComparison()
		c.Key = c.Key + string(rune('a'+i))
		db.AddComparison(c)
	}
	if len(db.Comparisons) != 10 || !strings.HasSuffix(db.Comparisons[9].Key, "l") {
		t.Fatalf("kept %d, last %q", len(db.Comparisons), db.Comparisons[len(db.Comparisons)-1].Key)
	}
}

func TestRenderComparison(t *testing.T) {
	m := Machine{CPU: "Test CPU", Cores: 2, OS: "linux", Kernel: "6.1", GoVersion: "go1.26"}
	var db DB
	db.Add(entry(10000, 30, m)) // an ordinary row, which must stay
	db.AddComparison(testComparison())
	md := RenderMarkdown(db)
	for _, want := range []string{
		"| 10,000 | 1 | 2026-11-25 | M1 | 2 × 20ms | 30.0 |",
		"#### Same-run comparison: this agent vs C++ btcagent, 10,000 miners",
		"|  | this agent | C++ btcagent | ours/ref |",
		"| CPU cores | 0.030 | 0.060 | 0.50× |",
		"| fan-out p99 ms | 40.0 | 160.0 | 0.25× |",
		"| lost | 3 | 0 | – |",
		"| other CPU | 0.050 | 0.500 |  |",
		"- machine M1, 2026-12-03 18:00 UTC, 2 run(s) per side, order ours → ref → ref → ours",
		"- this agent: 0123456789ab, 2 links × 0ms flush",
		"- reference: C++ btcagent d61642c, 5 links",
		"- command: `agentbench -miners 10000 -ref x`",
		"- note: ours used 2 pool link(s), the reference 5",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q\n%s", want, md)
		}
	}
	if strings.Contains(md, "NaN") {
		t.Errorf("NaN leaked into the markdown:\n%s", md)
	}
	// Without ordinary rows the comparison follows the machine list after
	// exactly one blank line.
	only := RenderMarkdown(DB{Comparisons: db.Comparisons})
	if !strings.Contains(only, "go1.26\n\n#### Same-run comparison") {
		t.Errorf("comparison-only markdown spacing:\n%s", only)
	}

	// Equal zeros read as "=", not as a missing ratio.
	c := testComparison()
	c.Ours.Raw[1].SharesLost = 0
	c = NewComparison(c.Ours, c.Ref, c.Order, c.Date, c.Command, c.Machine)
	var buf bytes.Buffer
	if err := WriteComparison(&buf, c); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"order ours ref ref ours", "ref:  C++ btcagent d61642c (5 links)", "0.50×"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output lacks %q:\n%s", want, out)
		}
	}
	var lost string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "lost" {
			lost = l
		}
	}
	if f := strings.Fields(lost); len(f) != 4 || f[0] != "lost" || f[3] != "=" {
		t.Errorf("lost row %q, want both zero and \"=\":\n%s", lost, out)
	}
}

// TestComparisonAgentFanout checks the rows of the agent's own fan-out and
// the floor: a reference without the agent's record (the C++ agent) has no
// number and so no ratio; the floor, the same for both sides, has none
// either.
func TestComparisonAgentFanout(t *testing.T) {
	floor := &Floor{Conns: 10000, Bytes: 1324, Rounds: 7, Runs: []FloorRun{{Writers: 2, MedianMs: 20, MinMs: 19, MaxMs: 25}, {Writers: 1, MedianMs: 30, MinMs: 29, MaxMs: 31}}}
	o := sideRun(0.02, 20, 80, 30, 0, 0.05, 2)
	o.AgentFanoutP50Ms, o.AgentFanoutMaxMs, o.AgentFanoutJobs = 18, 26, 4
	r := sideRun(0.06, 36, 900, 170, 0, 0.05, 5)
	r.AgentFanoutP50Ms, r.AgentFanoutMaxMs, r.AgentFanoutJobs = math.NaN(), math.NaN(), math.NaN()
	for _, x := range []*Result{&o, &r} {
		x.setFloor(floor)
		x.setFloorRatios()
	}
	c := NewComparison(CompareSide{Kind: KindGo, Raw: []Result{o}}, CompareSide{Kind: KindCpp, Raw: []Result{r}}, nil, time.Time{}, "", Machine{Cores: 2})
	if q := ratioByKey(t, c, "fanout_p99_per_floor"); q.Ours != 1.5 || q.Ref != 8.5 || math.Abs(q.Ratio-1.5/8.5) > 1e-12 {
		t.Errorf("fan-out p99 per floor: %+v", q)
	}
	if q := ratioByKey(t, c, "agent_fanout_max_ms"); q.Ours != 26 || !math.IsNaN(q.Ref) || !math.IsNaN(q.Ratio) {
		t.Errorf("agent fan-out max: %+v", q)
	}
	if q := ratioByKey(t, c, "floor_ms"); q.Ours != 20 || q.Ref != 20 || !math.IsNaN(q.Ratio) {
		t.Errorf("floor: %+v", q)
	}
	var buf bytes.Buffer
	if err := WriteComparison(&buf, c); err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, l := range strings.Split(buf.String(), "\n") {
		if label, rest, ok := strings.Cut(strings.TrimSpace(l), "  "); ok {
			rows[label] = strings.Fields(rest)
		}
	}
	for label, want := range map[string][]string{
		"agent fan-out max ms": {"26.0", "–", "–"},
		"agent max/floor":      {"1.30", "–", "–"},
		"fan-out p99/floor":    {"1.50", "8.50", "0.18×"},
		"floor ms":             {"20.0", "20.0"},
	} {
		if !slices.Equal(rows[label], want) {
			t.Errorf("row %q = %q, want %q\n%s", label, rows[label], want, buf.String())
		}
	}

	// A comparison stored by a harness without these rows still renders
	// every row it has.
	old := testComparison()
	old.Ratios = slices.DeleteFunc(old.Ratios, func(r Ratio) bool {
		return strings.Contains(r.Key, "floor") || strings.HasPrefix(r.Key, "agent_fanout")
	})
	got := comparisonRows(old)
	if len(got) != len(old.Ratios) || got[len(got)-1][0] != "other CPU" {
		t.Errorf("old comparison: %d rows of %d ratios, last %q", len(got), len(old.Ratios), got[len(got)-1])
	}
}
