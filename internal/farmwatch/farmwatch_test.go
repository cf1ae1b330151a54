package farmwatch

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/config"
	"github.com/sirupsen/logrus"
)

// rig is a hand-driven listener: miners are added to and removed from its
// stats exactly as the actors do, and sweeps run at chosen times.
type rig struct {
	t     *testing.T
	st    *stats.Listener
	w     *Watcher
	now   time.Time
	links []wire.UpstreamState
	mu    sync.Mutex
	next  uint16
	user  string // the listener's pool user; "" makes it multi-user
	log   *bytes.Buffer
}

func testOptions() config.FarmWatchOptions {
	o := config.DefaultFarmWatch()
	o.Grace = 30 * time.Second
	o.IdleMin = time.Minute
	o.SlowWindow = time.Hour
	o.HashrateDropPercent = 0 // off unless a test is about it
	return o
}

func newRig(t *testing.T, o config.FarmWatchOptions) *rig {
	r := &rig{t: t, user: "farm", st: stats.NewListener("main", 3333), now: time.Unix(1_800_000_000, 0), log: &bytes.Buffer{}}
	log := logrus.New()
	log.SetOutput(r.log)
	r.w = New(o, r.source, log)
	r.w.started = r.now
	return r
}

func (r *rig) source() []Listener {
	return []Listener{{Name: "main", PoolUser: r.user, Stats: r.st, Links: func() ([]wire.UpstreamState, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		return append([]wire.UpstreamState(nil), r.links...), nil
	}}}
}

// connect registers a miner that has just connected at r.now.
func (r *rig) connect(worker, addr string) *stats.Miner {
	r.next++
	m := &stats.Miner{SessionID: r.next, Remote: netip.MustParseAddrPort(addr), Connected: r.now}
	m.SetIdentity("cgminer/4.10.0", worker)
	m.Difficulty.Store(1)
	r.st.AddMiner(m)
	return m
}

func (r *rig) sweep(d time.Duration) []Event {
	r.now = r.now.Add(d)
	return r.w.Sweep(r.now)
}

func (r *rig) status(worker string) Status {
	m, ok := r.w.Lookup("main", worker)
	if !ok {
		r.t.Fatalf("%s is not known", worker)
	}
	return m.Status
}

func kinds(evs []Event) map[Kind]int {
	out := map[Kind]int{}
	for _, e := range evs {
		out[e.Kind]++
	}
	return out
}

// A miner that leaves is remembered with its last address, turns offline
// only once the grace period has passed, is reported once, and comes back
// online with one event when it reconnects.
func TestOfflineAfterGraceAndBack(t *testing.T) {
	r := newRig(t, testOptions())
	m := r.connect("farm.rig1", "10.1.2.3:4000")
	m.AddAccepted(1, r.now)
	if evs := r.sweep(time.Second); len(evs) != 0 || r.status("farm.rig1") != Online {
		t.Fatalf("first sweep: %v, %s", evs, r.status("farm.rig1"))
	}
	r.st.RemoveMiner(m.SessionID)
	if evs := r.sweep(29 * time.Second); len(evs) != 0 || r.status("farm.rig1") != Online {
		t.Fatalf("within grace: %v, %s", evs, r.status("farm.rig1"))
	}
	evs := r.sweep(time.Second)
	if len(evs) != 1 || evs[0].Kind != MinerOffline || evs[0].Worker != "farm.rig1" || evs[0].Address != "10.1.2.3:4000" || evs[0].Seconds != 30 {
		t.Fatalf("after grace: %+v", evs)
	}
	got, _ := r.w.Lookup("main", "farm.rig1")
	if got.Status != Offline || got.SubAccount != "farm" || got.Address != "10.1.2.3:4000" || !got.Since.Equal(got.LastSeen) || got.Sessions != 0 {
		t.Fatalf("offline record: %+v", got)
	}
	if evs := r.sweep(time.Minute); len(evs) != 0 {
		t.Fatalf("offline reported twice: %+v", evs)
	}
	r.connect("farm.rig1", "10.1.2.9:4100")
	evs = r.sweep(time.Second)
	if len(evs) != 1 || evs[0].Kind != MinerOnline || evs[0].Address != "10.1.2.9:4100" || evs[0].Seconds != 91 {
		t.Fatalf("back: %+v", evs)
	}
	if r.status("farm.rig1") != Online {
		t.Fatalf("status after return: %s", r.status("farm.rig1"))
	}
	if c := r.w.Counts()["main"]; c[Online] != 1 || c[Offline] != 0 || len(c) != len(Statuses) {
		t.Fatalf("counts %v", c)
	}
}

// Unauthorized connections have no name and are not remembered.
func TestUnnamedMinersIgnored(t *testing.T) {
	r := newRig(t, testOptions())
	r.connect("", "10.0.0.1:1")
	r.sweep(time.Second)
	if r.w.Len() != 0 {
		t.Fatalf("%d known miners, want 0", r.w.Len())
	}
}

// Idle: connected, but no share for idle_factor expected intervals. At
// difficulty 1 and 2^32/60 H/s (one share a minute) with factor 10, the
// threshold is ten minutes (a little more as the silence pulls the average
// down); idle_min (1 minute) is lower and does not count.
func TestIdleAfterExpectedIntervals(t *testing.T) {
	o := testOptions()
	r := newRig(t, o)
	m := r.connect("farm.rig1", "10.0.0.1:1")
	// Ten minutes of one share per minute gives the hashrate and average.
	for range 10 {
		m.AddAccepted(1, r.now)
		r.sweep(time.Minute)
	}
	if r.status("farm.rig1") != Online {
		t.Fatalf("status while sharing: %s", r.status("farm.rig1"))
	}
	r.sweep(8 * time.Minute) // 9 minutes since the last share
	if s := r.status("farm.rig1"); s == Idle {
		t.Fatalf("idle too early: %s", s)
	}
	r.sweep(5 * time.Minute)
	if s := r.status("farm.rig1"); s != Idle {
		m, _ := r.w.Lookup("main", "farm.rig1")
		t.Fatalf("after 14 silent minutes: %s (average %.0f H/s)", s, m.Average)
	}
	m.AddAccepted(1, r.now)
	r.sweep(time.Second)
	if s := r.status("farm.rig1"); s == Idle {
		t.Fatal("still idle after a share")
	}
}

// A miner with no share at all is idle after idle_min.
func TestIdleWithoutShares(t *testing.T) {
	r := newRig(t, testOptions())
	r.connect("farm.rig1", "10.0.0.1:1")
	r.sweep(59 * time.Second)
	if s := r.status("farm.rig1"); s != Online {
		t.Fatalf("before idle_min: %s", s)
	}
	r.sweep(time.Second)
	if s := r.status("farm.rig1"); s != Idle {
		t.Fatalf("after idle_min: %s", s)
	}
}

// Slow: hashrate below slow_percent of its own average. The average needs a
// sixth of its window before it is trusted.
func TestSlowAgainstOwnAverage(t *testing.T) {
	o := testOptions()
	o.SlowWindow = time.Hour
	o.IdleFactor = 1000
	o.IdleMin = time.Hour
	r := newRig(t, o)
	fast := r.connect("farm.fast", "10.0.0.1:1")
	steady := r.connect("farm.steady", "10.0.0.2:1")
	for range 30 { // 30 minutes of 10 shares a minute
		for range 10 {
			fast.AddAccepted(1, r.now)
			steady.AddAccepted(1, r.now)
		}
		r.sweep(time.Minute)
	}
	if r.status("farm.fast") != Online || r.status("farm.steady") != Online {
		t.Fatalf("statuses %s %s", r.status("farm.fast"), r.status("farm.steady"))
	}
	// fast loses most of its hashboards: one share a minute for ten minutes.
	for range 10 {
		fast.AddAccepted(1, r.now)
		for range 10 {
			steady.AddAccepted(1, r.now)
		}
		r.sweep(time.Minute)
	}
	if s := r.status("farm.fast"); s != Slow {
		m, _ := r.w.Lookup("main", "farm.fast")
		t.Fatalf("fast is %s (hashrate %.0f, average %.0f)", s, m.Hashrate, m.Average)
	}
	if s := r.status("farm.steady"); s != Online {
		t.Fatalf("steady is %s", s)
	}
}

// The list is kept in the state file and read back by a new watcher; a
// miner already offline stays offline without a second alert, and miners
// that were online get the grace period from the restart before they count
// as gone.
func TestStateFileRoundTrip(t *testing.T) {
	o := testOptions()
	o.StateFile = filepath.Join(t.TempDir(), "miners.json")
	r := newRig(t, o)
	a := r.connect("farm.a", "10.0.0.1:1")
	r.connect("farm.b", "10.0.0.2:1")
	r.sweep(time.Second)
	r.st.RemoveMiner(a.SessionID)
	r.sweep(time.Minute)
	if r.status("farm.a") != Offline {
		t.Fatal("a not offline")
	}
	r.w.Stop() // saves
	if _, err := os.Stat(o.StateFile); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(o.StateFile), "*.tmp"))
	if len(matches) != 0 {
		t.Fatalf("temporary files left: %v", matches)
	}

	r2 := newRig(t, o)
	r2.now = r.now.Add(time.Hour)
	r2.w.started = r2.now
	if r2.w.Len() != 2 {
		t.Fatalf("restarted watcher knows %d miners, want 2", r2.w.Len())
	}
	got, _ := r2.w.Lookup("main", "farm.a")
	want, _ := r.w.Lookup("main", "farm.a")
	if got.Status != Offline || got.Address != "10.0.0.1:1" || !got.FirstSeen.Equal(want.FirstSeen) || !got.LastSeen.Equal(want.LastSeen) {
		t.Fatalf("a after restart: %+v, before %+v", got, want)
	}
	// Everything a miner shows survives, but its open connections.
	for _, worker := range []string{"farm.a", "farm.b"} {
		got, _ := r2.w.Lookup("main", worker)
		want, _ := r.w.Lookup("main", worker)
		want.Sessions = 0
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s after restart:\n%+v\nbefore:\n%+v", worker, got, want)
		}
	}
	if evs := r2.sweep(29 * time.Second); len(evs) != 0 {
		t.Fatalf("events within the restart grace: %+v", evs)
	}
	evs := r2.sweep(time.Second)
	if len(evs) != 1 || evs[0].Worker != "farm.b" || evs[0].Kind != MinerOffline {
		t.Fatalf("after the restart grace: %+v", evs)
	}
}

// A corrupt or unreadable state file is a log line and an empty list.
func TestCorruptStateFile(t *testing.T) {
	o := testOptions()
	o.StateFile = filepath.Join(t.TempDir(), "miners.json")
	if err := os.WriteFile(o.StateFile, []byte(`{"version":1,"miners":[{"wor`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, o)
	if r.w.Len() != 0 || !strings.Contains(r.log.String(), "state file is corrupt") {
		t.Fatalf("known %d, log %q", r.w.Len(), r.log.String())
	}
	r.connect("farm.a", "10.0.0.1:1")
	r.sweep(time.Second)
	r.w.Stop()
	r2 := newRig(t, o)
	if r2.w.Len() != 1 {
		t.Fatalf("the rewritten file has %d miners", r2.w.Len())
	}
	o.StateFile = filepath.Join(t.TempDir(), "missing", "dir", "miners.json")
	r3 := newRig(t, o)
	r3.connect("farm.a", "10.0.0.1:1")
	r3.sweep(time.Second)
	r3.w.Stop()
	if !strings.Contains(r3.log.String(), "cannot save") {
		t.Fatalf("an unwritable state file was not logged: %q", r3.log.String())
	}
}

// The list forgets miners unseen for longer than expire and keeps at most
// max_miners, dropping the longest unseen first.
func TestExpireAndCap(t *testing.T) {
	o := testOptions()
	o.Expire = time.Hour
	o.MaxMiners = 3
	r := newRig(t, o)
	var ms []*stats.Miner
	for i, w := range []string{"farm.a", "farm.b", "farm.c", "farm.d"} {
		ms = append(ms, r.connect(w, "10.0.0.1:"+string(rune('1'+i))))
	}
	r.sweep(time.Second)
	if r.w.Len() != 4 {
		t.Fatalf("connected miners are never dropped: %d", r.w.Len())
	}
	r.st.RemoveMiner(ms[0].SessionID)
	r.sweep(time.Second)
	r.st.RemoveMiner(ms[1].SessionID)
	r.sweep(time.Second)
	if _, ok := r.w.Lookup("main", "farm.a"); ok || r.w.Len() != 3 {
		t.Fatalf("cap: a (unseen longest) should be gone, %d known", r.w.Len())
	}
	r.sweep(61 * time.Minute)
	if _, ok := r.w.Lookup("main", "farm.b"); ok || r.w.Len() != 2 {
		t.Fatalf("expire: b should be gone, %d known", r.w.Len())
	}
}

// Farm-level events: a hashrate drop (once, re-armed on recovery), a pool
// link down past link_down_after and back, and failovers from the counter.
func TestFarmEvents(t *testing.T) {
	o := testOptions()
	o.HashrateDropPercent = 30
	o.HashrateDropWindow = 10 * time.Minute
	o.LinkDownAfter = 20 * time.Second
	o.IdleMin = time.Hour
	r := newRig(t, o)
	r.links = []wire.UpstreamState{{Slot: 0, Ready: true, Pool: "pool:1800"}, {Slot: 1, Ready: true, Pool: "pool:1800"}}
	var ms []*stats.Miner
	for _, w := range []string{"farm.a", "farm.b", "farm.c", "farm.d"} {
		m := r.connect(w, "10.0.0.1:1")
		m.AddAccepted(10, r.now)
		ms = append(ms, m)
	}
	if evs := r.sweep(time.Second); len(evs) != 0 {
		t.Fatalf("%+v", evs)
	}
	// Two of four miners leave: the farm loses half its hashrate.
	r.st.RemoveMiner(ms[0].SessionID)
	r.st.RemoveMiner(ms[1].SessionID)
	evs := r.sweep(time.Second)
	if len(evs) != 1 || evs[0].Kind != HashrateDrop || evs[0].Percent < 50 || evs[0].To >= evs[0].From/2 {
		t.Fatalf("drop: %+v", evs)
	}
	if k := kinds(r.sweep(time.Second)); k[HashrateDrop] != 0 {
		t.Fatal("drop reported twice")
	}

	r.mu.Lock()
	r.links[1].Ready = false
	r.mu.Unlock()
	r.st.Failovers.Add(3)
	k := kinds(r.sweep(time.Second))
	if k[LinkDown] != 0 || k[Failover] != 1 {
		t.Fatalf("link down too early or no failover: %v", k)
	}
	evs = r.sweep(20 * time.Second)
	var down *Event
	for i := range evs {
		if evs[i].Kind == LinkDown {
			down = &evs[i]
		}
	}
	if down == nil || down.Slot != 1 || down.Pool != "pool:1800" || down.Seconds != 20 {
		t.Fatalf("link down: %+v", evs)
	}
	r.mu.Lock()
	r.links[1].Ready = true
	r.mu.Unlock()
	if k := kinds(r.sweep(time.Second)); k[LinkUp] != 1 || k[LinkDown] != 0 {
		t.Fatalf("link up: %v", k)
	}
}

// Subscribers get each sweep's events, and no more after cancel.
func TestSubscribe(t *testing.T) {
	r := newRig(t, testOptions())
	var got [][]Event
	cancel := r.w.Subscribe(func(evs []Event) { got = append(got, evs) })
	m := r.connect("farm.a", "10.0.0.1:1")
	r.sweep(time.Second)
	r.st.RemoveMiner(m.SessionID)
	r.sweep(time.Minute)
	cancel()
	r.connect("farm.a", "10.0.0.1:1")
	r.sweep(time.Second)
	if len(got) != 1 || len(got[0]) != 1 || got[0][0].Kind != MinerOffline {
		t.Fatalf("subscriber got %+v", got)
	}
}

// farmOf fills a listener's stats with n connected, authorized miners that
// have each sent a share, as a running listener would.
func farmOf(n int, now time.Time) *stats.Listener {
	st := stats.NewListener("main", 3333)
	for i := range n {
		m := &stats.Miner{SessionID: uint16(i + 1), Remote: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 1}), 4028), Connected: now}
		m.SetIdentity("cgminer/4.10.0", "farm.w"+strconv.Itoa(i))
		m.Difficulty.Store(8192)
		m.AddAccepted(8192, now)
		st.AddMiner(m)
	}
	return st
}

// BenchmarkSweep is one sweep over a farm of 10,000 connected miners (the
// work done every sweep_interval, off the share path). The first sweep,
// which meets every miner for the first time, is left out: the steady
// state is what runs every ten seconds.
func BenchmarkSweep(b *testing.B) {
	now := time.Unix(1_800_000_000, 0)
	st := farmOf(10000, now)
	w := New(config.DefaultFarmWatch(), func() []Listener { return []Listener{{Name: "main", PoolUser: "farm", Stats: st}} }, logrus.New())
	w.Sweep(now)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		w.Sweep(now.Add(time.Duration(i+1) * 10 * time.Second))
	}
}

// A known miner records the sub-account it works for: the listener's pool
// user, or on a multi-user listener the one its own name chose.
func TestSubAccountOfKnownMiners(t *testing.T) {
	for _, c := range []struct{ user, worker, want string }{
		{"farm", "farm.rig1", "farm"},
		{"", "alice.rig1", "alice"},
		{"", "bob.rack2.slot3", "bob"},
	} {
		r := newRig(t, testOptions())
		r.user = c.user
		r.connect(c.worker, "10.0.0.1:4000")
		r.sweep(time.Second)
		if m, ok := r.w.Lookup("main", c.worker); !ok || m.SubAccount != c.want {
			t.Errorf("pool user %q, worker %q: sub-account %q (known %v), want %q", c.user, c.worker, m.SubAccount, ok, c.want)
		}
	}
}

// Several connections under one name are one miner: their sessions are
// counted and their hashrates summed, the newest connection gives the
// address, agent and difficulty, and the last share is the latest of any.
// When the newest one closes, the older one speaks for the miner again.
func TestSessionsUnderOneName(t *testing.T) {
	r := newRig(t, testOptions())
	older := r.connect("farm.rig1", "10.0.0.1:4000")
	older.Difficulty.Store(64)
	older.AddAccepted(64, r.now.Add(-time.Second))
	r.now = r.now.Add(5 * time.Second)
	r.next++
	newer := &stats.Miner{SessionID: r.next, Remote: netip.MustParseAddrPort("[::ffff:10.0.0.2]:4001"), Connected: r.now}
	newer.SetIdentity("bmminer/2.0", "farm.rig1")
	newer.Difficulty.Store(128)
	shared := r.now
	newer.AddAccepted(128, shared)
	r.st.AddMiner(newer)
	r.sweep(time.Second)
	got, _ := r.w.Lookup("main", "farm.rig1")
	sum := older.Hashrate(r.now) + newer.Hashrate(r.now)
	if got.Sessions != 2 || got.Address != "10.0.0.2:4001" || got.UserAgent != "bmminer/2.0" || got.Difficulty != 128 ||
		got.Hashrate != sum || sum == 0 || !got.LastShare.Equal(shared) {
		t.Fatalf("two sessions: %+v (hashrate sum %v, last share %v)", got, sum, shared)
	}
	r.st.RemoveMiner(newer.SessionID)
	r.sweep(time.Second)
	got, _ = r.w.Lookup("main", "farm.rig1")
	if got.Sessions != 1 || got.Address != "10.0.0.1:4000" || got.UserAgent != "cgminer/4.10.0" || got.Difficulty != 64 ||
		got.Hashrate != older.Hashrate(r.now) || !got.LastShare.Equal(shared) || r.w.Len() != 1 {
		t.Fatalf("the newer session closed: %+v", got)
	}
	// Between sweeps the registry holds no connection's stats: a closed
	// one must be free to go.
	for _, b := range r.w.books {
		for worker, i := range b.index {
			if b.saw(i).newest != nil {
				t.Errorf("%s: the sighting still points at a connection", worker)
			}
		}
	}
}

// Miners of different listeners are different miners, even under the same
// name; a listener that goes away (a reload) leaves its miners known, and
// they turn offline like any miner that left.
func TestListenersKeptApart(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, b := stats.NewListener("a", 3333), stats.NewListener("b", 3334)
	ls := []Listener{{Name: "a", PoolUser: "alice", Stats: a}, {Name: "b", Stats: b}}
	log := logrus.New()
	log.SetOutput(io.Discard)
	w := New(testOptions(), func() []Listener { return ls }, log)
	w.started = now
	add := func(st *stats.Listener, sid uint16, worker, addr string) {
		m := &stats.Miner{SessionID: sid, Remote: netip.MustParseAddrPort(addr), Connected: now}
		m.SetIdentity("cgminer/4.10.0", worker)
		st.AddMiner(m)
	}
	add(a, 1, "alice.rig1", "10.0.0.1:1")
	add(b, 1, "alice.rig1", "10.0.1.1:1")
	add(b, 2, "bob.rig1", "10.0.1.2:1")
	now = now.Add(time.Second)
	w.Sweep(now)
	if w.Len() != 3 {
		t.Fatalf("%d known miners, want 3", w.Len())
	}
	for _, c := range []struct{ listener, worker, addr, sub string }{
		{"a", "alice.rig1", "10.0.0.1:1", "alice"},
		{"b", "alice.rig1", "10.0.1.1:1", "alice"},
		{"b", "bob.rig1", "10.0.1.2:1", "bob"},
	} {
		if m, ok := w.Lookup(c.listener, c.worker); !ok || m.Listener != c.listener || m.Address != c.addr || m.SubAccount != c.sub {
			t.Errorf("%s/%s: %+v (known %v)", c.listener, c.worker, m, ok)
		}
	}
	if c := w.Counts(); c["a"][Online] != 1 || c["b"][Online] != 2 {
		t.Fatalf("counts %v", c)
	}

	ls = ls[:1]
	now = now.Add(30 * time.Second)
	evs := w.Sweep(now)
	if len(evs) != 2 || evs[0].Listener != "b" || evs[0].Worker != "alice.rig1" || evs[1].Listener != "b" || evs[1].Worker != "bob.rig1" ||
		evs[0].Kind != MinerOffline || evs[1].Kind != MinerOffline || evs[1].Address != "10.0.1.2:1" {
		t.Fatalf("listener b gone: %+v", evs)
	}
	if c := w.Counts(); c["a"][Offline] != 0 || c["b"][Offline] != 2 {
		t.Fatalf("counts %v", c)
	}
	var got []string
	for _, m := range w.Miners("") {
		got = append(got, m.Listener+"/"+m.Worker+"/"+string(m.Status))
	}
	if want := []string{"a/alice.rig1/online", "b/alice.rig1/offline", "b/bob.rig1/offline"}; !slices.Equal(got, want) {
		t.Fatalf("miners %v, want %v", got, want)
	}
}

// A forgotten miner leaves nothing behind: the miner that comes next starts
// a record of its own, and the forgotten one, if it returns, is new.
func TestForgottenMinerLeavesNothing(t *testing.T) {
	o := testOptions()
	o.Expire = time.Hour
	r := newRig(t, o)
	a := r.connect("farm.a", "10.0.0.1:1")
	for range 3 {
		a.AddAccepted(1, r.now)
		r.sweep(time.Minute)
	}
	if m, _ := r.w.Lookup("main", "farm.a"); m.Average == 0 || m.LastShare.IsZero() {
		t.Fatalf("farm.a has no history to leave behind: %+v", m)
	}
	r.st.RemoveMiner(a.SessionID)
	r.sweep(61 * time.Minute)
	if _, ok := r.w.Lookup("main", "farm.a"); ok || r.w.Len() != 0 {
		t.Fatalf("farm.a not forgotten, %d known", r.w.Len())
	}
	for _, w := range []string{"farm.b", "farm.a"} {
		r.connect(w, "10.0.0.2:1")
		r.sweep(time.Second)
		m, ok := r.w.Lookup("main", w)
		if !ok || !m.FirstSeen.Equal(r.now) || m.Average != 0 || !m.LastShare.IsZero() || m.Status != Online || !m.Since.Equal(r.now) ||
			m.Sessions != 1 || m.Address != "10.0.0.2:1" {
			t.Fatalf("%s after a forgotten miner: %+v", w, m)
		}
	}
}
