package minersim

import (
	"encoding/json"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// histogram is a lock-free log-linear histogram of durations: exact below
// 64 ns, then 32 sub-buckets per power of two (relative error under 1.6 %),
// 1920 counters in all. It is written from every reader at once during a job
// fan-out, so it uses atomics rather than a lock.
type histogram struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	max    atomic.Int64
}

const (
	histSubBits = 5
	histLinear  = 1 << (histSubBits + 1) // values below this get one bucket each
	histBuckets = histLinear + (64-histSubBits-1)*(1<<histSubBits)
)

func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1)
	top := v >> shift // in [32, 63]
	return histLinear + (shift-1)<<histSubBits + int(top) - (1 << histSubBits)
}

// histValue is the midpoint of bucket i.
func histValue(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	j := i - histLinear
	shift := j>>histSubBits + 1
	top := uint64(j&(1<<histSubBits-1)) + 1<<histSubBits
	lo := top << shift
	return lo + (uint64(1)<<shift)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		// Clocks of the stamping process and ours differ slightly; a negative
		// latency is "immediately", not garbage.
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
	h.n.Add(1)
	for {
		cur := h.max.Load()
		if int64(d) <= cur || h.max.CompareAndSwap(cur, int64(d)) {
			return
		}
	}
}

// quantiles returns the values at the given fractions (ascending), the max
// and the sample count.
func (h *histogram) quantiles(qs ...float64) ([]time.Duration, time.Duration, int64) {
	out := make([]time.Duration, len(qs))
	n := h.n.Load()
	mx := time.Duration(h.max.Load())
	if n == 0 {
		return out, 0, 0
	}
	var seen int64
	qi := 0
	for i := 0; i < histBuckets && qi < len(qs); i++ {
		c := h.counts[i].Load()
		if c == 0 {
			continue
		}
		seen += c
		for qi < len(qs) && float64(seen) >= qs[qi]*float64(n) {
			out[qi] = min(time.Duration(histValue(i)), mx)
			qi++
		}
	}
	for ; qi < len(qs); qi++ {
		out[qi] = mx
	}
	return out, mx, n
}

// JobFanout is what the run saw of one job: how many miners received it and,
// when the job carried the pool's write time, the latency to the last one.
type JobFanout struct {
	JobID   string    `json:"job_id"`
	Written time.Time `json:"written,omitzero"` // pool write time from JobTimestamp
	Stamped bool      `json:"stamped"`
	Miners  int64     `json:"miners"` // notify lines received for this job
	First   time.Time `json:"first"`  // first arrival at any miner
	Last    time.Time `json:"last"`   // last arrival at any miner
	// Max is the pool write to the last miner it was broadcast to (stamped
	// jobs; the first job of each connection is not a broadcast, see Summary).
	Max time.Duration `json:"-"`
	// KernelMax is the same to the last arrival in a miner's socket, when
	// the transport reports the kernel's receive time.
	KernelMax time.Duration `json:"-"`
}

// jobRing remembers the last jobRingSize jobs. Besides the per-job fan-out
// record it interns job ids and caches the JobTimestamp result, so that 20,000
// miners receiving one job cost one id string and one timestamp parse.
type jobRing struct {
	mu   sync.Mutex
	jobs [jobRingSize]jobEntry
	next int
}

const jobRingSize = 32

type jobEntry struct {
	JobFanout
	coinb1 string
	used   bool
}

// jobSight is what jobRing.seen makes of one notify.
type jobSight struct {
	id        string        // interned job id
	lat       time.Duration // pool write → read by the simulator
	kernelLat time.Duration // pool write → in the miner's socket
	stamped   bool          // lat is a sample (the job carries a stamp and sample was true)
	kernelOK  bool          // kernelLat is a sample too
}

// seen records a notify for job id with coinb1 that arrived at and returns
// the interned id and the latencies.
func (r *jobRing) seen(id, coinb1 []byte, at arrival, sample bool, stamp func(string) (time.Time, bool)) jobSight {
	now := at.now
	r.mu.Lock()
	defer r.mu.Unlock()
	var e *jobEntry
	// Newest first: during a broadcast every miner reports the job just
	// added, so the search ends at the first entry.
	for i := 1; i <= jobRingSize; i++ {
		c := &r.jobs[(r.next-i+jobRingSize)%jobRingSize]
		if !c.used {
			break // entries are used in order, and never cleared
		}
		if c.JobID == string(id) && c.coinb1 == string(coinb1) {
			e = c
			break
		}
	}
	if e == nil {
		e = &r.jobs[r.next]
		r.next = (r.next + 1) % jobRingSize
		*e = jobEntry{used: true, coinb1: string(coinb1), JobFanout: JobFanout{JobID: string(id), First: now}}
		if stamp != nil {
			e.Written, e.Stamped = stamp(e.coinb1)
		}
	}
	e.Miners++
	e.Last = now
	js := jobSight{id: e.JobID}
	if !e.Stamped || !sample {
		return js
	}
	js.lat, js.stamped = now.Sub(e.Written), true
	e.Max = max(e.Max, js.lat)
	if at.kernel != 0 {
		js.kernelLat, js.kernelOK = time.Duration(at.kernel-e.Written.UnixNano()), true
		e.KernelMax = max(e.KernelMax, js.kernelLat)
	}
	return js
}

// snapshot returns the remembered jobs, oldest first.
func (r *jobRing) snapshot() []JobFanout {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []JobFanout
	for i := 0; i < jobRingSize; i++ {
		e := &r.jobs[(r.next+i)%jobRingSize]
		if e.used {
			out = append(out, e.JobFanout)
		}
	}
	return out
}

// changes wakes WaitFor callers on state changes. A broadcast costs a lock and
// a channel only while somebody is waiting, so a farm without waiters pays one
// atomic load per event; and only once per channel handed out, so a waiter
// busy with its snapshot while 10,000 notifies arrive costs one wake-up, not
// 10,000 channels.
type changes struct {
	waiters atomic.Int32
	taken   atomic.Bool // ch was handed to a waiter since it was made
	mu      sync.Mutex
	ch      chan struct{}
}

func newChanges() *changes { return &changes{ch: make(chan struct{})} }

// wait returns the channel that the next change closes. A change made
// before wait returns may not close it: callers look at the state after
// wait, as WaitFor does.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.taken.Store(true)
	return c.ch
}

func (c *changes) notify() {
	if c.waiters.Load() == 0 || !c.taken.Load() {
		return
	}
	c.mu.Lock()
	if c.taken.Load() {
		close(c.ch)
		c.ch = make(chan struct{})
		c.taken.Store(false)
	}
	c.mu.Unlock()
}

// Summary is a snapshot of the whole farm; Stop returns the final one.
type Summary struct {
	Miners    int           `json:"miners"`
	Transport string        `json:"transport"`
	Elapsed   time.Duration `json:"-"`

	Connected  int `json:"connected"`  // currently connected
	Subscribed int `json:"subscribed"` // currently subscribed
	Authorized int `json:"authorized"` // currently authorized

	SharesSent       int64         `json:"shares_sent"`
	SharesAccepted   int64         `json:"shares_accepted"`
	SharesRejected   map[int]int64 `json:"shares_rejected"`   // by Stratum error code
	SharesUnanswered int64         `json:"shares_unanswered"` // sent − answered; after Stop: lost

	// Submit-to-verdict round trip as each miner saw it.
	SubmitP50, SubmitP99, SubmitMax time.Duration `json:"-"`

	Reconnects        int64 `json:"reconnects"`         // new connections after an established one ended
	ReconnectRequests int64 `json:"reconnect_requests"` // client.reconnect received
	Disconnects       int64 `json:"disconnects"`        // connections lost (not by client.reconnect or Stop)
	ConnectErrors     int64 `json:"connect_errors"`     // failed dials
	AuthFailures      int64 `json:"auth_failures"`
	ProtocolErrors    int64 `json:"protocol_errors"` // unparsable or unexpected lines from the peer

	Notifies        int64 `json:"notifies"` // mining.notify lines received, all miners
	SetDifficulties int64 `json:"set_difficulties"`

	// Fan-out latency per notify: pool write time (JobTimestamp) to arrival.
	// The first notify of each connection is left out: that job was written
	// before the miner connected, so its age measures the connect, not the
	// fan-out.
	FanoutP50, FanoutP99, FanoutMax time.Duration `json:"-"`
	FanoutSamples                   int64         `json:"fanout_samples"`
	// The same latency to the kernel's receive time in the miner's socket
	// (Config.KernelArrival, netio transport on Linux): what a farm of real
	// miners would see, without the simulator's own wait for a core while
	// the agent writes on the same machine. No samples: not measured.
	FanoutKernelP50, FanoutKernelP99, FanoutKernelMax time.Duration `json:"-"`
	FanoutKernelSamples                               int64         `json:"fanout_kernel_samples"`
	Jobs                                              []JobFanout   `json:"jobs"` // last 32 jobs, oldest first

	Hashes   int64   `json:"hashes"`    // hash mode: header hashes computed
	HashRate float64 `json:"hash_rate"` // hashes per second since Start

	SelfCPU  float64 `json:"self_cpu"`            // this process's CPU since Start, in cores
	RSSBytes int64   `json:"rss_bytes,omitempty"` // resident set (Stats/Stop only, not WaitFor)

	LastError string `json:"last_error,omitempty"`
}

// MarshalJSON writes durations as milliseconds, which is what a person reads
// in a load-test summary.
func (s Summary) MarshalJSON() ([]byte, error) {
	type plain Summary
	type job struct {
		JobFanout
		MaxMs       float64 `json:"max_ms"`
		KernelMaxMs float64 `json:"kernel_max_ms,omitempty"`
	}
	jobs := make([]job, len(s.Jobs))
	for i, j := range s.Jobs {
		jobs[i] = job{JobFanout: j, MaxMs: ms(j.Max), KernelMaxMs: ms(j.KernelMax)}
	}
	out := struct {
		plain
		ElapsedS    float64 `json:"elapsed_s"`
		SubmitP50Ms float64 `json:"submit_p50_ms"`
		SubmitP99Ms float64 `json:"submit_p99_ms"`
		SubmitMaxMs float64 `json:"submit_max_ms"`
		FanoutP50Ms float64 `json:"fanout_p50_ms"`
		FanoutP99Ms float64 `json:"fanout_p99_ms"`
		FanoutMaxMs float64 `json:"fanout_max_ms"`
		// Absent when not measured, so that 0 is never read as "instant".
		FanoutKernelP50Ms *float64 `json:"fanout_kernel_p50_ms,omitempty"`
		FanoutKernelP99Ms *float64 `json:"fanout_kernel_p99_ms,omitempty"`
		FanoutKernelMaxMs *float64 `json:"fanout_kernel_max_ms,omitempty"`
		Jobs              []job    `json:"jobs"`
	}{
		plain:       plain(s),
		ElapsedS:    s.Elapsed.Seconds(),
		SubmitP50Ms: ms(s.SubmitP50),
		SubmitP99Ms: ms(s.SubmitP99),
		SubmitMaxMs: ms(s.SubmitMax),
		FanoutP50Ms: ms(s.FanoutP50),
		FanoutP99Ms: ms(s.FanoutP99),
		FanoutMaxMs: ms(s.FanoutMax),
		Jobs:        jobs,
	}
	if s.FanoutKernelSamples > 0 {
		p50, p99, mx := ms(s.FanoutKernelP50), ms(s.FanoutKernelP99), ms(s.FanoutKernelMax)
		out.FanoutKernelP50Ms, out.FanoutKernelP99Ms, out.FanoutKernelMaxMs = &p50, &p99, &mx
	}
	return json.Marshal(out)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
