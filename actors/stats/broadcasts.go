package stats

import (
	"sync"
	"time"
)

// Broadcast is one job written to the miners of one pool link.
type Broadcast struct {
	JobAt  time.Time     // when the pool's job arrived at the agent
	Miners int           // miners it was written to
	Write  time.Duration // first miner write to last
	Done   time.Duration // job arrival to the last miner write
}

// BroadcastLog keeps the most recent broadcasts exactly: the histogram's
// power-of-two buckets cannot tell an 80 ms fan-out from a 120 ms one,
// which is the difference an operator (or the benchmark) looks for.
type BroadcastLog struct {
	mu   sync.Mutex
	ring [broadcastLogLen]Broadcast
	next int
	n    int
}

const broadcastLogLen = 32

// Add records b (one call per broadcast, not per miner).
func (l *BroadcastLog) Add(b Broadcast) {
	l.mu.Lock()
	l.ring[l.next] = b
	l.next = (l.next + 1) % broadcastLogLen
	l.n = min(l.n+1, broadcastLogLen)
	l.mu.Unlock()
}

// Recent returns the recorded broadcasts, oldest first.
func (l *BroadcastLog) Recent() []Broadcast {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Broadcast, 0, l.n)
	for i := l.n; i > 0; i-- {
		out = append(out, l.ring[(l.next-i+broadcastLogLen)%broadcastLogLen])
	}
	return out
}
