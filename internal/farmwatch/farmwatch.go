// Package farmwatch remembers every miner the agent has seen and says which
// ones stopped or slowed down, since when, and where they were.
//
// The actors already publish each connected miner's identity, address,
// hashrate estimate and last share time in package stats. A Watcher reads
// those snapshots on a timer (a sweep), so nothing here runs on the share
// path: a sweep costs one pass over the connected miners, every
// sweep_interval. Miners that leave the stats stay in the registry and turn
// offline after a grace period; the registry is bounded by an expiry and a
// cap, and may be persisted to a small JSON file so that a restart does not
// forget the farm.
//
// Each sweep also derives farm-level events (hashrate drop, pool link down
// and up, failover) from the listeners' counters and the coordinators'
// snapshots, and hands every transition to its subscribers, such as the
// farm-watch alerting plugin. Subscribers are called on the sweep goroutine
// and must not block.
package farmwatch

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/fanout"
	"github.com/sirupsen/logrus"
)

// Status is what the registry thinks of a miner.
type Status string

// Statuses, from best to worst. A connected miner is online, idle or slow;
// a miner gone for longer than the grace period is offline.
const (
	Online  Status = "online"
	Idle    Status = "idle"
	Slow    Status = "slow"
	Offline Status = "offline"
)

// Statuses lists every status in a fixed order (metrics, API, dashboard).
var Statuses = []Status{Online, Idle, Slow, Offline}

// ParseStatus accepts the names above.
func ParseStatus(s string) (Status, bool) {
	st := Status(s)
	return st, slices.Contains(Statuses, st)
}

// subAccount is the sub-account of a miner known by its worker name as the
// pool sees it ("<sub-account>.<worker>"). A sub-account never contains a
// dot, so on a multi-user listener it is the name up to the first one.
func (l *Listener) subAccount(worker string) string {
	if l.PoolUser != "" {
		return l.PoolUser
	}
	sub, _, _ := strings.Cut(worker, ".")
	return sub
}

// Listener is what a sweep reads of one listener.
type Listener struct {
	Name     string
	PoolUser string // the sub-account the listener's miners work for; "" on a multi-user listener, where each miner's name says
	Stats    *stats.Listener
	// Links reports the listener's pool link slots; nil means no link events.
	Links func() ([]wire.UpstreamState, error)
}

// Source lists the running listeners; it is called once per sweep because a
// reload may replace them.
type Source func() []Listener

// Miner is one known miner, as the registry shows it (it keeps its own,
// more compact records). Miners are keyed by listener and worker name: the
// name is what the pool shows and what survives reconnections, while the
// address and session change.
type Miner struct {
	Listener   string    `json:"listener"`
	Worker     string    `json:"worker"`      // as the pool sees it: <pool user>.<worker>
	SubAccount string    `json:"sub_account"` // the pool user the miner works for
	Address    string    `json:"address"`     // last remote address, ip:port
	UserAgent  string    `json:"user_agent"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`        // last sweep that saw it connected
	LastShare  time.Time `json:"last_share"`       // last accepted share (zero: none seen)
	Hashrate   float64   `json:"hashrate"`         // H/s, last estimate while connected
	Average    float64   `json:"average_hashrate"` // H/s, moving average over slow_window
	Difficulty float64   `json:"difficulty"`       // last difficulty
	Sessions   int       `json:"sessions"`         // connections open now under this name
	Status     Status    `json:"status"`           // see the constants
	Since      time.Time `json:"status_since"`     // when the status began (offline: last seen)
}

// Kind names an event.
type Kind string

// Event kinds.
const (
	MinerOffline Kind = "miner_offline"  // gone longer than offline_after
	MinerOnline  Kind = "miner_online"   // back after being offline
	HashrateDrop Kind = "hashrate_drop"  // farm hashrate fell by more than hashrate_drop_percent
	LinkDown     Kind = "pool_link_down" // a pool link has been down longer than link_down_after
	LinkUp       Kind = "pool_link_up"   // ... and is back
	Failover     Kind = "failover"       // miners moved to another link, or a link to a later pool
)

// Kinds lists every event kind.
var Kinds = []Kind{MinerOffline, MinerOnline, HashrateDrop, LinkDown, LinkUp, Failover}

// Event is one transition. Fields that do not apply to a kind are empty.
type Event struct {
	Kind      Kind      `json:"kind"`
	Time      time.Time `json:"time"`
	Listener  string    `json:"listener,omitempty"`
	Worker    string    `json:"worker,omitempty"`
	Address   string    `json:"address,omitempty"`
	Since     time.Time `json:"since,omitzero"`             // offline: last seen; online: offline since; link: down since
	Seconds   float64   `json:"duration_seconds,omitempty"` // how long it had lasted
	Pool      string    `json:"pool,omitempty"`
	Slot      int       `json:"slot,omitempty"`
	From      float64   `json:"from_hashrate,omitempty"` // hashrate_drop: highest in the window, H/s
	To        float64   `json:"to_hashrate,omitempty"`   // hashrate_drop: now, H/s
	Percent   float64   `json:"percent,omitempty"`       // hashrate_drop: how much it fell
	Count     int64     `json:"count,omitempty"`         // failover: failovers since the last sweep
	Hashrate  float64   `json:"hashrate,omitempty"`      // miner events: last known hashrate
	UserAgent string    `json:"user_agent,omitempty"`
}

// Events is the subscription interface the alerting plugin needs.
type Events interface {
	// Subscribe calls fn with the events of each sweep that has any, on the
	// sweep goroutine: fn must not block. cancel stops the calls.
	Subscribe(fn func([]Event)) (cancel func())
	// Done is closed when the registry stops for good (agent shutdown), so
	// that subscribers can release what they hold.
	Done() <-chan struct{}
}

// Watcher owns the registry and the sweep loop.
type Watcher struct {
	src     Source
	log     logrus.FieldLogger
	started time.Time

	mu         sync.Mutex
	opts       config.FarmWatchOptions
	books      map[string]*book // by listener; changed only with sweepMu held too, so a sweep may read it without mu
	farm       []sample         // farm hashrate within hashrate_drop_window
	dropActive bool
	links      map[linkKey]*linkState
	failovers  map[string]failoverState
	dirty      bool // changed since the last save
	lastSave   time.Time

	subMu   sync.Mutex
	subs    map[int]func([]Event)
	nextSub int

	sweepMu sync.Mutex // one sweep at a time: it owns the sightings and changes the books
	gen     uint32     // the sweep under way, for its sightings

	gate *fanout.Gate // set before Start; nil: sweeps never wait

	loopMu   sync.Mutex
	stop     chan struct{}
	done     chan struct{}
	final    chan struct{} // closed by Stop
	stopOnce sync.Once
}

type sample struct {
	at time.Time
	h  float64
}

type linkKey struct {
	listener string
	slot     int
}

type linkState struct {
	downSince time.Time
	pool      string
	alerted   bool
	seen      bool
}

type failoverState struct {
	st *stats.Listener
	n  int64
}

// New builds a watcher and loads the state file, if one is configured; a
// missing or unreadable file is logged and the registry starts empty.
func New(opts config.FarmWatchOptions, src Source, log logrus.FieldLogger) *Watcher {
	if log == nil {
		log = logrus.New()
	}
	w := &Watcher{
		src: src, log: log.WithField("component", "farm-watch"), started: time.Now(), opts: withDefaults(opts),
		books: map[string]*book{}, links: map[linkKey]*linkState{}, failovers: map[string]failoverState{},
		subs: map[int]func([]Event){}, final: make(chan struct{}),
	}
	w.load()
	return w
}

// StandAsideFor makes the sweeps wait while g reports a job broadcast in
// progress (at most fanout.MaxWait each). Call it before Start.
func (w *Watcher) StandAsideFor(g *fanout.Gate) { w.gate = g }

func withDefaults(o config.FarmWatchOptions) config.FarmWatchOptions {
	d := config.DefaultFarmWatch()
	orDefault(&o.Expire, d.Expire)
	orDefault(&o.MaxMiners, d.MaxMiners)
	orDefault(&o.Grace, d.Grace)
	orDefault(&o.IdleFactor, d.IdleFactor)
	orDefault(&o.IdleMin, d.IdleMin)
	orDefault(&o.SlowWindow, d.SlowWindow)
	orDefault(&o.HashrateDropWindow, d.HashrateDropWindow)
	orDefault(&o.LinkDownAfter, d.LinkDownAfter)
	orDefault(&o.SweepInterval, d.SweepInterval)
	orDefault(&o.SaveInterval, d.SaveInterval)
	return o
}

// orDefault replaces an unset (zero or negative) setting with its default.
func orDefault[T int | float64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// SetOptions applies new thresholds (a config reload). They take effect at
// the next sweep; a new sweep interval at the next restart of the loop.
func (w *Watcher) SetOptions(opts config.FarmWatchOptions) {
	w.mu.Lock()
	w.opts = withDefaults(opts)
	w.dirty = true
	w.mu.Unlock()
}

// Options returns the options in force.
func (w *Watcher) Options() config.FarmWatchOptions {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.opts
}

// Subscribe implements Events.
func (w *Watcher) Subscribe(fn func([]Event)) (cancel func()) {
	w.subMu.Lock()
	id := w.nextSub
	w.nextSub++
	w.subs[id] = fn
	w.subMu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			w.subMu.Lock()
			delete(w.subs, id)
			w.subMu.Unlock()
		})
	}
}

func (w *Watcher) publish(evs []Event) {
	if len(evs) == 0 {
		return
	}
	w.subMu.Lock()
	fns := make([]func([]Event), 0, len(w.subs))
	for _, fn := range w.subs {
		fns = append(fns, fn)
	}
	w.subMu.Unlock()
	for _, fn := range fns {
		fn(evs)
	}
}

// Start runs the sweep loop until Stop.
func (w *Watcher) Start() {
	w.loopMu.Lock()
	defer w.loopMu.Unlock()
	if w.stop != nil {
		return
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.loop(w.stop, w.done, w.Options().SweepInterval)
}

// Done implements Events.
func (w *Watcher) Done() <-chan struct{} { return w.final }

// Stop ends the loop and writes the state file one last time; the watcher
// is not meant to be started again.
func (w *Watcher) Stop() {
	defer w.stopOnce.Do(func() { close(w.final) })
	w.loopMu.Lock()
	stop, done := w.stop, w.done
	w.stop, w.done = nil, nil
	w.loopMu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	w.save(time.Now(), true)
}

func (w *Watcher) loop(stop, done chan struct{}, every time.Duration) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			// A sweep reads every miner's statistics: not while the same
			// cores are writing a job to all of them.
			if w.gate.Wait(stop, fanout.MaxWait) {
				now = time.Now()
			}
			w.Sweep(now)
			w.save(now, false)
		}
	}
}

// observed is one listener as read from stats, outside the lock.
type observed struct {
	l      Listener
	b      *book                // its known miners; nil: none yet
	fresh  map[string]*sighting // miners not known yet
	links  []wire.UpstreamState
	linkOK bool
}

// read observes one listener. Known miners are summed up in their own
// sightings, so a sweep over a farm that has not changed allocates nothing
// per miner and keeps no per-miner scratch of its own.
func (w *Watcher) read(l Listener, now time.Time) observed {
	o := observed{l: l, b: w.books[l.Name]}
	if l.Stats != nil {
		l.Stats.Miners(func(m *stats.Miner) bool {
			_, worker, _ := m.Identity()
			if worker == "" {
				return true // not authorized yet: no name to remember it by
			}
			var s *sighting
			if i, ok := o.b.lookup(worker); ok {
				if s = o.b.saw(i); s.gen != w.gen {
					*s = sighting{gen: w.gen}
				}
			} else {
				if s = o.fresh[worker]; s == nil {
					if o.fresh == nil {
						o.fresh = map[string]*sighting{}
					}
					s = &sighting{gen: w.gen}
					o.fresh[worker] = s
				}
			}
			s.add(m, now)
			return true
		})
	}
	if l.Links != nil {
		if ups, err := l.Links(); err == nil {
			o.links, o.linkOK = ups, true
		}
	}
	return o
}

// Sweep reads the listeners, updates the registry at time now and returns
// (and publishes) the transitions. The loop calls it; tests may too.
func (w *Watcher) Sweep(now time.Time) []Event {
	var ls []Listener
	if w.src != nil {
		ls = w.src()
	}
	w.sweepMu.Lock()
	defer w.sweepMu.Unlock()
	// 0 is the generation of a sighting never filled.
	if w.gen++; w.gen == 0 {
		w.gen = 1
	}
	seen := make([]observed, 0, len(ls))
	for _, l := range ls {
		seen = append(seen, w.read(l, now))
	}
	w.mu.Lock()
	evs := w.update(seen, now)
	w.mu.Unlock()
	w.publish(evs)
	return evs
}

func (w *Watcher) update(seen []observed, now time.Time) []Event {
	var evs []Event
	// New miners get a record first, so that one pass judges every miner.
	for k := range seen {
		lo := &seen[k]
		if len(lo.fresh) == 0 {
			continue
		}
		if lo.b == nil {
			lo.b = w.book(lo.l.Name)
		}
		for worker, s := range lo.fresh {
			i, ok := lo.b.index[worker]
			if !ok {
				i = lo.b.add(worker)
				*lo.b.rec(i) = record{firstSeen: nanoOf(now), status: stOnline, since: nanoOf(now)}
			}
			*lo.b.saw(i) = *s
		}
	}
	var farm float64
	for _, b := range w.books {
		var l *Listener
		for k := range seen {
			if seen[k].l.Name == b.name {
				l = &seen[k].l
				break
			}
		}
		for worker, i := range b.index {
			r, s := b.rec(i), b.saw(i)
			if l != nil && s.gen == w.gen {
				evs = w.seen(evs, l, worker, r, s, now)
				farm += s.hashrate
			} else {
				evs = w.unseen(evs, b.name, worker, r, now)
			}
		}
	}
	// A message lists miners in a stable order: by listener, then name.
	slices.SortFunc(evs, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.Worker, b.Worker))
	})
	w.expire(now)
	evs = append(evs, w.farmDrop(farm, now)...)
	evs = append(evs, w.linkEvents(seen, now)...)
	evs = append(evs, w.failoverEvents(seen, now)...)
	w.dirty = true
	return evs
}

// book returns a listener's book, making it if needed.
func (w *Watcher) book(listener string) *book {
	b := w.books[listener]
	if b == nil {
		b = newBook(listener)
		w.books[listener] = b
	}
	return b
}

// lookup works on a nil book (a listener with no known miner).
func (b *book) lookup(worker string) (int32, bool) {
	if b == nil {
		return 0, false
	}
	i, ok := b.index[worker]
	return i, ok
}

// seen folds a sweep's sighting of a connected miner into its record.
func (w *Watcher) seen(evs []Event, l *Listener, worker string, r *record, s *sighting, now time.Time) []Event {
	c := s.newest
	// The sighting must not keep a closed connection's stats alive until
	// the next sweep.
	s.newest = nil
	ua, _, _ := c.Identity()
	r.setAddress(c.Remote)
	if r.status == stOffline {
		evs = append(evs, Event{Kind: MinerOnline, Time: now, Listener: l.Name, Worker: worker,
			Address: r.address(), Since: r.since.t(), Seconds: now.Sub(r.since.t()).Seconds(), UserAgent: ua, Hashrate: r.hashrate})
		r.status, r.since = stOnline, nanoOf(now)
	}
	// Interning costs a lookup in a shared table: only when they change.
	if sub := l.subAccount(worker); text(r.sub) != sub {
		r.sub = intern(sub)
	}
	if text(r.ua) != ua {
		r.ua = intern(ua)
	}
	r.lastSeen, r.sessions, r.hashrate, r.difficulty = nanoOf(now), s.sessions, s.hashrate, c.Difficulty.Load()
	if s.lastShare > r.lastShare {
		r.lastShare = s.lastShare
		r.pending = true
	}
	w.average(r, now)
	// Activity is the last share, or the connection if later.
	if st := w.status(r, max(nanoOf(c.Connected), r.lastShare), now); st != r.status {
		r.status, r.since = st, nanoOf(now)
	}
	return evs
}

// unseen judges a miner no longer connected: offline once gone longer than
// the grace period. After a restart the grace counts from the start, so a
// farm that is reconnecting is not reported as gone.
func (w *Watcher) unseen(evs []Event, listener, worker string, r *record, now time.Time) []Event {
	r.sessions = 0
	if r.status == stOffline {
		return evs
	}
	gone := max(r.lastSeen, nanoOf(w.started))
	if now.Sub(gone.t()) < w.opts.Grace {
		return evs
	}
	r.status, r.since = stOffline, r.lastSeen
	return append(evs, Event{Kind: MinerOffline, Time: now, Listener: listener, Worker: worker, Address: r.address(),
		Since: r.lastSeen.t(), Seconds: now.Sub(r.lastSeen.t()).Seconds(), UserAgent: text(r.ua), Hashrate: r.hashrate})
}

// average moves the miner's own hashrate average: an exponential moving
// average with slow_window as its time constant, so that it needs no
// per-miner history and costs the same for 10 or 100,000 miners.
//
// The average starts with the miner's first share (a freshly connected
// miner's estimate of 0 would otherwise anchor it for an hour), and until
// it is one window old it is the mean of the samples so far, so that it is
// not biased towards its first value. It only moves on sweeps that saw a
// new share: it is the miner's rate while it works, so a silent miner does
// not drag down its own idle threshold (the expected share interval).
func (w *Watcher) average(r *record, now time.Time) {
	if !r.pending {
		return
	}
	r.pending = false
	if r.avgSince == 0 || r.avgAt == 0 {
		r.average, r.avgSince, r.avgAt = r.hashrate, nanoOf(now), nanoOf(now)
		return
	}
	dt := now.Sub(r.avgAt.t()).Seconds()
	if dt <= 0 {
		return
	}
	alpha := 1 - math.Exp(-dt/w.opts.SlowWindow.Seconds())
	if age := now.Sub(r.avgSince.t()).Seconds(); age > 0 {
		alpha = max(alpha, dt/(age+dt))
	}
	r.average += alpha * (r.hashrate - r.average)
	r.avgAt = nanoOf(now)
}

// status judges a connected miner. Idle wins over slow: a miner that sends
// nothing is also slow, and idle says more.
func (w *Watcher) status(r *record, activity nano, now time.Time) state {
	o := &w.opts
	idleAfter := o.IdleMin
	if r.average > 0 && r.difficulty > 0 {
		// A share of difficulty d takes d * 2^32 hashes on average.
		expected := time.Duration(r.difficulty * 4294967296 / r.average * float64(time.Second))
		if d := time.Duration(o.IdleFactor * float64(expected)); d > idleAfter {
			idleAfter = d
		}
	}
	if activity != 0 && now.Sub(activity.t()) >= idleAfter {
		return stIdle
	}
	// The average needs a sixth of its window before it means anything.
	warm := r.avgSince != 0 && now.Sub(r.avgSince.t()) >= o.SlowWindow/6
	if warm && r.average > 0 && r.hashrate < r.average*o.SlowPercent/100 {
		return stSlow
	}
	return stOnline
}

// expire forgets miners unseen for longer than expire, then the longest
// unseen ones beyond max_miners. Connected miners are never dropped.
func (w *Watcher) expire(now time.Time) {
	o := &w.opts
	known := 0
	for _, b := range w.books {
		for worker, i := range b.index {
			if b.saw(i).gen != w.gen && now.Sub(b.rec(i).lastSeen.t()) > o.Expire {
				b.forget(worker, i)
			}
		}
		known += len(b.index)
	}
	if over := known - o.MaxMiners; over > 0 {
		type slot struct {
			b      *book
			worker string
			i      int32
		}
		var gone []slot
		for _, b := range w.books {
			for worker, i := range b.index {
				if b.saw(i).gen != w.gen {
					gone = append(gone, slot{b, worker, i})
				}
			}
		}
		slices.SortFunc(gone, func(x, y slot) int { return cmp.Compare(x.b.rec(x.i).lastSeen, y.b.rec(y.i).lastSeen) })
		for _, g := range gone[:min(over, len(gone))] {
			g.b.forget(g.worker, g.i)
		}
	}
	for name, b := range w.books {
		if len(b.index) == 0 {
			delete(w.books, name)
		}
	}
}

// farmDrop compares the farm hashrate with its highest value within the
// window; it fires once per drop and re-arms when the farm recovers.
func (w *Watcher) farmDrop(h float64, now time.Time) []Event {
	o := &w.opts
	cut := now.Add(-o.HashrateDropWindow)
	i := 0
	for i < len(w.farm) && w.farm[i].at.Before(cut) {
		i++
	}
	w.farm = append(w.farm[i:], sample{now, h})
	var peak float64
	for _, s := range w.farm {
		peak = max(peak, s.h)
	}
	if peak <= 0 || o.HashrateDropPercent <= 0 {
		return nil
	}
	fell := 100 * (peak - h) / peak
	switch {
	case fell > o.HashrateDropPercent && !w.dropActive:
		w.dropActive = true
		return []Event{{Kind: HashrateDrop, Time: now, Since: w.farm[0].at, Seconds: now.Sub(w.farm[0].at).Seconds(), From: peak, To: h, Percent: math.Round(fell*10) / 10}}
	case fell <= o.HashrateDropPercent/2:
		w.dropActive = false
	}
	return nil
}

func (w *Watcher) linkEvents(seen []observed, now time.Time) []Event {
	var evs []Event
	for _, s := range w.links {
		s.seen = false
	}
	for _, lo := range seen {
		if !lo.linkOK {
			// The coordinator did not answer: keep what is known.
			for k, s := range w.links {
				if k.listener == lo.l.Name {
					s.seen = true
				}
			}
			continue
		}
		for _, u := range lo.links {
			k := linkKey{lo.l.Name, u.Slot}
			s := w.links[k]
			if s == nil {
				s = &linkState{}
				w.links[k] = s
			}
			s.seen = true
			if u.Pool != "" {
				s.pool = u.Pool
			}
			if u.Ready {
				if s.alerted {
					evs = append(evs, Event{Kind: LinkUp, Time: now, Listener: k.listener, Slot: k.slot, Pool: s.pool, Since: s.downSince, Seconds: now.Sub(s.downSince).Seconds()})
				}
				s.downSince, s.alerted = time.Time{}, false
				continue
			}
			if s.downSince.IsZero() {
				s.downSince = now
			}
			if !s.alerted && now.Sub(s.downSince) >= w.opts.LinkDownAfter {
				s.alerted = true
				evs = append(evs, Event{Kind: LinkDown, Time: now, Listener: k.listener, Slot: k.slot, Pool: s.pool, Since: s.downSince, Seconds: now.Sub(s.downSince).Seconds()})
			}
		}
	}
	for k, s := range w.links {
		if !s.seen {
			delete(w.links, k) // the listener or slot went away with a reload
		}
	}
	slices.SortFunc(evs, func(a, b Event) int { return cmp.Or(cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.Slot, b.Slot)) })
	return evs
}

func (w *Watcher) failoverEvents(seen []observed, now time.Time) []Event {
	var evs []Event
	names := map[string]bool{}
	for _, lo := range seen {
		st := lo.l.Stats
		if st == nil {
			continue
		}
		names[lo.l.Name] = true
		n := st.Failovers.Load()
		prev, ok := w.failovers[lo.l.Name]
		w.failovers[lo.l.Name] = failoverState{st, n}
		// A replaced stats object (reload) restarts the count: no event.
		if ok && prev.st == st && n > prev.n {
			evs = append(evs, Event{Kind: Failover, Time: now, Listener: lo.l.Name, Count: n - prev.n})
		}
	}
	for name := range w.failovers {
		if !names[name] {
			delete(w.failovers, name)
		}
	}
	return evs
}

// Miners returns a copy of the known miners with the given status (all when
// status is ""), sorted by listener and worker.
func (w *Watcher) Miners(status Status) []Miner {
	return w.MinersWhere(func(m *Miner) bool { return status == "" || m.Status == status })
}

// MinersWhere returns a copy of the known miners for which keep is true,
// sorted by listener and worker. keep runs under the registry's lock and
// must not call the watcher. The miner it is shown has no Address yet:
// addresses are rendered for the miners kept only.
func (w *Watcher) MinersWhere(keep func(*Miner) bool) []Miner {
	w.mu.Lock()
	var out []Miner
	var m Miner
	for _, b := range w.books {
		for worker, i := range b.index {
			r := b.rec(i)
			r.view(&m, b.name, worker)
			if keep(&m) {
				m.Address = r.address()
				out = append(out, m)
			}
		}
	}
	w.mu.Unlock()
	slices.SortFunc(out, func(a, b Miner) int {
		return cmp.Or(cmp.Compare(a.Listener, b.Listener), cmp.Compare(a.Worker, b.Worker))
	})
	return out
}

// find is a known miner's record; mu held.
func (w *Watcher) find(listener, worker string) (*record, bool) {
	b := w.books[listener]
	i, ok := b.lookup(worker)
	if !ok {
		return nil, false
	}
	return b.rec(i), true
}

// Status returns a known miner's status and since when, without building
// the whole view (the API asks for every connected miner).
func (w *Watcher) Status(listener, worker string) (Status, time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.find(listener, worker)
	if !ok {
		return "", time.Time{}, false
	}
	return r.status.Status(), r.since.t(), true
}

// Lookup returns one known miner.
func (w *Watcher) Lookup(listener, worker string) (Miner, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	r, ok := w.find(listener, worker)
	if !ok {
		return Miner{}, false
	}
	var m Miner
	r.view(&m, listener, worker)
	m.Address = r.address()
	return m, true
}

// Counts returns, per listener, the number of known miners in each status.
// Every status of every listener that has known miners is present.
func (w *Watcher) Counts() map[string]map[Status]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts()
}

func (w *Watcher) counts() map[string]map[Status]int {
	out := map[string]map[Status]int{}
	for _, b := range w.books {
		if len(b.index) == 0 {
			continue
		}
		var n [len(statuses)]int
		for _, i := range b.index {
			n[b.rec(i).status]++
		}
		c := make(map[Status]int, len(statuses))
		for s, k := range n {
			c[statuses[s]] = k
		}
		out[b.name] = c
	}
	return out
}

// Len is the number of known miners.
func (w *Watcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.known()
}

func (w *Watcher) known() int {
	n := 0
	for _, b := range w.books {
		n += len(b.index)
	}
	return n
}
