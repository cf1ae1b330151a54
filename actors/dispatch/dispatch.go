// Package dispatch provides the fixed worker-pool dispatcher every btcagent
// actor runs on. protoactor's default dispatcher starts a goroutine for each
// mailbox activation, so one job broadcast to 10,000 miners makes 10,000
// goroutines; a small fixed pool halves the CPU per delivery and keeps memory
// flat. The price is that Receive must never block.
package dispatch

import (
	"runtime"
	"sync"
)

// Pool is an actor.Dispatcher with a fixed number of workers.
type Pool struct {
	ch         chan func()
	throughput int
	wg         sync.WaitGroup
	closeOnce  sync.Once
}

// New starts workers goroutines (0 = GOMAXPROCS*2) with a queue of queueLen
// mailbox activations. throughput is how many messages one activation may
// process before yielding the worker to other mailboxes.
func New(workers, queueLen, throughput int) *Pool {
	if workers <= 0 {
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	if queueLen <= 0 {
		queueLen = 65536
	}
	if throughput <= 0 {
		throughput = 64
	}
	p := &Pool{ch: make(chan func(), queueLen), throughput: throughput}
	p.wg.Add(workers)
	for i := 0; i < workers; i++ {
		go p.work()
	}
	return p
}

func (p *Pool) work() {
	defer p.wg.Done()
	for fn := range p.ch {
		fn()
	}
}

// Schedule queues a mailbox run. When the queue is full it falls back to a
// goroutine rather than blocking the sender, which may itself be a worker.
func (p *Pool) Schedule(fn func()) {
	select {
	case p.ch <- fn:
	default:
		go fn()
	}
}

// Throughput is the per-activation message budget.
func (p *Pool) Throughput() int { return p.throughput }

// Close stops the workers after the queued work ran. Scheduling after Close panics.
func (p *Pool) Close() {
	p.closeOnce.Do(func() { close(p.ch) })
	p.wg.Wait()
}
