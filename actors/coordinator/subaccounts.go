package coordinator

// Multi-user listeners. Each sub-account is a route of the listener, made
// when its first miner is admitted and named after it: its own link slots,
// authorizing as the sub-account, on the listener's pools. Placement,
// failover, the outage policy and the stats then work per sub-account
// because they work per route. The sub-account book (subaccount.Set)
// decides when a route opens, when one is evicted at the cap and when its
// grace ends; one timer, on the earliest end of a grace, closes idle ones.

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/subaccount"
	"github.com/sirupsen/logrus"
)

// SubAccounts configures a multi-user listener's coordinator.
type SubAccounts struct {
	Max         int           // sub-accounts with links at once
	Grace       time.Duration // links kept after a sub-account's last miner left
	Connections int           // link slots per sub-account
	Pools       []msg.PoolAddr
}

// subState is the coordinator's multi-user state.
type subState struct {
	cfg     *SubAccounts
	set     *subaccount.Set
	gone    map[string]*shareTally // shares of miners gone, per sub-account with links
	timer   *time.Timer
	timerAt time.Time
}

type shareTally struct{ accepted, rejected int64 }

// expiryDue is the grace timer firing.
type expiryDue struct{}

func newSubState(cfg *SubAccounts) *subState {
	return &subState{cfg: cfg, set: subaccount.NewSet(cfg.Max, cfg.Grace), gone: map[string]*shareTally{}}
}

// admit takes a multi-user miner into its sub-account, opening the
// sub-account's links if it has none, or refuses it at the cap; either
// way the miner hears it before anything else from its links.
func (c *Coordinator) admit(ctx actor.Context, rec *minerRec, m *wire.MinerAuthorized) {
	if rec.authed {
		return // already counted in; a repeat changes nothing
	}
	sub := m.SubAccount
	open, evicted, ref := c.subs.set.Join(sub, time.Now())
	if ref != nil {
		c.env.Stats.Refused.Add(string(ref.Reason))
		if l := c.env.Upstream.Limiter; l != nil {
			l.Warn(c.env.Listener+"/subaccount-cap", logrus.Fields{"listener": c.env.Listener, "sub_account": sub}, "multi-user: authorize refused: "+ref.Msg)
		}
		rec.miner.Tell(&wire.Admitted{Code: ref.Code, Text: ref.Msg})
		return
	}
	if evicted != "" {
		c.closeSub(ctx, evicted, "idle at the sub-account cap, making room for "+sub)
	}
	if open {
		c.spawnRoute(ctx, msg.Route{Name: sub, PoolUser: sub, Pools: c.subs.cfg.Pools}, c.subs.cfg.Connections)
		c.subs.gone[sub] = &shareTally{}
		c.log().WithFields(logrus.Fields{"sub_account": sub, "links": c.subs.cfg.Connections}).Info("sub-account opened")
	}
	rec.info, rec.mask, rec.authed, rec.xsub = m.Info, m.VersionMask, true, m.ExtranonceSub
	rec.route = sub
	rec.miner.Tell(&wire.Admitted{})
	c.place(ctx, m.Info.SessionID, rec)
	c.armExpiry(ctx) // a returning miner may have ended a grace
}

// leave counts an admitted miner out of its sub-account; its shares stay
// in the sub-account's totals while the sub-account has links.
func (c *Coordinator) leave(ctx actor.Context, rec *minerRec) {
	if !c.subs.set.Leave(rec.route, time.Now()) {
		c.log().WithField("sub_account", rec.route).Error("multi-user: a miner left a sub-account without miners; its links may close late")
	}
	if t := c.subs.gone[rec.route]; t != nil && rec.st != nil {
		t.accepted += rec.st.Accepted.Load()
		t.rejected += rec.st.Rejected.Load()
	}
	c.armExpiry(ctx)
}

// closeSub stops a sub-account's links; it has no miners.
func (c *Coordinator) closeSub(ctx actor.Context, sub, why string) {
	c.stopRoute(ctx, sub)
	delete(c.subs.gone, sub)
	c.log().WithFields(logrus.Fields{"sub_account": sub, "why": why}).Info("sub-account closed")
}

func (c *Coordinator) expire(ctx actor.Context) {
	if c.subs == nil {
		return
	}
	c.subs.timer = nil
	for _, sub := range c.subs.set.Expire(time.Now()) {
		c.closeSub(ctx, sub, "no miners for the grace period")
	}
	c.armExpiry(ctx)
}

// armExpiry keeps the one timer on the earliest end of a grace period.
func (c *Coordinator) armExpiry(ctx actor.Context) {
	at, ok := c.subs.set.NextExpiry()
	if !ok {
		c.stopExpiry()
		return
	}
	if c.subs.timer != nil && at.Equal(c.subs.timerAt) {
		return
	}
	c.stopExpiry()
	self, root := ctx.Self(), c.env.Upstream.Root
	c.subs.timerAt = at
	c.subs.timer = time.AfterFunc(time.Until(at), func() { root.Send(self, &expiryDue{}) })
}

func (c *Coordinator) stopExpiry() {
	if c.subs != nil && c.subs.timer != nil {
		c.subs.timer.Stop()
		c.subs.timer = nil
	}
}

// subSnapshot describes every sub-account with links, by name, in one pass
// over the miners.
func (c *Coordinator) subSnapshot(now time.Time) []wire.SubAccountState {
	names := c.subs.set.Names()
	out := make([]wire.SubAccountState, len(names))
	at := make(map[string]*wire.SubAccountState, len(names))
	for i, name := range names {
		st := &out[i]
		st.Name = name
		st.Miners, _ = c.subs.set.Miners(name)
		st.IdleSince, _ = c.subs.set.IdleSince(name)
		if t := c.subs.gone[name]; t != nil {
			st.Accepted, st.Rejected = t.accepted, t.rejected
		}
		for _, s := range c.routes[name] {
			st.Total++
			if s.ready {
				st.Ready++
			}
		}
		at[name] = st
	}
	for _, rec := range c.miners {
		st := at[rec.route]
		if !rec.authed || st == nil || rec.st == nil {
			continue
		}
		st.Hashrate += rec.st.Hashrate(now)
		st.Accepted += rec.st.Accepted.Load()
		st.Rejected += rec.st.Rejected.Load()
	}
	return out
}
