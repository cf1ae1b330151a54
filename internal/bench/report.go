package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Entry is one benchmarked configuration: the summary of -runs repetitions
// plus where, when and how it was measured.
type Entry struct {
	Key     string     `json:"key"`
	Date    time.Time  `json:"date"`
	Command string     `json:"command"`
	Machine Machine    `json:"machine"`
	Agent   BinaryInfo `json:"agent"`
	Runs    int        `json:"runs"`
	Result  Result     `json:"result"` // median over the runs (max for losses)
	Raw     []Result   `json:"raw,omitempty"`
	Notes   []string   `json:"notes,omitempty"`
}

// SoakEntry is one soak with its provenance.
type SoakEntry struct {
	Date    time.Time  `json:"date"`
	Command string     `json:"command"`
	Machine Machine    `json:"machine"`
	Agent   BinaryInfo `json:"agent"`
	Result  SoakResult `json:"result"`
}

// DB is the results file (-out): every configuration measured so far, so
// that running one size again updates its row and keeps the others.
type DB struct {
	Entries     []Entry      `json:"entries"`
	Soaks       []SoakEntry  `json:"soaks,omitempty"`
	Comparisons []Comparison `json:"comparisons,omitempty"` // same-run comparisons with a reference agent
}

// KeyOf names the configuration a result belongs to; a new result replaces
// an old one with the same key.
func KeyOf(r Result) string {
	k := fmt.Sprintf("miners=%d links=%d flush=%gms", r.Miners, r.Connections, r.FlushMs)
	if r.AgentKind != "" && r.AgentKind != KindGo {
		k += " agent=" + r.AgentKind
	}
	if len(r.AgentEnv) > 0 {
		k += " env=" + strings.Join(r.AgentEnv, ",")
	}
	return k
}

// NewEntry summarises the runs of one configuration and attaches notes on
// anything that makes the numbers less trustworthy.
func NewEntry(runs []Result, date time.Time, command string, m Machine, agent BinaryInfo) Entry {
	sum := Summarise(runs)
	e := Entry{Key: KeyOf(sum), Date: date, Command: command, Machine: m, Agent: agent, Runs: len(runs), Result: sum}
	if len(runs) > 1 {
		e.Raw = runs
	}
	e.Notes = Notes(sum, m.Cores)
	return e
}

// Notes flags conditions under which a result says less about the agent
// than it seems to.
func Notes(r Result, cores int) []string {
	var n []string
	if r.MinersimCPU > 0.7 {
		n = append(n, fmt.Sprintf("minersim used %.2f cores: the load generator is close to saturation, so latencies partly measure it", r.MinersimCPU))
	}
	if total := r.AgentCPU + r.MinersimCPU + r.HarnessCPU; cores > 0 && total > 0.75*float64(cores) {
		n = append(n, fmt.Sprintf("agent, miners and pool together used %.2f of %d cores", total, cores))
	}
	if r.OtherCPU > 0.15 {
		n = append(n, fmt.Sprintf("other processes used up to %.2f cores during a window: the machine was shared, so CPU and latency figures are inflated", r.OtherCPU))
	}
	if r.LinkChanges > 0 {
		n = append(n, fmt.Sprintf("%.0f pool link(s) opened or closed during the window: link rates are incomplete", r.LinkChanges))
	}
	if r.JobsInWindow == 0 {
		n = append(n, "no pool job was written during the window (window shorter than the job period): job→last-miner latency not measured")
	} else if !math.IsNaN(r.JobMinersMin) && int(r.JobMinersMin) < r.Miners {
		n = append(n, fmt.Sprintf("a job in the window reached only %.0f of %d miners", r.JobMinersMin, r.Miners))
	}
	if r.FloorWriteErrors > 0 {
		n = append(n, fmt.Sprintf("%.0f write(s) of the broadcast floor measurement failed: the floor is too low", r.FloorWriteErrors))
	}
	if r.AgentFanoutJobs < r.JobsInWindow {
		n = append(n, fmt.Sprintf("the agent's record of recent broadcasts held %.0f of the window's %.0f pool jobs: agent fan-out is over those", r.AgentFanoutJobs, r.JobsInWindow))
	}
	if r.MinerDisconnects > 0 {
		n = append(n, fmt.Sprintf("%.0f miner connection(s) dropped during the run", r.MinerDisconnects))
	}
	if r.MinerErrors > 0 {
		n = append(n, fmt.Sprintf("minersim saw %.0f protocol error(s) or failed authorization(s); see its log", r.MinerErrors))
	}
	if r.SharesLost != 0 {
		n = append(n, fmt.Sprintf("%.0f share(s) sent by miners never reached a verdict at the pool", r.SharesLost))
	}
	return n
}

// Add puts e into the database, replacing the entry with the same key.
func (db *DB) Add(e Entry) {
	for i := range db.Entries {
		if db.Entries[i].Key == e.Key {
			db.Entries[i] = e
			return
		}
	}
	db.Entries = append(db.Entries, e)
	slices.SortStableFunc(db.Entries, func(a, b Entry) int {
		if a.Result.Miners != b.Result.Miners {
			return a.Result.Miners - b.Result.Miners
		}
		return strings.Compare(a.Key, b.Key)
	})
}

// AddSoak appends a soak, keeping the last five.
func (db *DB) AddSoak(s SoakEntry) {
	db.Soaks = append(db.Soaks, s)
	if len(db.Soaks) > 5 {
		db.Soaks = db.Soaks[len(db.Soaks)-5:]
	}
}

// LoadDB reads a results file; a missing file is an empty database.
func LoadDB(path string) (DB, error) {
	var db DB
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return db, nil
	}
	if err != nil {
		return db, fmt.Errorf("read results: %w", err)
	}
	if err := json.Unmarshal(data, &db); err != nil {
		return db, fmt.Errorf("results file %s: %w", path, err)
	}
	return db, nil
}

// SaveDB writes the results file.
func SaveDB(path string, db DB) error {
	data, err := json.MarshalIndent(db, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// MarshalJSON writes unmeasured (NaN) metrics as null, which encoding/json
// cannot do for a float64 by itself.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	p := plain(r)
	var nulls []string
	for _, m := range Metrics {
		if f := m.Field((*Result)(&p)); math.IsNaN(*f) || math.IsInf(*f, 0) {
			*f = 0
			nulls = append(nulls, m.Key)
		}
	}
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	for _, k := range nulls {
		for _, end := range []string{",", "}"} {
			data = bytes.Replace(data, []byte(`"`+k+`":0`+end), []byte(`"`+k+`":null`+end), 1)
		}
	}
	return data, nil
}

// UnmarshalJSON reads null (or a missing field) as NaN: not measured.
func (r *Result) UnmarshalJSON(data []byte) error {
	type plain Result
	var p plain
	for _, m := range Metrics {
		*m.Field((*Result)(&p)) = math.NaN()
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*r = Result(p)
	return nil
}

// format shows a metric value with its precision and thousands separators,
// "–" when not measured.
func format(v float64, digits int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "–"
	}
	s := fmt.Sprintf("%.*f", digits, v)
	whole, frac, hasFrac := strings.Cut(s, ".")
	whole = groupThousands(whole)
	if hasFrac {
		return whole + "." + frac
	}
	return whole
}

// groupThousands inserts commas into an integer string: 120345 → 120,345.
func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// consoleColumns are the metrics printed on the terminal after a run.
var consoleColumns = []string{
	"agent_rss_mib", "agent_hwm_mib", "agent_cpu", "up_bytes_per_s", "down_bytes_per_s",
	"up_segs_per_s", "down_segs_per_s", "up_bytes_per_share", "fanout_p50_ms", "fanout_p99_ms",
	"fanout_max_ms", "job_last_max_ms", "agent_fanout_max_ms", "floor_ms", "floor_w1_ms", "fanout_p99_per_floor",
	"agent_fanout_max_per_floor", "shares_sent", "shares_lost", "minersim_cpu", "other_cpu",
}

// WriteTable prints results as an aligned text table.
func WriteTable(w io.Writer, rs []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "miners\t")
	for _, k := range consoleColumns {
		m, _ := MetricByKey(k)
		fmt.Fprintf(tw, "%s\t", m.Label)
	}
	fmt.Fprintln(tw)
	for i := range rs {
		fmt.Fprintf(tw, "%s\t", format(float64(rs[i].Miners), 0))
		for _, k := range consoleColumns {
			m, _ := MetricByKey(k)
			fmt.Fprintf(tw, "%s\t", format(*m.Field(&rs[i]), m.Digits))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
