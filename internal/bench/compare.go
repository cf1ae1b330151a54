package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Sides of a same-run comparison.
const (
	SideOurs = "ours"
	SideRef  = "ref"
)

// CompareSide is one agent of a same-run comparison: its runs and their
// summary.
type CompareSide struct {
	Kind   string     `json:"kind"`  // KindGo or KindCpp
	Label  string     `json:"label"` // how reports name it
	Bin    string     `json:"bin"`
	Build  BinaryInfo `json:"build"`
	Result Result     `json:"result"` // medians of the runs (maxima for losses), as Summarise
	Raw    []Result   `json:"raw"`
	Notes  []string   `json:"notes,omitempty"`
}

// Ratio is one metric of both sides and ours/ref of their summaries. The
// ratio is NaN (null in JSON) where it means nothing: a side not measured,
// or a reference value of zero.
type Ratio struct {
	Key   string
	Ours  float64
	Ref   float64
	Ratio float64
}

// ratioJSON is Ratio with unmeasured values as null.
type ratioJSON struct {
	Key   string   `json:"key"`
	Ours  *float64 `json:"ours"`
	Ref   *float64 `json:"ref"`
	Ratio *float64 `json:"ratio"`
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func orNaN(p *float64) float64 {
	if p == nil {
		return math.NaN()
	}
	return *p
}

// MarshalJSON writes NaN and infinite values as null.
func (r Ratio) MarshalJSON() ([]byte, error) {
	return json.Marshal(ratioJSON{r.Key, finite(r.Ours), finite(r.Ref), finite(r.Ratio)})
}

// UnmarshalJSON reads null as NaN.
func (r *Ratio) UnmarshalJSON(data []byte) error {
	var j ratioJSON
	if err := json.Unmarshal(data, &j); err != nil {
		return err
	}
	*r = Ratio{Key: j.Key, Ours: orNaN(j.Ours), Ref: orNaN(j.Ref), Ratio: orNaN(j.Ratio)}
	return nil
}

// RatioOf is ours/ref, NaN when either is not measured or ref is zero
// (0 lost shares against 0 is "equal", not a number; reports say so).
func RatioOf(ours, ref float64) float64 {
	if math.IsNaN(ours) || math.IsNaN(ref) || ref == 0 {
		return math.NaN()
	}
	return ours / ref
}

// compareMetric is a row of the comparison; ratio false marks context rows
// (the load generator, other work on the machine) whose ratio says nothing
// about either agent.
type compareMetric struct {
	key   string
	ratio bool
}

// compareMetrics are the comparison's rows: what the agents are judged on
// first, then the context that qualifies it.
var compareMetrics = []compareMetric{
	{"agent_cpu", true},
	{"agent_rss_mib", true},
	// The highest 5 s sample in the window and the anonymous part: the C++
	// agent's RSS was once seen to halve within a window (20 MiB at its
	// end, 39 MiB before), which a single end-of-window reading turns into
	// a misleading ratio.
	{"agent_rss_max_mib", true},
	{"agent_anon_mib", true},
	{"agent_hwm_mib", true},
	{"agent_threads", false},
	{"up_segs_per_s", true},
	{"up_data_segs_per_s", true},
	{"up_bytes_per_s", true},
	{"up_bytes_per_share", true},
	{"down_segs_per_s", true},
	{"fanout_p50_ms", true},
	{"fanout_p99_ms", true},
	{"fanout_max_ms", true},
	{"fanout_kernel_p99_ms", true},
	{"job_last_max_ms", true},
	{"agent_fanout_p50_ms", true},
	{"agent_fanout_max_ms", true},
	// Measured once per size for both sides: the same number on both, the
	// yardstick of the two ratios below rather than something to compare.
	{"floor_ms", false},
	{"fanout_p99_per_floor", true},
	{"fanout_p99_per_drained", true},
	{"fanout_kernel_p99_per_floor", true},
	{"agent_fanout_max_per_floor", true},
	{"submit_p50_ms", true},
	{"submit_p99_ms", true},
	{"shares_per_s", false},
	{"shares_sent", false},
	{"shares_lost", true},
	{"miner_disconnects", false},
	{"miner_errors", false},
	{"ramp_s", false},
	{"minersim_cpu", false},
	{"other_cpu", false},
}

// Comparison is one same-run comparison: this agent and a reference agent
// measured back to back under the same workload on the same machine.
type Comparison struct {
	Key     string      `json:"key"`
	Date    time.Time   `json:"date"`
	Command string      `json:"command"`
	Machine Machine     `json:"machine"`
	Miners  int         `json:"miners"`
	Runs    int         `json:"runs"`  // per side
	Order   []string    `json:"order"` // the sides in the order they ran
	Ours    CompareSide `json:"ours"`
	Ref     CompareSide `json:"ref"`
	Ratios  []Ratio     `json:"ratios"`
	Notes   []string    `json:"notes,omitempty"`
}

// NewComparison summarises both sides' runs (ours.Raw and ref.Raw), computes
// the ratios of the summaries and notes what makes them less trustworthy.
func NewComparison(ours, ref CompareSide, order []string, date time.Time, command string, m Machine) Comparison {
	ours.Result, ref.Result = Summarise(ours.Raw), Summarise(ref.Raw)
	ours.Notes, ref.Notes = Notes(ours.Result, m.Cores), Notes(ref.Result, m.Cores)
	c := Comparison{
		Date: date, Command: command, Machine: m, Miners: ours.Result.Miners,
		Runs: min(len(ours.Raw), len(ref.Raw)), Order: order, Ours: ours, Ref: ref,
	}
	c.Key = compareKey(c)
	for _, cm := range compareMetrics {
		mt, _ := MetricByKey(cm.key)
		o, r := *mt.Field(&c.Ours.Result), *mt.Field(&c.Ref.Result)
		q := math.NaN()
		if cm.ratio {
			q = RatioOf(o, r)
		}
		c.Ratios = append(c.Ratios, Ratio{Key: cm.key, Ours: o, Ref: r, Ratio: q})
	}
	c.Notes = compareNotes(c)
	return c
}

// compareKey names what a comparison measured; a new one replaces the old
// one with the same key.
func compareKey(c Comparison) string {
	k := fmt.Sprintf("miners=%d ours=%s ref=%s", c.Miners, KeyOf(c.Ours.Result), c.Ref.Kind)
	if c.Ref.Label != "" {
		k += " (" + c.Ref.Label + ")"
	}
	return k
}

// compareNotes flags differences between the sides' conditions: a ratio is
// only about the agents if everything else was the same.
func compareNotes(c Comparison) []string {
	var n []string
	o, r := c.Ours.Result, c.Ref.Result
	if d := math.Abs(o.OtherCPU - r.OtherCPU); d > 0.15 {
		n = append(n, fmt.Sprintf("other processes used %.2f cores during ours and %.2f during the reference: CPU and latency ratios are skewed by the shared machine",
			o.OtherCPU, r.OtherCPU))
	}
	if o.SharesPerS > 0 && r.SharesPerS > 0 {
		if q := o.SharesPerS / r.SharesPerS; q < 0.95 || q > 1.05 {
			n = append(n, fmt.Sprintf("the pool saw %.1f shares/s from ours and %.1f from the reference: the workloads differed, so compare per-share figures",
				o.SharesPerS, r.SharesPerS))
		}
	}
	if o.Connections != r.Connections {
		n = append(n, fmt.Sprintf("ours used %d pool link(s), the reference %d: segments/s and bytes/s include per-link overhead",
			o.Connections, r.Connections))
	}
	if len(c.Ours.Raw) != len(c.Ref.Raw) {
		n = append(n, fmt.Sprintf("ours has %d run(s), the reference %d: a side failed", len(c.Ours.Raw), len(c.Ref.Raw)))
	}
	for _, s := range c.Ours.Notes {
		n = append(n, "ours: "+s)
	}
	for _, s := range c.Ref.Notes {
		n = append(n, "reference: "+s)
	}
	return n
}

// AddComparison puts c into the database, replacing the comparison with the
// same key and keeping the newest ten.
func (db *DB) AddComparison(c Comparison) {
	db.Comparisons = slices.DeleteFunc(db.Comparisons, func(x Comparison) bool { return x.Key == c.Key })
	db.Comparisons = append(db.Comparisons, c)
	if len(db.Comparisons) > 10 {
		db.Comparisons = db.Comparisons[len(db.Comparisons)-10:]
	}
}

// formatRatio shows ours/ref as "0.67×"; where there is no ratio it says
// whether the two are equal (typically 0 lost shares on both sides).
func formatRatio(r Ratio, ratio bool) string {
	if !ratio {
		return ""
	}
	if math.IsNaN(r.Ratio) {
		if !math.IsNaN(r.Ours) && r.Ours == r.Ref {
			return "="
		}
		return "–"
	}
	return format(r.Ratio, 2) + "×"
}

// comparisonRows are the rows of a comparison table: label, ours, ref, ratio.
func comparisonRows(c Comparison) [][]string {
	var rows [][]string
	for _, cm := range compareMetrics {
		// Looked up by key: comparisons written by an older harness have
		// fewer rows, or rows in another order.
		i := slices.IndexFunc(c.Ratios, func(r Ratio) bool { return r.Key == cm.key })
		if i < 0 {
			continue
		}
		mt, _ := MetricByKey(cm.key)
		r := c.Ratios[i]
		rows = append(rows, []string{mt.Label, format(r.Ours, mt.Digits), format(r.Ref, mt.Digits), formatRatio(r, cm.ratio)})
	}
	return rows
}

// sideName is a side's label with the build it was measured at.
func sideName(s CompareSide) string {
	name := s.Label
	if name == "" {
		name = refName(s)
	}
	if s.Build.Revision != "" {
		name += " " + revision(s.Build)
	}
	return name
}

// WriteComparison prints a comparison as an aligned text table.
func WriteComparison(w io.Writer, c Comparison) error {
	fmt.Fprintf(w, "same-run comparison, %s miners, %d run(s) per side, order %s\n", format(float64(c.Miners), 0), c.Runs, strings.Join(c.Order, " "))
	fmt.Fprintf(w, "ours: %s (%d links × %gms)\nref:  %s (%d links)\n", sideName(c.Ours), c.Ours.Result.Connections, c.Ours.Result.FlushMs,
		sideName(c.Ref), c.Ref.Result.Connections)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "metric\tours\tref\tours/ref\t")
	for _, r := range comparisonRows(c) {
		fmt.Fprintln(tw, strings.Join(r, "\t")+"\t")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range c.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

// renderComparisons writes the same-run comparison section of the markdown.
func renderComparisons(b *strings.Builder, comps []Comparison, label func(Machine) string) {
	for _, c := range comps {
		if !strings.HasSuffix(b.String(), "\n\n") {
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "#### Same-run comparison: this agent vs %s, %s miners\n\n", refName(c.Ref), format(float64(c.Miners), 0))
		t := &table{head: []string{"", "this agent", refName(c.Ref), "ours/ref"}, rows: comparisonRows(c)}
		b.WriteString(t.String())
		fmt.Fprintf(b, "\n- machine %s, %s, %d run(s) per side, order %s (ratios are of the medians; maxima for losses)\n",
			label(c.Machine), c.Date.Format("2006-01-02 15:04 MST"), c.Runs, strings.Join(c.Order, " → "))
		fmt.Fprintf(b, "- this agent: %s, %d links × %gms flush\n", revision(c.Ours.Build), c.Ours.Result.Connections, c.Ours.Result.FlushMs)
		fmt.Fprintf(b, "- reference: %s, %d links\n", sideName(c.Ref), c.Ref.Result.Connections)
		fmt.Fprintf(b, "- command: `%s`\n", c.Command)
		for _, n := range c.Notes {
			fmt.Fprintf(b, "- note: %s\n", n)
		}
	}
}

// refName is the reference side's column header.
func refName(s CompareSide) string {
	if s.Label != "" {
		return s.Label
	}
	if s.Kind == KindCpp {
		return "C++ btcagent"
	}
	return "reference build"
}
