package fanout

import (
	"sync"
	"sync/atomic"
	"time"
)

// Pool spreads one broadcast over the cores. The pool link's actor that
// received a job writes it to its miners itself and, when there are many,
// hands chunks of the list to the pool's idle writers, so a listener with
// one pool link still uses every core, and two links that broadcast at
// once finish together instead of one after the other. Writers are long-
// lived goroutines that cost nothing while no job arrives; how many of
// them run at once is bounded by GOMAXPROCS like any goroutine.
//
// A Pool is also the Gate of its broadcasts: sweeps wait on it.
type Pool struct {
	Gate
	help     chan *broadcast
	quit     chan struct{} // closed by Stop; help is never closed, so a late Run cannot panic
	stopOnce sync.Once
	workers  int
}

// chunk is how many miners a writer takes at a time: ~1.5 ms of writes,
// small enough that writers finish within a chunk of each other.
const chunk = 128

// NewPool starts workers writer goroutines (0: none; every broadcast then
// runs on its caller). Stop ends them.
func NewPool(workers int) *Pool {
	p := &Pool{workers: max(workers, 0), quit: make(chan struct{})}
	p.help = make(chan *broadcast, p.workers)
	for i := 0; i < p.workers; i++ {
		go p.writer()
	}
	return p
}

// Stop ends the writers. A broadcast still running finishes on its
// caller: help it asked for and nobody took is never needed, since the
// caller itself takes every chunk left.
func (p *Pool) Stop() {
	if p != nil {
		p.stopOnce.Do(func() { close(p.quit) })
	}
}

func (p *Pool) writer() {
	for {
		select {
		case b := <-p.help:
			b.work(true)
		case <-p.quit:
			return
		}
	}
}

// Run calls write(i) for every i in [0, n), on the calling goroutine and
// on idle writers, and returns when all calls returned. write must be safe
// to call from several goroutines for different i. A nil Pool runs every
// call on the caller.
func (p *Pool) Run(n int, write func(i int)) {
	if p == nil {
		for i := 0; i < n; i++ {
			write(i)
		}
		return
	}
	if n == 0 {
		return
	}
	p.Begin()
	defer p.End()
	b := &broadcast{n: int64(n), write: write, fin: make(chan struct{})}
	for i, chunks := 0, (n+chunk-1)/chunk; i < min(p.workers, chunks-1); i++ {
		select {
		case p.help <- b:
		default: // every writer is busy (another link's broadcast): no more help
		}
	}
	b.work(false)
	<-b.fin
	if b.panicked.Load() {
		panic(b.panicValue)
	}
}

// Wait is Gate.Wait on a possibly nil Pool.
func (p *Pool) Wait(stop <-chan struct{}, max time.Duration) bool {
	if p == nil {
		return false
	}
	return p.Gate.Wait(stop, max)
}

// broadcast is one Run: writers claim chunks of [0, n) until none is left.
type broadcast struct {
	n, next, done int64 // items; next chunk start; items written
	write         func(i int)
	fin           chan struct{} // closed when done reaches n

	panicOnce  sync.Once
	panicked   atomic.Bool
	panicValue any // the first helper panic; set before panicked
}

// work writes chunks until none is left. A helper's panic is handed to
// the caller, which re-raises it, rather than crash the process from a
// goroutine no supervisor watches.
func (b *broadcast) work(helper bool) {
	for {
		lo := atomic.AddInt64(&b.next, chunk) - chunk
		if lo >= b.n {
			return
		}
		hi := min(lo+chunk, b.n)
		b.writeChunk(lo, hi, helper)
		if atomic.AddInt64(&b.done, hi-lo) == b.n {
			close(b.fin)
		}
	}
}

func (b *broadcast) writeChunk(lo, hi int64, helper bool) {
	if helper {
		defer func() {
			if r := recover(); r != nil {
				b.panicOnce.Do(func() { b.panicValue = r; b.panicked.Store(true) })
			}
		}()
	}
	for i := lo; i < hi; i++ {
		b.write(int(i))
	}
}
