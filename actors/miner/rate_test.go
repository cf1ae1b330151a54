package miner

import (
	"testing"
	"time"
)

// drive feeds n requests spaced by gap and counts the verdicts.
func drive(r *rateLimit, now *time.Time, n int, gap time.Duration) (ok, dropped int, kicked bool) {
	for i := 0; i < n; i++ {
		*now = now.Add(gap)
		switch r.take(*now) {
		case rateOK:
			ok++
		case rateDrop:
			dropped++
		case rateKick:
			return ok, dropped, true
		}
	}
	return ok, dropped, false
}

func TestRateLimitDropsOverTheBudget(t *testing.T) {
	var r rateLimit
	r.init(50)
	now := time.Unix(1e9, 0)
	// 300 lines at once: the burst allowance (100) passes, the rest drops.
	ok, dropped, kicked := drive(&r, &now, 300, 0)
	if ok != 100 || dropped != 200 || kicked {
		t.Fatalf("burst of 300: %d passed, %d dropped, kicked %v; want 100, 200, false", ok, dropped, kicked)
	}
}

// A miner that bursts over its budget once an hour for a day is never cut:
// the debt of a burst drains away.
func TestRateLimitNeverKicksOccasionalBursts(t *testing.T) {
	var r rateLimit
	r.init(50)
	now := time.Unix(1e9, 0)
	for hour := 0; hour < 24; hour++ {
		if _, _, kicked := drive(&r, &now, 350, 0); kicked {
			t.Fatalf("kicked for a burst in hour %d", hour)
		}
		if _, _, kicked := drive(&r, &now, 360, 10*time.Second); kicked { // an hour of normal traffic
			t.Fatalf("kicked during normal traffic in hour %d", hour)
		}
	}
}

// Sustained floods are cut: at twice the budget within ~20 s, at ten times
// within ~2 s.
func TestRateLimitKicksSustainedFloods(t *testing.T) {
	for _, c := range []struct {
		factor int
		within time.Duration
	}{{2, 20 * time.Second}, {10, 2 * time.Second}} {
		var r rateLimit
		r.init(50)
		start := time.Unix(1e9, 0)
		now := start
		gap := time.Second / time.Duration(50*c.factor)
		_, _, kicked := drive(&r, &now, 1_000_000, gap)
		if !kicked || now.Sub(start) > c.within {
			t.Errorf("%d× the budget: kicked %v after %v, want within %v", c.factor, kicked, now.Sub(start), c.within)
		}
	}
}

func TestRateLimitOff(t *testing.T) {
	var r rateLimit
	r.init(0)
	now := time.Unix(1e9, 0)
	if ok, _, _ := drive(&r, &now, 10000, 0); ok != 10000 {
		t.Fatalf("unlimited: %d of 10000 passed", ok)
	}
}
