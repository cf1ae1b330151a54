package stats

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram is a lock-free log2-bucketed latency histogram (nanoseconds):
// cheap enough to record every miner's delivery of every job.
type Histogram struct {
	buckets [64]atomic.Int64
	count   atomic.Int64
	max     atomic.Int64
}

// NewHistogram returns an empty histogram.
func NewHistogram() *Histogram { return &Histogram{} }

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	n := int64(d)
	if n < 1 {
		n = 1
	}
	h.buckets[63-bits.LeadingZeros64(uint64(n))].Add(1)
	h.count.Add(1)
	for {
		m := h.max.Load()
		if n <= m || h.max.CompareAndSwap(m, n) {
			return
		}
	}
}

// Count is the number of observations.
func (h *Histogram) Count() int64 { return h.count.Load() }

// Max is the largest observation.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Quantile returns an upper bound of the q-quantile (bucket resolution: 2x).
func (h *Histogram) Quantile(q float64) time.Duration {
	total := h.count.Load()
	if total == 0 {
		return 0
	}
	want := int64(float64(total)*q + 0.5)
	if want < 1 {
		want = 1
	}
	var seen int64
	for i := range h.buckets {
		seen += h.buckets[i].Load()
		if seen >= want {
			upper := time.Duration(uint64(1) << uint(i+1))
			if m := h.Max(); upper > m {
				return m
			}
			return upper
		}
	}
	return h.Max()
}

// Buckets copies the raw counts (bucket i holds [2^i, 2^(i+1)) ns).
func (h *Histogram) Buckets() [64]int64 {
	var out [64]int64
	for i := range h.buckets {
		out[i] = h.buckets[i].Load()
	}
	return out
}
