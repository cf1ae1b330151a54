package minersim

import (
	"context"
	"sync"
	"time"
)

// One scheduler drives every timed action of the farm (dials, fast-mode
// shares, handshake deadlines) from a min-heap and a single timer. 20,000
// miners with a runtime timer each would cost memory and timer-heap churn for
// nothing; here an armed miner is one 24-byte heap entry.

type evKind uint8

const (
	evConnect   evKind = iota // dial the miner (first connect or reconnect)
	evShare                   // fast mode: send one share
	evHandshake               // drop the link if it is still not authorized
)

type event struct {
	at    time.Duration // since scheduler start (monotonic)
	miner int32
	kind  evKind
	epoch uint32 // stale events (older link or share epoch) are ignored
}

type scheduler struct {
	start time.Time
	mu    sync.Mutex
	heap  []event
	wake  chan struct{}
}

func newScheduler(start time.Time) *scheduler {
	return &scheduler{start: start, wake: make(chan struct{}, 1)}
}

func (sc *scheduler) now() time.Duration { return time.Since(sc.start) }

// after schedules ev to fire d from now.
func (sc *scheduler) after(d time.Duration, ev event) {
	ev.at = sc.now() + d
	sc.add(ev)
}

func (sc *scheduler) add(ev event) {
	sc.mu.Lock()
	sc.heap = append(sc.heap, ev)
	i := len(sc.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if sc.heap[p].at <= sc.heap[i].at {
			break
		}
		sc.heap[p], sc.heap[i] = sc.heap[i], sc.heap[p]
		i = p
	}
	head := i == 0
	sc.mu.Unlock()
	if head {
		// A new earliest event: the run loop may be sleeping on a later one.
		select {
		case sc.wake <- struct{}{}:
		default:
		}
	}
}

func (sc *scheduler) popLocked() event {
	h := sc.heap
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].at < h[l].at {
			c = r
		}
		if h[i].at <= h[c].at {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	sc.heap = h
	return top
}

// len reports the number of pending events.
func (sc *scheduler) len() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.heap)
}

// run fires due events in time order until ctx ends. fire runs on this
// goroutine without the scheduler lock, so it may schedule more events.
func (sc *scheduler) run(ctx context.Context, fire func(event)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []event
	for {
		sc.mu.Lock()
		now := sc.now()
		due = due[:0]
		// Take a bounded batch so a burst of due events cannot hold the lock
		// long enough to stall the miners that schedule new ones.
		for len(sc.heap) > 0 && sc.heap[0].at <= now && len(due) < 1024 {
			due = append(due, sc.popLocked())
		}
		wait := time.Duration(-1)
		if len(due) == 0 && len(sc.heap) > 0 {
			wait = sc.heap[0].at - now
		}
		sc.mu.Unlock()

		if len(due) > 0 {
			for _, ev := range due {
				fire(ev)
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		var tc <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-sc.wake:
		case <-tc:
		}
		timer.Stop()
	}
}
