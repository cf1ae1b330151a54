package coordinator

import (
	"sync"

	"github.com/btcagent/btcagent/actors/wire"
)

// Registry is a listener's live miner sessions by id. The accept path adds
// a session before the coordinator hears of it; the coordinator removes it
// when the miner is gone. It is the one piece of the coordinator's state
// that survives a restart.
type Registry struct {
	mu      sync.Mutex
	m       map[uint16]wire.Miner
	started bool // a coordinator has started on it: the next start is a restart
	slots   int  // slot indices handed out, by every instance of the coordinator
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{m: map[uint16]wire.Miner{}} }

// Add records a session.
func (r *Registry) Add(sid uint16, m wire.Miner) {
	r.mu.Lock()
	r.m[sid] = m
	r.mu.Unlock()
}

func (r *Registry) remove(sid uint16) {
	r.mu.Lock()
	delete(r.m, sid)
	r.mu.Unlock()
}

// Len is the number of live sessions.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

// newSlot hands out a slot index. The count survives a restart, so a
// restarted coordinator never reuses the index of a slot whose late
// messages may still be in its mailbox.
func (r *Registry) newSlot() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.slots++
	return r.slots - 1
}

func (r *Registry) slotsIssued() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.slots
}

// takeover returns the live sessions for a restarted coordinator, and
// nothing on the first start: sessions that arrive before the first
// coordinator has run are told to it by their MinerOpened.
func (r *Registry) takeover() map[uint16]wire.Miner {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.started {
		r.started = true
		return nil
	}
	out := make(map[uint16]wire.Miner, len(r.m))
	for k, v := range r.m {
		out[k] = v
	}
	return out
}
