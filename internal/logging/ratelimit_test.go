package logging

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRateLimitedSuppressesAndCounts(t *testing.T) {
	l, hook := test.NewNullLogger()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	r := NewRateLimited(l, 10*time.Second)
	r.SetClock(clk.now)

	r.Warn("bad-json", logrus.Fields{"miner": "a"}, "bad JSON")
	for range 5 {
		clk.advance(time.Second)
		r.Warn("bad-json", logrus.Fields{"miner": "b"}, "bad JSON")
	}
	r.Warn("flood", nil, "too many requests") // another kind is not held back
	if n := len(hook.AllEntries()); n != 2 {
		t.Fatalf("%d lines after burst, want 2", n)
	}
	clk.advance(5 * time.Second) // 10s after the first line
	r.Warn("bad-json", logrus.Fields{"miner": "c"}, "bad JSON")

	entries := hook.AllEntries()
	if len(entries) != 3 {
		t.Fatalf("%d lines, want 3", len(entries))
	}
	first, last := entries[0], entries[2]
	if first.Level != logrus.WarnLevel || first.Message != "bad JSON" || first.Data["miner"] != "a" || first.Data["kind"] != "bad-json" {
		t.Errorf("first: %q %v", first.Message, first.Data)
	}
	if _, ok := first.Data["suppressed"]; ok {
		t.Error("first line claims suppressed lines")
	}
	if last.Message != "bad JSON (+5 similar suppressed)" || last.Data["suppressed"] != 5 || last.Data["miner"] != "c" {
		t.Errorf("last: %q %v", last.Message, last.Data)
	}
	// The count restarts after it was reported.
	clk.advance(10 * time.Second)
	r.Warn("bad-json", nil, "bad JSON")
	if m := hook.LastEntry().Message; m != "bad JSON" {
		t.Errorf("after report: %q", m)
	}
}

func TestRateLimitedFlush(t *testing.T) {
	l, hook := test.NewNullLogger()
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := NewRateLimited(l, time.Minute)
	r.SetClock(clk.now)
	r.Warn("k", nil, "one")
	r.Warn("k", logrus.Fields{"i": 2}, "two")
	r.Warn("k", logrus.Fields{"i": 3}, "three")
	r.Flush()
	e := hook.LastEntry()
	if len(hook.AllEntries()) != 2 || e.Message != "three (+1 similar suppressed)" || e.Data["i"] != 3 {
		t.Errorf("flush: %d entries, last %q %v", len(hook.AllEntries()), e.Message, e.Data)
	}
	r.Flush() // nothing pending: no line
	if len(hook.AllEntries()) != 2 {
		t.Errorf("empty flush logged")
	}
}

func TestRateLimitedPrunesQuietKinds(t *testing.T) {
	l, _ := test.NewNullLogger()
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := NewRateLimited(l, time.Second)
	r.SetClock(clk.now)
	for i := range maxKinds {
		r.Warn(fmt.Sprintf("miner-%d", i), nil, "x")
	}
	r.Warn("miner-0", nil, "x") // held back: must survive pruning
	clk.advance(2 * time.Second)
	r.Warn("new", nil, "x")
	r.mu.Lock()
	n := len(r.kinds)
	_, kept := r.kinds["miner-0"]
	r.mu.Unlock()
	if n != 2 || !kept {
		t.Errorf("after prune: %d kinds, miner-0 kept %v", n, kept)
	}
}

func TestRateLimitedConcurrent(t *testing.T) {
	l, hook := test.NewNullLogger()
	clk := &fakeClock{t: time.Unix(0, 0)}
	r := NewRateLimited(l, time.Hour)
	r.SetClock(clk.now)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r.Warn("k", nil, "m")
			}
		}()
	}
	wg.Wait()
	r.Flush()
	entries := hook.AllEntries()
	if len(entries) != 2 || entries[1].Data["suppressed"] != 798 {
		t.Errorf("%d entries; last %v", len(entries), hook.LastEntry().Data)
	}
}
