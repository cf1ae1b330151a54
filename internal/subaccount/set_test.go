package subaccount

import (
	"slices"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }

func TestSetLifecycle(t *testing.T) {
	s := NewSet(10, 60*time.Second)
	// First miner opens links, the second does not.
	if open, ev, r := s.Join("alice", at(0)); !open || ev != "" || r != nil {
		t.Fatalf("first join: %v %q %v", open, ev, r)
	}
	if open, _, _ := s.Join("alice", at(1)); open {
		t.Fatal("second miner must reuse the links")
	}
	if n, ok := s.Miners("alice"); !ok || n != 2 {
		t.Fatalf("miners = %d %v", n, ok)
	}
	if _, ok := s.NextExpiry(); ok {
		t.Fatal("no expiry while miners are on")
	}
	s.Leave("alice", at(10))
	if _, ok := s.NextExpiry(); ok {
		t.Fatal("one miner left: no expiry")
	}
	s.Leave("alice", at(20))
	if since, ok := s.IdleSince("alice"); !ok || !since.Equal(at(20)) {
		t.Fatalf("IdleSince = %v %v, want %v", since, ok, at(20))
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(at(80)) {
		t.Fatalf("NextExpiry = %v %v, want %v", next, ok, at(80))
	}
	if got := s.Expire(at(79)); len(got) != 0 {
		t.Fatalf("expired early: %q", got)
	}
	// A miner coming back within the grace keeps the links.
	if open, _, _ := s.Join("alice", at(79)); open {
		t.Fatal("rejoin within grace must keep the links")
	}
	if _, ok := s.IdleSince("alice"); ok {
		t.Fatal("IdleSince set while a miner is on")
	}
	s.Leave("alice", at(100))
	if got := s.Expire(at(160)); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("Expire = %q", got)
	}
	if s.Len() != 0 {
		t.Fatalf("Len = %d after expiry", s.Len())
	}
	if open, _, _ := s.Join("alice", at(161)); !open {
		t.Fatal("after expiry the links must be opened again")
	}
}

func TestSetLeaveUnknown(t *testing.T) {
	s := NewSet(2, time.Minute)
	if s.Leave("ghost", at(0)) {
		t.Error("Leave of an unknown sub-account reported true")
	}
	s.Join("a", at(0))
	if !s.Leave("a", at(1)) || s.Leave("a", at(2)) {
		t.Error("second Leave of a single miner must report false")
	}
	// The extra Leave did not move the grace start.
	if next, _ := s.NextExpiry(); !next.Equal(at(61)) {
		t.Errorf("NextExpiry = %v", next)
	}
}

func TestSetCap(t *testing.T) {
	s := NewSet(2, time.Minute)
	s.Join("a", at(0))
	s.Join("b", at(0))
	open, ev, r := s.Join("c", at(1))
	want := `sub-account "c" cannot be added: this agent already serves its limit of 2 sub-accounts`
	if open || ev != "" || r == nil || r.Reason != CapReached || r.Code != codec.StatusUnauthorized || r.Msg != want {
		t.Fatalf("join past the cap: %v %q %+v", open, ev, r)
	}
	// Known sub-accounts still get miners at the cap.
	if _, _, r := s.Join("a", at(2)); r != nil {
		t.Fatalf("known sub-account refused at the cap: %v", r)
	}
	// An idle sub-account makes room: the one idle longest goes first.
	s.Leave("b", at(10))
	s.Leave("a", at(20))
	s.Leave("a", at(30)) // a idle since 30, b since 10
	open, ev, r = s.Join("c", at(40))
	if !open || ev != "b" || r != nil {
		t.Fatalf("join with an idle one: %v %q %v", open, ev, r)
	}
	if !slices.Equal(s.Names(), []string{"a", "c"}) {
		t.Fatalf("Names = %q", s.Names())
	}
	open, ev, _ = s.Join("d", at(41))
	if !open || ev != "a" {
		t.Fatalf("second eviction: %v %q", open, ev)
	}
	if _, _, r := s.Join("e", at(42)); r == nil {
		t.Fatal("cap with no idle sub-account must refuse")
	}
}

func TestSetEvictionTieBreak(t *testing.T) {
	s := NewSet(2, time.Minute)
	s.Join("zed", at(0))
	s.Join("amy", at(0))
	s.Leave("zed", at(5))
	s.Leave("amy", at(5))
	if _, ev, _ := s.Join("new", at(6)); ev != "amy" {
		t.Fatalf("evicted %q, want the smaller name on a tie", ev)
	}
}

func TestSetExpireMany(t *testing.T) {
	s := NewSet(0, 30*time.Second) // a limit below 1 means 1 would be useless; it is raised to 1
	if open, _, r := s.Join("only", at(0)); !open || r != nil {
		t.Fatalf("limit 0 must still hold one sub-account: %v", r)
	}
	s = NewSet(5, 30*time.Second)
	for i, name := range []string{"c", "a", "b"} {
		s.Join(name, at(0))
		s.Leave(name, at(i))
	}
	s.Join("d", at(0))
	if next, _ := s.NextExpiry(); !next.Equal(at(30)) {
		t.Fatalf("NextExpiry = %v", next)
	}
	if got := s.Expire(at(31)); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("Expire(31) = %q", got)
	}
	if got := s.Expire(at(100)); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("Expire(100) = %q", got)
	}
	if !slices.Equal(s.Names(), []string{"d"}) {
		t.Fatalf("Names = %q", s.Names())
	}
}
