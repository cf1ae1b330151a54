package bench

import (
	"math"
	"slices"
	"time"

	"github.com/btcagent/btcagent/sim/poolsim"
)

// Result is one load run: N miners, one steady window. Memory is in MiB
// (2^20 bytes), CPU in cores (1.0 = one core busy for the whole window),
// rates per second of the window.
type Result struct {
	Miners      int       `json:"miners"`
	Connections int       `json:"connections"`          // upstream links the agent was configured with
	FlushMs     float64   `json:"flush_ms"`             // upstream.flush_interval in force
	AgentKind   string    `json:"agent_kind,omitempty"` // which agent was measured: "" or KindGo for this one, KindCpp for btccom's C++ agent
	AgentEnv    []string  `json:"agent_env,omitempty"`
	Pollers     int       `json:"minersim_pollers,omitempty"` // minersim epoll loops (0: its default)
	Started     time.Time `json:"started"`
	WindowS     float64   `json:"window_s"` // measured length of the steady window
	RampS       float64   `json:"ramp_s"`   // minersim start until every miner was authorized and registered at the pool

	AgentRSSMiB    float64 `json:"agent_rss_mib"`     // VmRSS at the end of the window
	AgentRSSMaxMiB float64 `json:"agent_rss_max_mib"` // highest VmRSS sampled during the window
	AgentHWMMiB    float64 `json:"agent_hwm_mib"`     // VmHWM at the end of the window (peak since start, ramp included)
	AgentAnonMiB   float64 `json:"agent_anon_mib"`    // RssAnon at the end of the window: RSS without the binary's mapped text
	AgentCPU       float64 `json:"agent_cpu"`         // utime+stime delta / window
	AgentThreads   float64 `json:"agent_threads"`     // OS threads (goroutines are not visible from outside)

	UpBytesPerS      float64 `json:"up_bytes_per_s"`       // agent -> pool TCP payload (pool's bytes_received)
	DownBytesPerS    float64 `json:"down_bytes_per_s"`     // pool -> agent TCP payload (pool's bytes_acked)
	UpSegsPerS       float64 `json:"up_segs_per_s"`        // agent -> pool segments incl. pure ACKs (pool's segs_in)
	DownSegsPerS     float64 `json:"down_segs_per_s"`      // pool -> agent segments incl. pure ACKs (pool's segs_out)
	UpDataSegsPerS   float64 `json:"up_data_segs_per_s"`   // agent -> pool segments carrying data
	DownDataSegsPerS float64 `json:"down_data_segs_per_s"` // pool -> agent segments carrying data
	SharesPerS       float64 `json:"shares_per_s"`         // shares reaching the pool (accepted + rejected + dropped)
	UpBytesPerShare  float64 `json:"up_bytes_per_share"`   // up bytes / shares at the pool, window only
	LinkChanges      float64 `json:"link_changes"`         // pool links opened or closed during the window (0 expected)

	FanoutP50Ms float64 `json:"fanout_p50_ms"` // pool write -> miner, per notify, whole run (minersim)
	FanoutP99Ms float64 `json:"fanout_p99_ms"` //
	FanoutMaxMs float64 `json:"fanout_max_ms"` //
	// The same, to the kernel's receive time in each miner's socket
	// (minersim -kernel-arrival): without the simulator's own wait for a
	// core while the agent writes on the same two. NaN when not measured.
	FanoutKernelP50Ms float64 `json:"fanout_kernel_p50_ms"`
	FanoutKernelP99Ms float64 `json:"fanout_kernel_p99_ms"`
	FanoutKernelMaxMs float64 `json:"fanout_kernel_max_ms"`
	JobLastP50Ms      float64 `json:"job_last_p50_ms"` // pool write -> last miner, per pool job written in the window
	JobLastMaxMs      float64 `json:"job_last_max_ms"` //
	JobsInWindow      float64 `json:"jobs_in_window"`  // pool jobs written in the window
	JobMinersMin      float64 `json:"job_miners_min"`  // fewest miners that received one of those jobs (N expected)
	SubmitP50Ms       float64 `json:"submit_p50_ms"`   // miner submit -> verdict, whole run
	SubmitP99Ms       float64 `json:"submit_p99_ms"`   //

	// The agent's own account of its broadcasts (job_fanout.recent of its
	// HTTP API): per pool job written in the window, job arrival at the
	// agent to the last miner write, the slowest of its pool links. NaN for
	// agents without that record.
	AgentFanoutP50Ms float64 `json:"agent_fanout_p50_ms"`
	AgentFanoutMaxMs float64 `json:"agent_fanout_max_ms"`
	AgentFanoutJobs  float64 `json:"agent_fanout_jobs"` // pool jobs of the window found in the record

	// This machine's broadcast floor for this size, measured once per size
	// before its first run (MeasureFloor; NaN with -floor=false), and the
	// fan-out figures in multiples of it.
	FloorMs                 float64 `json:"floor_ms"`         // 2 writers, median of the rounds
	FloorMinMs              float64 `json:"floor_min_ms"`     //
	FloorMaxMs              float64 `json:"floor_max_ms"`     //
	FloorW1Ms               float64 `json:"floor_w1_ms"`      // 1 writer, median of the rounds
	FloorDrainedMs          float64 `json:"floor_drained_ms"` // 2 writers, to the reader's last read, median
	FloorWriteErrors        float64 `json:"floor_write_errors"`
	FanoutP99PerFloor       float64 `json:"fanout_p99_per_floor"`        // FanoutP99Ms / FloorMs
	FanoutP99PerDrained     float64 `json:"fanout_p99_per_drained"`      // FanoutP99Ms / FloorDrainedMs: both to the reader's read
	FanoutKernelP99PerFloor float64 `json:"fanout_kernel_p99_per_floor"` // FanoutKernelP99Ms / FloorMs
	AgentFanoutMaxPerFloor  float64 `json:"agent_fanout_max_per_floor"`  // AgentFanoutMaxMs / FloorMs
	Floor                   *Floor  `json:"floor,omitempty"`             // every round, both writer counts

	SharesSent       float64 `json:"shares_sent"`       // by minersim, whole run
	PoolAccepted     float64 `json:"pool_accepted"`     // at the pool after the drain
	PoolRejected     float64 `json:"pool_rejected"`     //
	PoolDropped      float64 `json:"pool_dropped"`      // reached the pool but got no verdict (unknown session, ...)
	SharesLost       float64 `json:"shares_lost"`       // sent - accepted - rejected
	MinerDisconnects float64 `json:"miner_disconnects"` // connections minersim lost (0 expected)
	MinerReconnects  float64 `json:"miner_reconnects"`  //
	MinerErrors      float64 `json:"miner_errors"`      // unparsable or unexpected lines and failed authorizations seen by minersim (0 expected)

	MinersimCPU    float64 `json:"minersim_cpu"`     // the load generator, window
	MinersimRSSMiB float64 `json:"minersim_rss_mib"` //
	HarnessCPU     float64 `json:"harness_cpu"`      // this process: pool simulator + bookkeeping, window
	SoftIRQCPU     float64 `json:"softirq_cpu"`      // softirq time on all cores: loopback TCP processing not charged to a process
	OtherCPU       float64 `json:"other_cpu"`        // everything else busy on the machine (/proc/stat): other processes, window
}

// Agg says how repetitions of a metric are summarised.
type Agg int

const (
	AggMedian Agg = iota // typical value
	AggMax               // worst case: losses and drops must not hide behind a median
)

// Metric describes one number of a Result for tables, medians and targets.
type Metric struct {
	Key    string // JSON name
	Label  string // column header
	Digits int    // decimals shown
	Agg    Agg
	Field  func(*Result) *float64
}

// Metrics lists every number of a Result in report order.
var Metrics = []Metric{
	{"ramp_s", "ramp s", 1, AggMedian, func(r *Result) *float64 { return &r.RampS }},
	{"agent_rss_mib", "RSS MiB", 1, AggMedian, func(r *Result) *float64 { return &r.AgentRSSMiB }},
	{"agent_rss_max_mib", "RSS max MiB", 1, AggMedian, func(r *Result) *float64 { return &r.AgentRSSMaxMiB }},
	{"agent_hwm_mib", "HWM MiB", 1, AggMedian, func(r *Result) *float64 { return &r.AgentHWMMiB }},
	{"agent_anon_mib", "anon MiB", 1, AggMedian, func(r *Result) *float64 { return &r.AgentAnonMiB }},
	{"agent_cpu", "CPU cores", 3, AggMedian, func(r *Result) *float64 { return &r.AgentCPU }},
	{"agent_threads", "threads", 0, AggMedian, func(r *Result) *float64 { return &r.AgentThreads }},
	{"up_bytes_per_s", "up B/s", 0, AggMedian, func(r *Result) *float64 { return &r.UpBytesPerS }},
	{"down_bytes_per_s", "down B/s", 0, AggMedian, func(r *Result) *float64 { return &r.DownBytesPerS }},
	{"up_segs_per_s", "up segs/s", 1, AggMedian, func(r *Result) *float64 { return &r.UpSegsPerS }},
	{"down_segs_per_s", "down segs/s", 1, AggMedian, func(r *Result) *float64 { return &r.DownSegsPerS }},
	{"up_data_segs_per_s", "up data segs/s", 1, AggMedian, func(r *Result) *float64 { return &r.UpDataSegsPerS }},
	{"down_data_segs_per_s", "down data segs/s", 1, AggMedian, func(r *Result) *float64 { return &r.DownDataSegsPerS }},
	{"shares_per_s", "shares/s", 1, AggMedian, func(r *Result) *float64 { return &r.SharesPerS }},
	{"up_bytes_per_share", "up B/share", 1, AggMedian, func(r *Result) *float64 { return &r.UpBytesPerShare }},
	{"link_changes", "link changes", 0, AggMax, func(r *Result) *float64 { return &r.LinkChanges }},
	{"fanout_p50_ms", "fan-out p50 ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutP50Ms }},
	{"fanout_p99_ms", "fan-out p99 ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutP99Ms }},
	{"fanout_max_ms", "fan-out max ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutMaxMs }},
	{"fanout_kernel_p50_ms", "fan-out (kernel) p50 ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutKernelP50Ms }},
	{"fanout_kernel_p99_ms", "fan-out (kernel) p99 ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutKernelP99Ms }},
	{"fanout_kernel_max_ms", "fan-out (kernel) max ms", 1, AggMedian, func(r *Result) *float64 { return &r.FanoutKernelMaxMs }},
	{"job_last_p50_ms", "job→last p50 ms", 1, AggMedian, func(r *Result) *float64 { return &r.JobLastP50Ms }},
	{"job_last_max_ms", "job→last max ms", 1, AggMedian, func(r *Result) *float64 { return &r.JobLastMaxMs }},
	{"jobs_in_window", "jobs", 0, AggMedian, func(r *Result) *float64 { return &r.JobsInWindow }},
	{"job_miners_min", "miners/job min", 0, AggMedian, func(r *Result) *float64 { return &r.JobMinersMin }},
	{"agent_fanout_p50_ms", "agent fan-out p50 ms", 1, AggMedian, func(r *Result) *float64 { return &r.AgentFanoutP50Ms }},
	{"agent_fanout_max_ms", "agent fan-out max ms", 1, AggMedian, func(r *Result) *float64 { return &r.AgentFanoutMaxMs }},
	{"agent_fanout_jobs", "agent jobs", 0, AggMedian, func(r *Result) *float64 { return &r.AgentFanoutJobs }},
	{"floor_ms", "floor ms", 1, AggMedian, func(r *Result) *float64 { return &r.FloorMs }},
	{"floor_min_ms", "floor min ms", 1, AggMedian, func(r *Result) *float64 { return &r.FloorMinMs }},
	{"floor_max_ms", "floor max ms", 1, AggMedian, func(r *Result) *float64 { return &r.FloorMaxMs }},
	{"floor_w1_ms", "floor 1w ms", 1, AggMedian, func(r *Result) *float64 { return &r.FloorW1Ms }},
	{"floor_drained_ms", "floor drained ms", 1, AggMedian, func(r *Result) *float64 { return &r.FloorDrainedMs }},
	{"floor_write_errors", "floor write errors", 0, AggMax, func(r *Result) *float64 { return &r.FloorWriteErrors }},
	{"fanout_p99_per_floor", "fan-out p99/floor", 2, AggMedian, func(r *Result) *float64 { return &r.FanoutP99PerFloor }},
	{"fanout_p99_per_drained", "fan-out p99/floor drained", 2, AggMedian, func(r *Result) *float64 { return &r.FanoutP99PerDrained }},
	{"fanout_kernel_p99_per_floor", "fan-out (kernel) p99/floor", 2, AggMedian, func(r *Result) *float64 { return &r.FanoutKernelP99PerFloor }},
	{"agent_fanout_max_per_floor", "agent max/floor", 2, AggMedian, func(r *Result) *float64 { return &r.AgentFanoutMaxPerFloor }},
	{"submit_p50_ms", "submit p50 ms", 1, AggMedian, func(r *Result) *float64 { return &r.SubmitP50Ms }},
	{"submit_p99_ms", "submit p99 ms", 1, AggMedian, func(r *Result) *float64 { return &r.SubmitP99Ms }},
	{"shares_sent", "shares sent", 0, AggMedian, func(r *Result) *float64 { return &r.SharesSent }},
	{"pool_accepted", "pool accepted", 0, AggMedian, func(r *Result) *float64 { return &r.PoolAccepted }},
	{"pool_rejected", "pool rejected", 0, AggMax, func(r *Result) *float64 { return &r.PoolRejected }},
	{"pool_dropped", "pool dropped", 0, AggMax, func(r *Result) *float64 { return &r.PoolDropped }},
	{"shares_lost", "lost", 0, AggMax, func(r *Result) *float64 { return &r.SharesLost }},
	{"miner_disconnects", "miner disconnects", 0, AggMax, func(r *Result) *float64 { return &r.MinerDisconnects }},
	{"miner_reconnects", "miner reconnects", 0, AggMax, func(r *Result) *float64 { return &r.MinerReconnects }},
	{"miner_errors", "miner errors", 0, AggMax, func(r *Result) *float64 { return &r.MinerErrors }},
	{"minersim_cpu", "minersim CPU", 3, AggMedian, func(r *Result) *float64 { return &r.MinersimCPU }},
	{"minersim_rss_mib", "minersim MiB", 1, AggMedian, func(r *Result) *float64 { return &r.MinersimRSSMiB }},
	{"harness_cpu", "pool+harness CPU", 3, AggMedian, func(r *Result) *float64 { return &r.HarnessCPU }},
	{"softirq_cpu", "softirq CPU", 3, AggMedian, func(r *Result) *float64 { return &r.SoftIRQCPU }},
	{"other_cpu", "other CPU", 3, AggMax, func(r *Result) *float64 { return &r.OtherCPU }},
}

// MetricByKey finds a metric by its JSON name.
func MetricByKey(key string) (Metric, bool) {
	for _, m := range Metrics {
		if m.Key == key {
			return m, true
		}
	}
	return Metric{}, false
}

// Summarise combines repetitions of the same configuration: the median of
// every metric (the maximum for losses and drops). Non-metric fields come
// from the first run. NaN values (not measured) are left out.
func Summarise(runs []Result) Result {
	if len(runs) == 0 {
		return Result{}
	}
	out := runs[0]
	for _, m := range Metrics {
		var xs []float64
		for i := range runs {
			if v := *m.Field(&runs[i]); !math.IsNaN(v) {
				xs = append(xs, v)
			}
		}
		v := math.NaN()
		if len(xs) > 0 {
			if m.Agg == AggMax {
				v = slices.Max(xs)
			} else {
				v = Median(xs)
			}
		}
		*m.Field(&out) = v
	}
	return out
}

// TCPDelta is the change of the pool's agent links between two TCP_INFO
// readings, summed over links. A link present in both readings contributes
// its difference; a link opened during the interval contributes all its
// counters; a link that closed contributes nothing after its last reading,
// so Changes counts both kinds and a non-zero value flags the numbers as
// incomplete.
type TCPDelta struct {
	SegsIn, SegsOut         uint64
	DataSegsIn, DataSegsOut uint64
	BytesIn, BytesOut       uint64 // bytes_received, bytes_acked
	Changes                 int
}

// DiffTCP computes the TCPDelta from a to b, agent links only.
func DiffTCP(a, b []poolsim.ConnTCP) TCPDelta {
	before := make(map[uint64]poolsim.ConnTCP, len(a))
	for _, c := range a {
		if c.Agent {
			before[c.ID] = c
		}
	}
	var d TCPDelta
	for _, c := range b {
		if !c.Agent {
			continue
		}
		p, ok := before[c.ID]
		if !ok {
			d.Changes++
		}
		delete(before, c.ID)
		d.SegsIn += sub(c.SegsIn, p.SegsIn)
		d.SegsOut += sub(c.SegsOut, p.SegsOut)
		d.DataSegsIn += sub(c.DataSegsIn, p.DataSegsIn)
		d.DataSegsOut += sub(c.DataSegsOut, p.DataSegsOut)
		d.BytesIn += sub(c.BytesReceived, p.BytesReceived)
		d.BytesOut += sub(c.BytesAcked, p.BytesAcked)
	}
	d.Changes += len(before)
	return d
}

// sub is b-a for counters, 0 if the counter went backwards (a reused ID
// cannot happen in poolsim, but a wrapped 32-bit segment counter can).
func sub(b, a uint64) uint64 {
	if b < a {
		return 0
	}
	return b - a
}

// JobRecord is minersim's view of one job as written in its JSON summary.
// The agent gives each upstream link its own job ids, so one pool job shows
// up once per link; the pool's write time ties them together.
type JobRecord struct {
	JobID   string    `json:"job_id"`
	Written time.Time `json:"written"`
	Stamped bool      `json:"stamped"`
	Miners  int64     `json:"miners"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
	MaxMs   float64   `json:"max_ms"`
}

// PoolJob is one pool job as all miners saw it.
type PoolJob struct {
	Written time.Time
	Miners  int64   // notify lines received, over all links
	LastMs  float64 // pool write to the last miner
}

// JobsWritten groups records by pool write time and keeps the jobs written
// in [from, to], oldest first. LastMs is the largest broadcast latency seen
// for the job (minersim leaves a connection's first job out of it).
func JobsWritten(recs []JobRecord, from, to time.Time) []PoolJob {
	by := map[int64]*PoolJob{}
	for _, r := range recs {
		if !r.Stamped || r.Written.Before(from) || r.Written.After(to) {
			continue
		}
		k := r.Written.UnixNano()
		j := by[k]
		if j == nil {
			j = &PoolJob{Written: r.Written}
			by[k] = j
		}
		j.Miners += r.Miners
		j.LastMs = max(j.LastMs, r.MaxMs)
	}
	out := make([]PoolJob, 0, len(by))
	for _, j := range by {
		out = append(out, *j)
	}
	slices.SortFunc(out, func(a, b PoolJob) int { return a.Written.Compare(b.Written) })
	return out
}

// setFloor records the floor measured for this size: the 2-writer run is
// the headline (the agent's miners are served by its threads, and this
// machine has two cores), the 1-writer run the single-thread reference.
func (r *Result) setFloor(f *Floor) {
	r.Floor = f
	r.FloorMs, r.FloorMinMs, r.FloorMaxMs, r.FloorW1Ms, r.FloorWriteErrors = math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()
	r.FloorDrainedMs = math.NaN()
	if f == nil {
		return
	}
	var errs int
	for _, run := range f.Runs {
		errs += run.WriteErrors
	}
	r.FloorWriteErrors = float64(errs)
	if w2, ok := f.Run(2); ok {
		r.FloorMs, r.FloorMinMs, r.FloorMaxMs = w2.MedianMs, w2.MinMs, w2.MaxMs
		if len(w2.DrainedMs) > 0 {
			r.FloorDrainedMs = w2.DrainedMedianMs
		}
	}
	if w1, ok := f.Run(1); ok {
		r.FloorW1Ms = w1.MedianMs
	}
}

// setFloorRatios expresses the fan-out figures in multiples of the floor.
func (r *Result) setFloorRatios() {
	r.FanoutP99PerFloor, r.FanoutKernelP99PerFloor, r.AgentFanoutMaxPerFloor = math.NaN(), math.NaN(), math.NaN()
	r.FanoutP99PerDrained = math.NaN()
	if r.FloorDrainedMs > 0 {
		r.FanoutP99PerDrained = r.FanoutP99Ms / r.FloorDrainedMs
	}
	if math.IsNaN(r.FloorMs) || r.FloorMs <= 0 {
		return
	}
	r.FanoutP99PerFloor = r.FanoutP99Ms / r.FloorMs
	r.FanoutKernelP99PerFloor = r.FanoutKernelP99Ms / r.FloorMs
	r.AgentFanoutMaxPerFloor = r.AgentFanoutMaxMs / r.FloorMs
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
