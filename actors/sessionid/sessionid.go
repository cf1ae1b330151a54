// Package sessionid allocates the 16-bit session ids that name miners in every
// binary message. There is one allocator per process, shared by all listeners
// and upstream links, because the pool keys miners by id on each agent
// connection and a miner may move between connections.
package sessionid

import (
	"math/bits"
	"sync"

	"github.com/btcagent/btcagent/codec"
)

// Count is how many ids exist: 0..0xFFFE (0xFFFF is sserver's invalid sentinel).
const Count = codec.MaxSessionID + 1

// Allocator hands out ids round-robin from a bitset, so a just-freed id is
// not reused at once and late frames for an old miner cannot hit a new one.
type Allocator struct {
	mu    sync.Mutex
	used  [(Count + 63) / 64]uint64
	next  int
	inUse int
	limit int
}

// New returns an allocator for ids below limit (0 or above Count means all).
func New(limit int) *Allocator {
	if limit <= 0 || limit > Count {
		limit = Count
	}
	return &Allocator{limit: limit}
}

// Alloc returns a free id, or false when all are taken.
func (a *Allocator) Alloc() (uint16, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.inUse >= a.limit {
		return 0, false
	}
	for scanned := 0; scanned <= a.limit; {
		i := a.next
		word := a.used[i/64] | (uint64(1)<<(i%64) - 1) // ignore bits before i in this word
		if word != ^uint64(0) {
			bit := bits.TrailingZeros64(^word)
			id := (i/64)*64 + bit
			if id < a.limit {
				a.used[id/64] |= 1 << (id % 64)
				a.inUse++
				a.next = (id + 1) % a.limit
				return uint16(id), true
			}
		}
		step := 64 - i%64
		scanned += step
		a.next = (i + step) % a.limit
		if i+step >= a.limit {
			a.next = 0
		}
	}
	return 0, false
}

// Free releases an id; freeing a free id is a no-op.
func (a *Allocator) Free(id uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if int(id) >= a.limit || a.used[id/64]&(1<<(id%64)) == 0 {
		return
	}
	a.used[id/64] &^= 1 << (id % 64)
	a.inUse--
}

// InUse is the number of allocated ids.
func (a *Allocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse
}
