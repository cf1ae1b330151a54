package api

// Multi-user listeners in the API: per-sub-account numbers in the summary,
// the miners' own sub-accounts, and the Prometheus series per sub-account.
// Everything comes from the coordinator's snapshot (one pass over its
// miners) and the listener's refusal counters: nothing per share.

import (
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/subaccount"
	"github.com/prometheus/client_golang/prometheus"
)

// MultiUserSummary is the part of a listener's summary only multi-user
// listeners have; its fields sit next to the listener's own.
type MultiUserSummary struct {
	MultiUser      bool                `json:"multi_user"`
	SubAccounts    []SubAccountSummary `json:"sub_accounts"`     // those with pool links, by name
	SubAccountsMax int                 `json:"sub_accounts_max"` // subaccounts.max
	Refused        map[string]int64    `json:"refused"`          // authorizes refused since start, by reason
}

// SubAccountSummary is one sub-account with pool links.
type SubAccountSummary struct {
	Name      string     `json:"name"`
	Miners    int        `json:"miners"`   // authorized miners working for it
	Hashrate  float64    `json:"hashrate"` // H/s, their estimates added
	Shares    SubShares  `json:"shares"`
	Upstreams LinkCounts `json:"upstreams"`
	// IdleSince is set while it has no miners and its links wait out
	// subaccounts.grace.
	IdleSince *time.Time `json:"idle_since"`
}

// SubShares are a sub-account's share verdicts since its links opened,
// miners gone since included.
type SubShares struct {
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

// refusalReasons are every reason a multi-user authorize is refused for,
// so the summary and the metrics show zeros before the first refusal.
var refusalReasons = []subaccount.Reason{subaccount.NoSubAccount, subaccount.Invalid, subaccount.NotAllowed, subaccount.CapReached}

func refusals(l *agent.Listener) map[string]int64 {
	got := l.Stats.Refused.Counts()
	out := make(map[string]int64, len(refusalReasons))
	for _, r := range refusalReasons {
		out[string(r)] = got[string(r)]
	}
	return out
}

// multiUserSummary is nil for single-user listeners, so their summary keeps
// its fields; a coordinator that did not answer leaves the list empty (the
// listener's upstreams say why).
func multiUserSummary(l *agent.Listener, sr snapResult) *MultiUserSummary {
	if !l.Cfg.MultiUser {
		return nil
	}
	out := &MultiUserSummary{MultiUser: true, SubAccounts: []SubAccountSummary{}, SubAccountsMax: l.Cfg.SubAccounts.Max, Refused: refusals(l)}
	if sr.err != nil {
		return out
	}
	for _, sa := range sr.snap.SubAccounts {
		out.SubAccounts = append(out.SubAccounts, SubAccountSummary{
			Name: sa.Name, Miners: sa.Miners, Hashrate: sa.Hashrate,
			Shares:    SubShares{Accepted: sa.Accepted, Rejected: sa.Rejected},
			Upstreams: LinkCounts{Ready: sa.Ready, Total: sa.Total},
			IdleSince: timePtr(sa.IdleSince),
		})
	}
	return out
}

// minerSubAccount is the sub-account a connected miner works for: the
// listener's pool user, or on a multi-user listener the part of the
// worker name ("<sub-account>.<worker>") before its first dot, which a
// sub-account never contains.
func minerSubAccount(l *agent.Listener, worker string) string {
	if !l.Cfg.MultiUser {
		return l.Cfg.PoolUser
	}
	sub, _, _ := strings.Cut(worker, ".")
	return sub
}

// upstreamSubAccount names the sub-account a link slot serves: its route,
// on a multi-user listener.
func upstreamSubAccount(l *agent.Listener, u wire.UpstreamState) string {
	if l.Cfg.MultiUser {
		return u.Route
	}
	return ""
}

// subDescs are the per-sub-account metric descriptions.
type subDescs struct {
	count, miners, hashrate, accepted, rejected, refusals *prometheus.Desc
}

func newSubDescs(d func(name, help string, labels ...string) *prometheus.Desc) subDescs {
	ls := []string{"listener", "sub_account"}
	return subDescs{
		count:    d("subaccounts", "Sub-accounts with pool links on a multi-user listener, idle ones included.", "listener"),
		miners:   d("subaccount_miners", "Authorized miners working for a sub-account.", ls...),
		hashrate: d("subaccount_hashrate_hashes_per_second", "Estimated hashrate of a sub-account's miners over the last ten minutes.", ls...),
		accepted: d("subaccount_shares_accepted_total", "Shares accepted for a sub-account since its links opened.", ls...),
		rejected: d("subaccount_shares_rejected_total", "Shares rejected for a sub-account since its links opened.", ls...),
		refusals: d("subaccount_refusals_total", "Multi-user authorizes refused, by reason (no_sub_account, invalid, not_allowed, cap_reached).", "listener", "reason"),
	}
}

func (d subDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.count, d.miners, d.hashrate, d.accepted, d.rejected, d.refusals}
}

// collect exports a multi-user listener's series; those of a sub-account
// go when its links close, so their number stays within subaccounts.max.
func (d subDescs) collect(gauge, counter func(*prometheus.Desc, float64, ...string), l *agent.Listener, sr snapResult) {
	if !l.Cfg.MultiUser {
		return
	}
	name := l.Cfg.Name
	for reason, n := range refusals(l) {
		counter(d.refusals, float64(n), name, reason)
	}
	if sr.err != nil {
		return
	}
	gauge(d.count, float64(len(sr.snap.SubAccounts)), name)
	for _, sa := range sr.snap.SubAccounts {
		gauge(d.miners, float64(sa.Miners), name, sa.Name)
		gauge(d.hashrate, sa.Hashrate, name, sa.Name)
		counter(d.accepted, float64(sa.Accepted), name, sa.Name)
		counter(d.rejected, float64(sa.Rejected), name, sa.Name)
	}
}
