package subaccount

import (
	"fmt"
	"slices"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// Set is the book of one multi-user listener's sub-accounts that have pool
// links: how many miners each has and, for one without miners, since when.
// It decides when links open (first miner), when they close (grace after
// the last miner left) and who is refused at the cap; the listener does the
// opening and closing. The clock is passed in, so tests and the listener's
// timer agree on what "now" is. Not safe for concurrent use.
type Set struct {
	max   int
	grace time.Duration
	subs  map[string]*entry
}

type entry struct {
	miners    int
	idleSince time.Time // when miners dropped to 0; zero while miners > 0
}

// NewSet makes a Set holding at most limit sub-accounts (at least 1) whose
// links stay open for grace after their last miner leaves.
func NewSet(limit int, grace time.Duration) *Set {
	return &Set{max: max(limit, 1), grace: grace, subs: make(map[string]*entry)}
}

// Join counts a miner of sub in. open is true when sub had no links, so the
// caller must open them. At the cap, the sub-account idle the longest (no
// miners, links in their grace period) is dropped to make room and returned
// as evicted, for the caller to close its links; with none idle the miner
// is refused.
func (s *Set) Join(sub string, now time.Time) (open bool, evicted string, r *Refusal) {
	if e, ok := s.subs[sub]; ok {
		e.miners++
		e.idleSince = time.Time{}
		return false, "", nil
	}
	if len(s.subs) >= s.max {
		evicted = s.longestIdle()
		if evicted == "" {
			return false, "", refuse(CapReached, codec.StatusUnauthorized,
				fmt.Sprintf("sub-account %s cannot be added: this agent already serves its limit of %d sub-accounts", quote(sub), s.max))
		}
		delete(s.subs, evicted)
	}
	s.subs[sub] = &entry{miners: 1}
	return true, evicted, nil
}

// longestIdle is the idle sub-account whose grace ends first ("" if none);
// ties go to the smaller name so the choice does not depend on map order.
func (s *Set) longestIdle() string {
	best := ""
	var since time.Time
	for name, e := range s.subs {
		if e.miners > 0 {
			continue
		}
		if best == "" || e.idleSince.Before(since) || e.idleSince.Equal(since) && name < best {
			best, since = name, e.idleSince
		}
	}
	return best
}

// Leave counts a miner of sub out; the last one starts the grace period.
// It reports false for a sub-account without miners, which is a bug in the
// caller's bookkeeping worth logging, and changes nothing then.
func (s *Set) Leave(sub string, now time.Time) bool {
	e, ok := s.subs[sub]
	if !ok || e.miners == 0 {
		return false
	}
	e.miners--
	if e.miners == 0 {
		e.idleSince = now
	}
	return true
}

// Expire drops the sub-accounts whose grace has ended by now and returns
// them, sorted, for the caller to close their links.
func (s *Set) Expire(now time.Time) []string {
	var out []string
	for name, e := range s.subs {
		if e.miners == 0 && !now.Before(e.idleSince.Add(s.grace)) {
			out = append(out, name)
		}
	}
	for _, name := range out {
		delete(s.subs, name)
	}
	slices.Sort(out)
	return out
}

// NextExpiry is when the earliest grace period ends; ok is false when no
// sub-account is idle, so the listener needs no timer.
func (s *Set) NextExpiry() (at time.Time, ok bool) {
	for _, e := range s.subs {
		if e.miners > 0 {
			continue
		}
		if t := e.idleSince.Add(s.grace); !ok || t.Before(at) {
			at, ok = t, true
		}
	}
	return at, ok
}

// IdleSince is when sub's last miner left; ok is false while it has
// miners or has no links.
func (s *Set) IdleSince(sub string) (since time.Time, ok bool) {
	e, found := s.subs[sub]
	if !found || e.miners > 0 {
		return time.Time{}, false
	}
	return e.idleSince, true
}

// Len is the number of sub-accounts with links, idle ones included.
func (s *Set) Len() int { return len(s.subs) }

// Miners is the number of miners of sub; ok is false when sub has no links.
func (s *Set) Miners(sub string) (n int, ok bool) {
	e, ok := s.subs[sub]
	if !ok {
		return 0, false
	}
	return e.miners, true
}

// Names lists the sub-accounts with links, sorted.
func (s *Set) Names() []string {
	out := make([]string, 0, len(s.subs))
	for name := range s.subs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}
