// Package stats holds the counters the actors publish for metrics, the status
// API and the minute summary. Counters are the one thing actors share: each is
// written by exactly one actor with atomics and read by anyone, so a status
// request never has to visit 10,000 mailboxes.
package stats

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Listener aggregates one listener's counters.
type Listener struct {
	Name          string
	Port          int
	MinersConn    atomic.Int64 // TCP connections open
	MinersAuth    atomic.Int64 // authorized miners
	Accepted      atomic.Int64 // shares accepted (pool verdict, or forwarded in optimistic mode)
	AcceptedDiff  atomicFloat  // sum of accepted share difficulty
	Rejected      Counters     // shares rejected, by reason
	Refused       Counters     // multi-user authorizes refused, by subaccount.Reason
	LocalRejected atomic.Int64 // rejected by the agent or a plugin without costing uplink
	FakeAnswered  atomic.Int64 // shares on placeholder jobs under the fake policy (unpaid)
	SharesSent    atomic.Int64 // submit frames written upstream
	BytesUp       atomic.Int64 // pool-link bytes written, handshake included (TLS: as on the wire)
	BytesDown     atomic.Int64 // pool-link bytes read, handshake included (TLS: as on the wire)
	Writes        atomic.Int64 // write calls on pool links (≈ TCP pushes)
	Reconnects    atomic.Int64
	Failovers     atomic.Int64
	Disconnects   atomic.Int64
	PluginErrors  atomic.Int64
	RateDropped   atomic.Int64 // miner requests dropped by the per-miner rate limit
	FanoutNanos   *Histogram   // pool job arrival to its last miner write, one sample per broadcast
	Broadcasts    BroadcastLog // the last broadcasts, exactly

	mu     sync.Mutex // guards miners: a plain map costs ~16 B a miner, a sync.Map ~110
	miners map[uint16]*Miner
}

// NewListener returns zeroed counters.
func NewListener(name string, port int) *Listener {
	return &Listener{Name: name, Port: port, FanoutNanos: NewHistogram()}
}

// Counters are event counts by a key from a small fixed set (reject
// reasons, refusal reasons): a key costs a map entry once, an event one
// atomic add.
type Counters struct{ m sync.Map } // string -> *atomic.Int64

// Add counts one event of kind key.
func (c *Counters) Add(key string) {
	v, ok := c.m.Load(key)
	if !ok {
		v, _ = c.m.LoadOrStore(key, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Counts copies the counters.
func (c *Counters) Counts() map[string]int64 {
	out := map[string]int64{}
	c.m.Range(func(k, v any) bool {
		out[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return out
}

// Reject counts a reject by reason.
func (l *Listener) Reject(reason string) { l.Rejected.Add(reason) }

// RejectCounts copies the reject counters.
func (l *Listener) RejectCounts() map[string]int64 { return l.Rejected.Counts() }

// AddMiner registers a miner's stats for the API.
func (l *Listener) AddMiner(m *Miner) {
	l.mu.Lock()
	if l.miners == nil {
		l.miners = map[uint16]*Miner{}
	}
	l.miners[m.SessionID] = m
	l.mu.Unlock()
}

// RemoveMiner forgets a miner.
func (l *Listener) RemoveMiner(sid uint16) {
	l.mu.Lock()
	delete(l.miners, sid)
	l.mu.Unlock()
}

// Miners calls fn for every registered miner until it returns false. fn
// runs on a copy of the set, without the lock: it may be slow.
func (l *Listener) Miners(fn func(*Miner) bool) {
	l.mu.Lock()
	ms := make([]*Miner, 0, len(l.miners))
	for _, m := range l.miners {
		ms = append(ms, m)
	}
	l.mu.Unlock()
	for _, m := range ms {
		if !fn(m) {
			return
		}
	}
}

// Hashrate sums the miners' estimates (H/s).
func (l *Listener) Hashrate(now time.Time) float64 {
	var h float64
	l.Miners(func(m *Miner) bool { h += m.Hashrate(now); return true })
	return h
}

// Miner is one miner's public view. Identity fields are set once before the
// miner is registered; counters are atomics owned by the miner's actor.
type Miner struct {
	SessionID  uint16
	Remote     netip.AddrPort
	Connected  time.Time
	mu         sync.Mutex
	userAgent  string
	worker     string // as the pool shows it: <pool user>.<worker>
	upstream   string
	Accepted   atomic.Int64
	Rejected   atomic.Int64
	Difficulty atomicFloat
	LastShare  atomic.Int64 // unix nanos
	// The hashrate window: accepted difficulty per minute, the bucket of
	// minute k at k % hashBuckets; minutes[i] says which minute bucket i
	// holds (as minutes since winBase, so it fits 32 bits).
	windowMu sync.Mutex
	winBase  int64
	minutes  [hashBuckets]int32
	diffs    [hashBuckets]float32
}

const (
	hashBuckets   = 10
	bucketSeconds = 60
)

// SetIdentity records what the API shows for the miner.
func (m *Miner) SetIdentity(userAgent, worker string) {
	m.mu.Lock()
	m.userAgent, m.worker = userAgent, worker
	m.mu.Unlock()
}

// SetUpstream records which pool link serves the miner.
func (m *Miner) SetUpstream(s string) {
	m.mu.Lock()
	m.upstream = s
	m.mu.Unlock()
}

// Identity returns user agent, worker and upstream.
func (m *Miner) Identity() (userAgent, worker, upstream string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.userAgent, m.worker, m.upstream
}

// AddAccepted records an accepted share of difficulty d for the hashrate estimate.
func (m *Miner) AddAccepted(d float64, now time.Time) {
	m.Accepted.Add(1)
	m.LastShare.Store(now.UnixNano())
	minute := now.Unix() / bucketSeconds
	m.windowMu.Lock()
	if m.winBase == 0 {
		m.winBase = minute - hashBuckets
	}
	i, rel := minute%hashBuckets, int32(minute-m.winBase)
	if m.minutes[i] != rel {
		m.minutes[i], m.diffs[i] = rel, 0
	}
	m.diffs[i] += float32(d)
	m.windowMu.Unlock()
}

// Hashrate estimates H/s from accepted difficulty over the last ~ten minutes
// (or since the miner connected, if later): each difficulty-1 share stands for
// 2^32 hashes on average.
func (m *Miner) Hashrate(now time.Time) float64 {
	minute := now.Unix() / bucketSeconds
	var sum float64
	m.windowMu.Lock()
	for i, rel := range m.minutes {
		if b := m.winBase + int64(rel); m.winBase != 0 && b > minute-hashBuckets && b <= minute {
			sum += float64(m.diffs[i])
		}
	}
	m.windowMu.Unlock()
	// The window is the nine full buckets before this minute plus the part of
	// this minute that has passed.
	start := time.Unix((minute-hashBuckets+1)*bucketSeconds, 0)
	span := now.Sub(start).Seconds()
	if !m.Connected.IsZero() {
		if age := now.Sub(m.Connected).Seconds(); age < span {
			span = math.Max(age, 1)
		}
	}
	return sum * 4294967296 / span
}

type atomicFloat struct{ bits atomic.Uint64 }

// Load reads the value.
func (f *atomicFloat) Load() float64 { return math.Float64frombits(f.bits.Load()) }

// Store sets the value.
func (f *atomicFloat) Store(v float64) { f.bits.Store(math.Float64bits(v)) }

// Add adds delta.
func (f *atomicFloat) Add(delta float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+delta)) {
			return
		}
	}
}
