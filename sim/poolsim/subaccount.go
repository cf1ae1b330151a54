package poolsim

import (
	"maps"
	"slices"
	"strings"

	"github.com/btcagent/btcagent/codec"
)

// SubAccountStats is what the pool knows about one sub-account: the part
// of an authorize name before its first dot, as sserver takes it. Agent
// links authorize as the sub-account and REGISTER their miners under it;
// plain Stratum miners (and the agent's "stratum" and "stratum-per-miner"
// links) authorize as "<sub-account>.<worker>". A test of multi-user mode
// reads here which sub-accounts have links and whose shares landed where.
type SubAccountStats struct {
	Name       string                  `json:"name"`
	Links      int                     `json:"links"`       // authorized connections open now, agent links and plain miners
	AgentLinks int                     `json:"agent_links"` // of which agent links
	LinksTotal uint64                  `json:"links_total"` // authorizations since the pool started
	Workers    int                     `json:"workers"`     // full names ever seen under it
	Online     int                     `json:"online"`      // of which with a live session
	Accepted   uint64                  `json:"accepted"`
	Rejected   map[codec.Status]uint64 `json:"rejected"`
}

// subAccountOf is the sub-account part of an authorize name.
func subAccountOf(user string) string {
	sub, _, _ := strings.Cut(user, ".")
	return sub
}

// subAccountsLocked builds Stats.SubAccounts from the open connections,
// the worker records and the authorization counts.
func (p *Pool) subAccountsLocked() map[string]SubAccountStats {
	out := make(map[string]SubAccountStats, len(p.subAuth))
	get := func(name string) SubAccountStats {
		s, ok := out[name]
		if !ok {
			s = SubAccountStats{Name: name, Rejected: make(map[codec.Status]uint64)}
		}
		return s
	}
	for name, n := range p.subAuth {
		s := get(name)
		s.LinksTotal = n
		out[name] = s
	}
	for _, c := range p.conns {
		if !c.authorized || c.subAccount == "" {
			continue
		}
		s := get(c.subAccount)
		s.Links++
		if c.agent {
			s.AgentLinks++
		}
		out[c.subAccount] = s
	}
	for _, r := range p.records {
		if r.stats.SubAccount == "" {
			continue
		}
		s := get(r.stats.SubAccount)
		s.Workers++
		if len(r.sessions) > 0 {
			s.Online++
		}
		s.Accepted += r.stats.Accepted
		for k, v := range r.stats.Rejected {
			s.Rejected[k] += v
		}
		out[r.stats.SubAccount] = s
	}
	return out
}

// SubAccount returns what the pool knows about sub-account sub.
func (s *Stats) SubAccount(sub string) (SubAccountStats, bool) {
	a, ok := s.SubAccounts[sub]
	return a, ok
}

// LinksFor is the number of authorized connections of sub-account sub open
// in this snapshot: agent links plus plain Stratum miners.
func (s *Stats) LinksFor(sub string) int { return s.SubAccounts[sub].Links }

// WorkersFor lists the full names ("<sub>.<worker>") ever seen under sub,
// sorted.
func (s *Stats) WorkersFor(sub string) []string {
	var out []string
	for name, w := range s.Workers {
		if w.SubAccount == sub {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// AcceptedFor is the number of shares accepted for the worker with this
// full name ("<sub>.<worker>").
func (s *Stats) AcceptedFor(fullName string) uint64 { return s.Workers[fullName].Accepted }

// RejectedFor is the number of shares rejected, for any reason, for the
// worker with this full name.
func (s *Stats) RejectedFor(fullName string) uint64 {
	var n uint64
	for v := range maps.Values(s.Workers[fullName].Rejected) {
		n += v
	}
	return n
}
