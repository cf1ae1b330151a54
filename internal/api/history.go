package api

import (
	"sync"
	"time"

	"github.com/btcagent/btcagent/actors/stats"
)

// Sample is one point of the hashrate history.
type Sample struct {
	Time      int64              `json:"t"` // unix seconds
	Hashrate  float64            `json:"hashrate"`
	Miners    int64              `json:"miners"`
	Accepted  int64              `json:"accepted"`  // shares accepted since the previous sample
	Rejected  int64              `json:"rejected"`  // shares rejected since the previous sample
	Listeners map[string]float64 `json:"listeners"` // hashrate by listener
}

// History is /api/v1/history.
type History struct {
	IntervalSeconds int64    `json:"interval_seconds"`
	Capacity        int      `json:"capacity"`
	Samples         []Sample `json:"samples"` // oldest first
}

// history is a fixed ring of samples: 24 hours of minutes is about 100 KB,
// which even a small router can keep, and it needs no storage.
type history struct {
	interval time.Duration
	mu       sync.Mutex
	ring     []Sample
	next     int
	full     bool
	last     map[*stats.Listener][2]int64 // accepted, rejected at the previous sample
}

func newHistory(size int, interval time.Duration) *history {
	return &history{interval: interval, ring: make([]Sample, size), last: map[*stats.Listener][2]int64{}}
}

// add records a sample. Share counts are turned into per-interval deltas
// here, keyed by the listener's counters so that a reload that keeps them
// keeps the deltas right and one that replaces them starts from zero.
func (h *history) add(now time.Time, ls []*stats.Listener) {
	smp := Sample{Time: now.Unix(), Listeners: make(map[string]float64, len(ls))}
	seen := make(map[*stats.Listener][2]int64, len(ls))
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, st := range ls {
		hr := st.Hashrate(now)
		smp.Hashrate += hr
		smp.Listeners[st.Name] += hr
		smp.Miners += st.MinersConn.Load()
		var rej int64
		for _, v := range st.RejectCounts() {
			rej += v
		}
		cur := [2]int64{st.Accepted.Load(), rej}
		prev := h.last[st]
		smp.Accepted += max(cur[0]-prev[0], 0)
		smp.Rejected += max(cur[1]-prev[1], 0)
		seen[st] = cur
	}
	h.last = seen
	h.ring[h.next] = smp
	h.next++
	if h.next == len(h.ring) {
		h.next, h.full = 0, true
	}
}

// since returns the samples newer than t (unix seconds), oldest first.
func (h *history) since(t int64) *History {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := &History{IntervalSeconds: int64(h.interval / time.Second), Capacity: len(h.ring), Samples: []Sample{}}
	add := func(s []Sample) {
		for _, x := range s {
			if x.Time > t {
				out.Samples = append(out.Samples, x)
			}
		}
	}
	if h.full {
		add(h.ring[h.next:])
	}
	add(h.ring[:h.next])
	return out
}

// Sample takes a history sample now. The server does this every
// HistoryInterval; it is exported for tests and for a final sample.
func (s *Server) Sample(now time.Time) {
	ls := s.opts.Source.Listeners()
	sts := make([]*stats.Listener, 0, len(ls))
	for _, l := range ls {
		sts = append(sts, l.Stats)
	}
	s.hist.add(now, sts)
}

func (s *Server) sampleLoop(done <-chan struct{}) {
	defer s.sampler.Done()
	t := time.NewTicker(s.opts.HistoryInterval)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			s.Sample(now)
		case <-done:
			return
		}
	}
}
