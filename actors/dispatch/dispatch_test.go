package dispatch

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestPoolRunsEverythingAndNeverBlocksTheSender(t *testing.T) {
	p := New(2, 4, 10)
	var n atomic.Int64
	var wg sync.WaitGroup
	block := make(chan struct{})
	// Occupy both workers and fill the queue: Schedule must still return.
	for i := 0; i < 2; i++ {
		wg.Add(1)
		p.Schedule(func() { <-block; n.Add(1); wg.Done() })
	}
	for i := 0; i < 100; i++ {
		wg.Add(1)
		p.Schedule(func() { n.Add(1); wg.Done() })
	}
	close(block)
	wg.Wait()
	if n.Load() != 102 {
		t.Fatalf("ran %d of 102", n.Load())
	}
	if p.Throughput() != 10 {
		t.Fatal("throughput")
	}
	p.Close()
}
