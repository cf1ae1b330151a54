package bench

import (
	"math"
	"testing"
)

func TestPercentile(t *testing.T) {
	xs := []float64{15, 20, 35, 40, 50}
	for _, c := range []struct{ p, want float64 }{
		{0, 15}, {5, 15}, {30, 20}, {40, 20}, {50, 35}, {99, 50}, {100, 50},
	} {
		if got := Percentile(xs, c.p); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if xs[0] != 15 || xs[4] != 50 {
		t.Error("Percentile reordered its input")
	}
	if !math.IsNaN(Percentile(nil, 50)) {
		t.Error("no samples should give NaN")
	}
	// p99 of 100 samples is the 99th, not the maximum.
	var h []float64
	for i := 100; i >= 1; i-- {
		h = append(h, float64(i))
	}
	if got := Percentile(h, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
}

func TestMedian(t *testing.T) {
	if got := Median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("odd median = %v", got)
	}
	if got := Median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("even median = %v", got)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("empty median should be NaN")
	}
}

func TestSlope(t *testing.T) {
	xs := []float64{0, 1, 2, 3}
	ys := []float64{10, 12, 14, 16}
	if got := Slope(xs, ys); math.Abs(got-2) > 1e-12 {
		t.Errorf("Slope = %v, want 2", got)
	}
	if got := Slope([]float64{1, 1}, []float64{1, 5}); got != 0 {
		t.Errorf("vertical points gave %v", got)
	}
	if got := Slope([]float64{1}, []float64{1}); got != 0 {
		t.Errorf("one point gave %v", got)
	}
}

func TestSummarise(t *testing.T) {
	runs := []Result{
		{Miners: 10, AgentRSSMiB: 30, SharesLost: 0, UpBytesPerShare: math.NaN()},
		{Miners: 10, AgentRSSMiB: 20, SharesLost: 3, UpBytesPerShare: 19},
		{Miners: 10, AgentRSSMiB: 25, SharesLost: 1, UpBytesPerShare: 21},
	}
	s := Summarise(runs)
	if s.Miners != 10 || s.AgentRSSMiB != 25 {
		t.Errorf("median RSS = %v (miners %d)", s.AgentRSSMiB, s.Miners)
	}
	if s.SharesLost != 3 {
		t.Errorf("lost should be the worst run, got %v", s.SharesLost)
	}
	if s.UpBytesPerShare != 20 {
		t.Errorf("NaN runs should be left out of the median, got %v", s.UpBytesPerShare)
	}
}

func TestLateDrift(t *testing.T) {
	// Warm-up jump in the first half, flat afterwards: no late drift.
	var ss []SoakSample
	for i, rss := range []float64{60, 70, 72, 72, 72, 72} {
		ss = append(ss, SoakSample{ElapsedS: float64(i * 60), RSSMiB: rss})
	}
	if got := LateDrift(ss); got != 0 {
		t.Errorf("flat second half gave %v KiB/min", got)
	}
	if got := LateDrift(nil); got != 0 {
		t.Errorf("no samples gave %v", got)
	}
}
