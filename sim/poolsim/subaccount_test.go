package poolsim

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// Agent links are filed under the sub-account they authorize as, and
// their REGISTER names under it; plain miners under the part of their name
// before the first dot. Shares are counted per full name and summed per
// sub-account, and links are counted while open.
func TestSubAccountStats(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	alice1 := connectAgent(t, p, "alice", true)
	alice2 := connectAgent(t, p, "alice", true)
	bob := connectAgent(t, p, "bob", true)
	carol := connectMiner(t, p, "carol.rig1")
	alice1.register(1, "rig1")
	alice2.register(1, "rig2")
	bob.register(7, "rig1")

	n := p.CurrentJob()
	id, nt := jobID(t, n), n.NTimeValue()
	share := codec.Share{JobID: id, SessionID: 1, ExtraNonce2: 1, Nonce: 1, NTime: nt, HasTime: true}
	alice1.submit(share)
	alice1.expectVerdict(0, codec.StatusAccept)
	alice1.submit(share) // the same share again
	alice1.expectVerdict(1, codec.StatusDuplicateShare)
	alice2.submit(share) // another link's EN1: a different share
	alice2.expectVerdict(0, codec.StatusAccept)
	share.SessionID = 7
	bob.submit(share)
	bob.expectVerdict(0, codec.StatusAccept)
	share.Nonce = 2
	bob.submit(share)
	bob.expectVerdict(1, codec.StatusAccept)
	carol.submit("s", "carol.rig1", n.JobID, "0000000100000002", n.NTime, "00000001")
	carol.expect(`{"id":"s","result":true,"error":null}`)

	st := p.Stats()
	for _, tc := range []struct {
		sub                  string
		links, agent, online int
		workers              []string
		accepted             uint64
		rejected             uint64
	}{
		{"alice", 2, 2, 2, []string{"alice.rig1", "alice.rig2"}, 2, 1},
		{"bob", 1, 1, 1, []string{"bob.rig1"}, 2, 0},
		{"carol", 1, 0, 1, []string{"carol.rig1"}, 1, 0},
	} {
		a, ok := st.SubAccount(tc.sub)
		if !ok {
			t.Fatalf("no sub-account %q in %v", tc.sub, keys(st.SubAccounts))
		}
		var rej uint64
		for _, v := range a.Rejected {
			rej += v
		}
		if a.Name != tc.sub || st.LinksFor(tc.sub) != tc.links || a.AgentLinks != tc.agent || a.LinksTotal != uint64(tc.links) ||
			a.Workers != len(tc.workers) || a.Online != tc.online || a.Accepted != tc.accepted || rej != tc.rejected {
			t.Errorf("%s: %+v (rejected %d)", tc.sub, a, rej)
		}
		if got := st.WorkersFor(tc.sub); !slices.Equal(got, tc.workers) {
			t.Errorf("WorkersFor(%s) = %q, want %q", tc.sub, got, tc.workers)
		}
	}
	for name, want := range map[string][2]uint64{"alice.rig1": {1, 1}, "alice.rig2": {1, 0}, "bob.rig1": {2, 0}, "carol.rig1": {1, 0}, "nobody.x": {0, 0}} {
		if a, r := st.AcceptedFor(name), st.RejectedFor(name); a != want[0] || r != want[1] {
			t.Errorf("%s: accepted %d rejected %d, want %v", name, a, r, want)
		}
	}
	if w := st.Workers["alice.rig2"]; w.SubAccount != "alice" || w.Worker != "rig2" {
		t.Errorf("worker record %+v", w)
	}
	if w := st.Workers["carol.rig1"]; w.SubAccount != "carol" || w.Worker != "rig1" {
		t.Errorf("plain worker record %+v", w)
	}
	for _, c := range st.Conns {
		if c.SubAccount != c.User && c.SubAccount != "carol" {
			t.Errorf("conn %d: user %q sub-account %q", c.ID, c.User, c.SubAccount)
		}
	}
	if _, ok := st.SubAccount("nobody"); ok || st.LinksFor("nobody") != 0 {
		t.Error("an unseen sub-account must be absent")
	}

	// Closing bob's only link leaves bob with no links but its history;
	// alice keeps one link after losing one.
	bobID := connID(t, st, "bob")
	if !p.CloseConn(bobID) {
		t.Fatal("close bob's link")
	}
	if !p.CloseConn(connID(t, st, "alice")) {
		t.Fatal("close an alice link")
	}
	st = waitFor(t, p, "links closed", func(s *Stats) bool { return s.LinksFor("bob") == 0 && s.LinksFor("alice") == 1 })
	b := st.SubAccounts["bob"]
	if b.Links != 0 || b.AgentLinks != 0 || b.LinksTotal != 1 || b.Workers != 1 || b.Online != 0 || b.Accepted != 2 {
		t.Errorf("bob after its link closed: %+v", b)
	}
	if a := st.SubAccounts["alice"]; a.Online != 1 || a.Workers != 2 || a.LinksTotal != 2 {
		t.Errorf("alice after one link closed: %+v", a)
	}

	// A new link for bob counts as a second authorization and re-registers
	// the same full name.
	bob2 := connectAgent(t, p, "bob", true)
	bob2.register(3, "rig1")
	st = waitFor(t, p, "bob back", func(s *Stats) bool { return s.SubAccounts["bob"].Online == 1 })
	if b := st.SubAccounts["bob"]; b.Links != 1 || b.LinksTotal != 2 || b.Workers != 1 || b.Accepted != 2 {
		t.Errorf("bob after a new link: %+v", b)
	}

	// The stats JSON carries the same.
	raw, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	var back Stats
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.SubAccounts["alice"].Accepted != 2 || back.Workers["bob.rig1"].SubAccount != "bob" {
		t.Errorf("JSON round trip lost sub-account data: %s", raw)
	}
}

// sserver takes the sub-account as the authorize name up to its first dot,
// also for an agent link authorized with a worker part: its REGISTERed
// workers are filed under the sub-account, not under the whole name.
func TestSubAccountOfDottedAgentUser(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "alice.hosting", true)
	a.register(1, "rig9")
	st := waitFor(t, p, "registration", func(s *Stats) bool { return s.Totals.RegisteredWorkers == 1 })
	if _, ok := st.Workers["alice.rig9"]; !ok {
		t.Fatalf("workers %v, want alice.rig9", keys(st.Workers))
	}
	if st.LinksFor("alice") != 1 || st.Conns[0].User != "alice.hosting" || st.Conns[0].SubAccount != "alice" {
		t.Errorf("link %+v", st.Conns[0])
	}
	// A plain miner without a dot: its whole name is the sub-account.
	connectMiner(t, p, "dave")
	st = waitFor(t, p, "plain miner", func(s *Stats) bool { return s.LinksFor("dave") == 1 })
	if w := st.Workers["dave"]; w.SubAccount != "dave" || w.Worker != "" {
		t.Errorf("plain worker without a dot: %+v", w)
	}
}

// connID is the id of an open connection authorized as user.
func connID(t *testing.T, s Stats, user string) uint64 {
	t.Helper()
	for _, c := range s.Conns {
		if c.User == user {
			return c.ID
		}
	}
	t.Fatalf("no connection of %q", user)
	return 0
}
