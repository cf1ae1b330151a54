package fanout

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Every index is written exactly once, for sizes around the chunk edges,
// with two broadcasts running at once (two pool links).
func TestRunWritesEachIndexOnce(t *testing.T) {
	p := NewPool(2)
	defer p.Stop()
	for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 10*chunk + 7} {
		var wg sync.WaitGroup
		for link := 0; link < 2; link++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				seen := make([]atomic.Int32, n)
				p.Run(n, func(i int) {
					if !p.Active() {
						t.Error("the gate is open while a broadcast writes")
					}
					seen[i].Add(1)
				})
				for i := range seen {
					if c := seen[i].Load(); c != 1 {
						t.Errorf("n=%d: index %d written %d times", n, i, c)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	if p.Active() {
		t.Fatal("gate still closed after every Run returned")
	}
}

// A broadcast of several chunks is written by more than one goroutine at
// a time: two chunks meet at a barrier that one goroutine alone could
// never pass.
func TestRunUsesIdleWriters(t *testing.T) {
	p := NewPool(2)
	defer p.Stop()
	var inFlight atomic.Int32
	both := make(chan struct{})
	var once sync.Once
	timeout := time.After(10 * time.Second)
	p.Run(4*chunk, func(i int) {
		if i%chunk != 0 {
			return
		}
		if inFlight.Add(1) == 2 {
			once.Do(func() { close(both) })
		}
		select {
		case <-both:
		case <-timeout:
			t.Error("no second writer joined the broadcast")
			once.Do(func() { close(both) })
		}
	})
}

func TestRunOnNilOrStoppedPoolWritesOnTheCaller(t *testing.T) {
	var nilPool *Pool
	n := 0
	nilPool.Run(3*chunk, func(int) { n++ }) // not atomic: the caller alone writes
	if n != 3*chunk {
		t.Fatalf("nil pool wrote %d of %d", n, 3*chunk)
	}
	if nilPool.Wait(nil, time.Hour) {
		t.Fatal("a nil pool's Wait waited")
	}
	p := NewPool(2)
	p.Stop()
	p.Stop()
	var m atomic.Int64
	p.Run(5*chunk, func(int) { m.Add(1) })
	if m.Load() != 5*chunk {
		t.Fatalf("stopped pool wrote %d of %d", m.Load(), 5*chunk)
	}
}

// A panic on a helper reaches the caller instead of crashing the process,
// after the rest of the broadcast was written.
func TestRunRaisesAHelpersPanicOnTheCaller(t *testing.T) {
	p := NewPool(1)
	defer p.Stop()
	caller := goid()
	var written atomic.Int64
	helperPanics := make(chan struct{})
	var once sync.Once
	got := func() (r any) {
		defer func() { r = recover() }()
		p.Run(8*chunk, func(i int) {
			written.Add(1)
			if goid() != caller {
				once.Do(func() { close(helperPanics); panic("boom") })
				return
			}
			// The caller's first write waits until the helper has joined,
			// so that the helper has a chunk to panic in.
			if i%chunk == 0 {
				select {
				case <-helperPanics:
				case <-time.After(10 * time.Second):
					t.Error("the helper never joined")
				}
			}
		})
		return nil
	}()
	if got != "boom" {
		t.Fatalf("Run returned with %v, want the helper's panic", got)
	}
	if w := written.Load(); w < 7*chunk {
		t.Fatalf("only %d of %d writes happened (a panic loses at most its own chunk)", w, 8*chunk)
	}
	if p.Active() {
		t.Fatal("gate left closed after a panic")
	}
}

// goid is the calling goroutine's number, from its stack header.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	return f[1] // "goroutine <n> [running]:"
}
