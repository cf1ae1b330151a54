package farmwatch

import (
	"net/netip"
	"time"
	"unique"

	"github.com/btcagent/btcagent/actors/stats"
)

// The registry holds a record for every miner the farm has had, connected
// or not, so its size per miner is paid across the whole farm and for as
// long as a miner is remembered. Records are therefore kept compact (times
// as unix nanoseconds, repeated strings interned, the address unrendered)
// and stored by value in fixed-size chunks; the exported Miner is built
// only when someone asks.

// state is a Status in one byte; its values index statuses.
type state uint8

const (
	stOnline state = iota
	stIdle
	stSlow
	stOffline
)

var statuses = [...]Status{stOnline: Online, stIdle: Idle, stSlow: Slow, stOffline: Offline}

func (s state) Status() Status { return statuses[s] }

// stateOf reads a status name; an unknown one is online, which a sweep
// soon corrects.
func stateOf(st Status) state {
	for i, s := range statuses {
		if s == st {
			return state(i)
		}
	}
	return stOnline
}

// record is one known miner between sweeps. Its listener and worker name
// are the keys it is found by (book.name, book.index), not fields.
type record struct {
	addr       netip.Addr            // last remote address, IPv4 unmapped; zero: none
	sub        unique.Handle[string] // sub-account: shared by all of a pool user's miners
	ua         unique.Handle[string] // user agent: a farm runs a handful of firmwares
	firstSeen  nano
	lastSeen   nano // last sweep that saw it connected
	lastShare  nano
	since      nano // status since
	avgSince   nano // first sample of the average
	avgAt      nano // last move of the average
	hashrate   float64
	average    float64
	difficulty float64
	sessions   int32
	port       uint16
	status     state
	pending    bool // lastShare is not in the average yet
}

// sighting is what one sweep read of a known miner in the stats, summed
// over its connections. The sweep fills sightings without the registry's
// lock (readers never touch them), so that the API does not wait for the
// stats to be read; the lock is taken only to fold them into the records.
type sighting struct {
	newest    *stats.Miner // the newest connection: address, agent and difficulty
	hashrate  float64
	lastShare nano
	sessions  int32
	gen       uint32 // the sweep that filled it: any other means not seen
}

// add counts one connection of the miner.
func (s *sighting) add(m *stats.Miner, now time.Time) {
	s.sessions++
	s.hashrate += m.Hashrate(now)
	if ns := nano(m.LastShare.Load()); ns > s.lastShare {
		s.lastShare = ns
	}
	if s.newest == nil || m.Connected.After(s.newest.Connected) || s.newest.Connected.IsZero() {
		s.newest = m
	}
}

// chunkSize is small enough that a farm wastes at most one partly used
// chunk, and 64 records with their sightings (152 B each, 9,728 B) happen
// to fill one of the allocator's size classes exactly.
const chunkSize = 64

type chunk struct {
	rec [chunkSize]record
	saw [chunkSize]sighting
}

// book is one listener's known miners. A miner's slot never moves while it
// is known; slots of forgotten miners are reused.
type book struct {
	name   string
	index  map[string]int32 // worker name -> slot
	chunks []*chunk
	free   []int32
}

func newBook(name string) *book { return &book{name: name, index: map[string]int32{}} }

func (b *book) rec(i int32) *record { return &b.chunks[i/chunkSize].rec[i%chunkSize] }

func (b *book) saw(i int32) *sighting { return &b.chunks[i/chunkSize].saw[i%chunkSize] }

// add gives worker a slot holding a zero record.
func (b *book) add(worker string) int32 {
	var i int32
	if n := len(b.free); n > 0 {
		i, b.free = b.free[n-1], b.free[:n-1]
	} else {
		i = int32(len(b.index))
		if int(i)/chunkSize == len(b.chunks) {
			b.chunks = append(b.chunks, &chunk{})
		}
	}
	b.index[worker] = i
	return i
}

// forget frees a miner's slot; zeroing it lets go of its strings.
func (b *book) forget(worker string, i int32) {
	delete(b.index, worker)
	*b.rec(i), *b.saw(i) = record{}, sighting{}
	b.free = append(b.free, i)
}

// view is the record as the API and tests see it. Address is left empty:
// rendering it allocates, so callers that filter first render it only for
// the miners they keep (see address).
func (r *record) view(m *Miner, listener, worker string) {
	*m = Miner{
		Listener: listener, Worker: worker, SubAccount: text(r.sub), UserAgent: text(r.ua),
		FirstSeen: r.firstSeen.t(), LastSeen: r.lastSeen.t(), LastShare: r.lastShare.t(),
		Hashrate: r.hashrate, Average: r.average, Difficulty: r.difficulty, Sessions: int(r.sessions),
		Status: r.status.Status(), Since: r.since.t(),
	}
}

func (r *record) address() string {
	if !r.addr.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(r.addr, r.port).String()
}

// setAddress keeps a, IPv4 miners on a dual-stack socket (::ffff:a.b.c.d)
// as a.b.c.d.
func (r *record) setAddress(a netip.AddrPort) {
	r.addr, r.port = a.Addr().Unmap(), a.Port()
}

func intern(s string) unique.Handle[string] { return unique.Make(s) }

func text(h unique.Handle[string]) string {
	if h == (unique.Handle[string]{}) {
		return ""
	}
	return h.Value()
}

// nano is a time as unix nanoseconds, 0 for none: 8 bytes where a
// time.Time takes 24.
type nano int64

func nanoOf(t time.Time) nano {
	if t.IsZero() {
		return 0
	}
	return nano(t.UnixNano())
}

func (n nano) t() time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(n))
}
