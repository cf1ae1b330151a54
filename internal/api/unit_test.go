package api

import (
	"math"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/stats"
)

func TestSelectMinersSortAndPage(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	rows := []Miner{
		{SessionID: 1, Worker: "f.b", Address: "10.0.0.2:1", Hashrate: 5, Accepted: 3, LastShare: at(10)},
		{SessionID: 2, Worker: "f.a", Address: "10.0.0.1:1", Hashrate: 5, Accepted: 9, LastShare: nil},
		{SessionID: 3, Worker: "f.c", Address: "10.0.1.7:1", Hashrate: 1, Accepted: 0, LastShare: at(20)},
		{SessionID: 4, Worker: "", Address: "10.0.0.9:1", Hashrate: 0},
	}
	ids := func(ms []Miner) []uint16 {
		var out []uint16
		for _, m := range ms {
			out = append(out, m.SessionID)
		}
		return out
	}
	cases := []struct {
		query string
		want  []uint16
		total int
	}{
		{"", []uint16{4, 2, 1, 3}, 4},                          // worker ascending; "" first
		{"sort=-hashrate", []uint16{2, 1, 3, 4}, 4},            // ties broken by worker
		{"sort=hashrate", []uint16{4, 3, 2, 1}, 4},             // reversed primary, same tie-break
		{"sort=-last_share", []uint16{3, 1, 4, 2}, 4},          // never shared sorts as oldest
		{"sort=-accepted&limit=2", []uint16{2, 1}, 4},          // page 1
		{"sort=-accepted&limit=2&offset=2", []uint16{4, 3}, 4}, // ties (0) by worker
		{"q=10.0.0.", []uint16{4, 2, 1}, 3},                    // address substring
		{"q=F.C", []uint16{3}, 1},                              // case-insensitive worker
		{"q=zzz", nil, 0},
	}
	for _, c := range cases {
		v, _ := url.ParseQuery(c.query)
		q, bad := parseMinerQuery(v)
		if bad != "" {
			t.Fatalf("%q: %s", c.query, bad)
		}
		got, total := selectMiners(slices.Clone(rows), q)
		if !slices.Equal(ids(got), c.want) || total != c.total {
			t.Errorf("%q: %v (total %d), want %v (total %d)", c.query, ids(got), total, c.want, c.total)
		}
	}
}

func TestHistoryDeltasAndRing(t *testing.T) {
	h := newHistory(3, time.Minute)
	a, b := stats.NewListener("a", 1), stats.NewListener("b", 2)
	t0 := time.Unix(1700000000, 0)
	a.Accepted.Add(10)
	a.Reject("stale")
	h.add(t0, []*stats.Listener{a, b})
	a.Accepted.Add(5)
	b.Accepted.Add(2)
	b.Reject("duplicate")
	b.Reject("duplicate")
	h.add(t0.Add(time.Minute), []*stats.Listener{a, b})
	// b is replaced by new counters (a reload that renamed it): its deltas start from zero.
	c := stats.NewListener("c", 2)
	c.Accepted.Add(4)
	h.add(t0.Add(2*time.Minute), []*stats.Listener{a, c})

	got := h.since(0)
	if got.Capacity != 3 || got.IntervalSeconds != 60 || len(got.Samples) != 3 {
		t.Fatalf("history %+v", got)
	}
	type delta struct{ acc, rej int64 }
	var deltas []delta
	for _, s := range got.Samples {
		deltas = append(deltas, delta{s.Accepted, s.Rejected})
	}
	if want := []delta{{10, 1}, {7, 2}, {4, 0}}; !slices.Equal(deltas, want) {
		t.Fatalf("deltas %v, want %v", deltas, want)
	}
	if _, ok := got.Samples[2].Listeners["c"]; !ok || len(got.Samples[2].Listeners) != 2 {
		t.Fatalf("per-listener hashrate keys %v", got.Samples[2].Listeners)
	}

	// One more wraps the ring: the oldest goes, order stays oldest first.
	h.add(t0.Add(3*time.Minute), []*stats.Listener{a, c})
	got = h.since(0)
	var times []int64
	for _, s := range got.Samples {
		times = append(times, s.Time-t0.Unix())
	}
	if !slices.Equal(times, []int64{60, 120, 180}) {
		t.Fatalf("after wrap: %v", times)
	}
	if got = h.since(t0.Unix() + 120); len(got.Samples) != 1 || got.Samples[0].Time != t0.Unix()+180 {
		t.Fatalf("since: %+v", got.Samples)
	}
}

func TestFanoutHistogramBuckets(t *testing.T) {
	h := stats.NewHistogram()
	h.Observe(100 * time.Nanosecond) // bucket 6: below the first bound, counted in it
	h.Observe(3 * time.Microsecond)  // bucket 11: [2048, 4096) ns
	h.Observe(3 * time.Microsecond)  // same
	h.Observe(5 * time.Millisecond)  // bucket 22: [4.19, 8.39) ms
	h.Observe(time.Minute)           // bucket 35: beyond the last bound, only in +Inf
	count, sum, buckets := fanoutHistogram(h)
	if count != 5 {
		t.Fatalf("count %d", count)
	}
	want := map[float64]uint64{}
	for b := fanoutFirstBound; b <= fanoutLastBound; b++ {
		le := math.Ldexp(1, b) / 1e9
		switch {
		case b < 12:
			want[le] = 1
		case b < 23:
			want[le] = 3
		default:
			want[le] = 4
		}
	}
	if len(buckets) != len(want) {
		t.Fatalf("%d buckets, want %d", len(buckets), len(want))
	}
	for le, n := range want {
		if buckets[le] != n {
			t.Errorf("le=%g: %d, want %d", le, buckets[le], n)
		}
	}
	// Mid-bucket estimate: 1.5 × the lower bound of each observation's bucket.
	est := 1.5 * (math.Ldexp(1, 6) + 2*math.Ldexp(1, 11) + math.Ldexp(1, 22) + math.Ldexp(1, 35)) / 1e9
	if math.Abs(sum-est) > 1e-12 {
		t.Fatalf("sum %g, want %g", sum, est)
	}
}
