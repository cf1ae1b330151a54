// Package fanout lets background sweeps stand aside while a job is being
// broadcast to the miners.
//
// A broadcast is CPU-bound: on a small machine every core is busy writing
// the new job to thousands of sockets (and, on loopback or a router, doing
// the receivers' TCP work too). A periodic sweep over every miner — the
// coordinator's timeout tick, the farm watch — that lands in that window
// takes its CPU from the broadcast and delays the last miners' job by as
// much. Sweeps are not urgent, so they wait for the broadcast to end; a
// bound on the wait keeps them running when broadcasts never stop.
package fanout

import (
	"sync"
	"time"
)

// Gate counts the broadcasts in progress. The zero value is ready; a nil
// *Gate is a gate that is never closed.
type Gate struct {
	mu     sync.Mutex
	active int
	idle   chan struct{} // closed when active drops to 0; nil while idle

	onWait func() // tests: called when Wait is about to block
}

// Begin marks the start of a broadcast; every Begin needs one End.
func (g *Gate) Begin() {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.active == 0 {
		g.idle = make(chan struct{})
	}
	g.active++
	g.mu.Unlock()
}

// End marks the end of a broadcast.
func (g *Gate) End() {
	if g == nil {
		return
	}
	g.mu.Lock()
	if g.active > 0 {
		g.active--
		if g.active == 0 {
			close(g.idle)
			g.idle = nil
		}
	}
	g.mu.Unlock()
}

// Active reports whether a broadcast is in progress.
func (g *Gate) Active() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.active > 0
}

// Wait returns when no broadcast is in progress, when max has passed, or
// when stop is closed, whichever is first. It reports whether it waited.
// It is for goroutines of their own (tickers, sweep loops), never for an
// actor's Receive.
func (g *Gate) Wait(stop <-chan struct{}, max time.Duration) bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	idle := g.idle
	g.mu.Unlock()
	if idle == nil {
		return false
	}
	if g.onWait != nil {
		g.onWait()
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	case <-stop:
	}
	return true
}

// MaxWait is how long a sweep stands aside at most: longer than one
// broadcast to 20,000 miners on a 2-core machine (~0.25 s), short against
// any sweep period.
const MaxWait = time.Second
