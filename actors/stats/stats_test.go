package stats

import (
	"testing"
	"time"
)

func TestHashrateFromAcceptedDifficulty(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	m := &Miner{Connected: now.Add(-time.Hour)}
	// 60 shares of difficulty 1000 over 10 minutes = 6000 diff/min.
	for i := 59; i >= 0; i-- { // chronological, as shares arrive
		m.AddAccepted(1000, now.Add(-time.Duration(i)*10*time.Second))
	}
	want := 60 * 1000 * 4294967296.0 / 600
	if got := m.Hashrate(now); got < want*0.97 || got > want*1.03 {
		t.Fatalf("hashrate %g, want %g", got, want)
	}
	// Shares older than the window no longer count.
	if got := m.Hashrate(now.Add(20 * time.Minute)); got != 0 {
		t.Fatalf("stale hashrate %g", got)
	}
	// A miner connected 60 s ago is averaged over 60 s, not 600.
	young := &Miner{Connected: now.Add(-60 * time.Second)}
	young.AddAccepted(1000, now)
	if got := young.Hashrate(now); got < 1000*4294967296.0/61 || got > 1000*4294967296.0/59 {
		t.Fatalf("young miner %g", got)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 100; i++ {
		h.Observe(time.Duration(i) * time.Millisecond)
	}
	if h.Count() != 100 || h.Max() != 100*time.Millisecond {
		t.Fatalf("count %d max %v", h.Count(), h.Max())
	}
	p50 := h.Quantile(0.5)
	if p50 < 50*time.Millisecond || p50 > 100*time.Millisecond {
		t.Fatalf("p50 %v", p50)
	}
	if p99 := h.Quantile(0.99); p99 != 100*time.Millisecond {
		t.Fatalf("p99 %v", p99)
	}
}

func TestListenerRejectCounts(t *testing.T) {
	l := NewListener("x", 1)
	l.Reject("stale")
	l.Reject("stale")
	l.Reject("duplicate")
	c := l.RejectCounts()
	if c["stale"] != 2 || c["duplicate"] != 1 {
		t.Fatal(c)
	}
}

func TestBroadcastLogKeepsTheLatestInOrder(t *testing.T) {
	var l BroadcastLog
	if got := l.Recent(); len(got) != 0 {
		t.Fatalf("empty log: %v", got)
	}
	t0 := time.Unix(1700000000, 0)
	for i := 0; i < broadcastLogLen+5; i++ {
		l.Add(Broadcast{JobAt: t0.Add(time.Duration(i) * time.Second), Miners: i})
	}
	got := l.Recent()
	if len(got) != broadcastLogLen {
		t.Fatalf("kept %d broadcasts, want %d", len(got), broadcastLogLen)
	}
	for i, b := range got {
		if want := i + 5; b.Miners != want {
			t.Fatalf("entry %d is broadcast %d, want %d (oldest first, the first 5 dropped)", i, b.Miners, want)
		}
	}
}
