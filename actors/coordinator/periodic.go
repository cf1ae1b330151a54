package coordinator

// Periodic work (per-miner ticks and the outage policy, the summary,
// rebalancing) and the snapshot the API and tests read.

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

func (c *Coordinator) onTick(ctx actor.Context, now time.Time) {
	t := &wire.Tick{UnixNano: now.UnixNano()}
	fake := c.env.Policy == PolicyFake && c.lastJob != nil && now.Sub(c.lastFake) >= c.env.FakeJobInterval
	var fj *msg.Job
	if fake {
		fj = c.fakeJob(now)
		c.lastFake = now
	}
	for _, rec := range c.miners {
		rec.miner.Tell(t)
		if rec.slot != nil || rec.parkedAt.IsZero() {
			continue
		}
		waited := now.Sub(rec.parkedAt)
		switch c.env.Policy {
		case PolicyWait:
			if waited > c.env.Wait {
				rec.miner.Tell(&wire.Disconnect{Reason: "no pool link within the outage wait"})
				rec.parkedAt = time.Time{}
			}
		case PolicyDisconnect:
			if rec.authed && waited > c.env.Grace {
				rec.miner.Tell(&wire.Disconnect{Reason: "no pool link (outage policy disconnect)"})
				rec.parkedAt = time.Time{}
			}
		case PolicyFake:
			if fj != nil && rec.authed {
				rec.miner.Tell(&wire.JobNotified{Job: fj, Clean: true})
			}
		}
	}
}

// fakeJob builds unpaid placeholder work from the last real job: the same
// coinbase pieces with a time tag where the upstream EN1 would be, and a job
// id starting with "f" so that shares on it are answered locally.
func (c *Coordinator) fakeJob(now time.Time) *msg.Job {
	c.fakeSeq++
	n := *c.lastJob.Notify
	n.JobID = "f" + strconv.FormatUint(uint64(c.fakeSeq), 16)
	n.NTime = codec.Hex32(uint32(now.Unix()))
	tag := codec.Hex32(uint32(now.UnixNano()))
	line := n.AppendLine(nil, tag, true)
	return &msg.Job{ID: n.JobID, Notify: &n, Line: line, CleanLine: line, Fake: true, Clean: true, NTime: uint32(now.Unix()), Received: now}
}

func (c *Coordinator) onStats(now time.Time) {
	st := c.env.Stats
	ready := 0
	for _, s := range c.slots {
		if s.ready {
			ready++
		}
	}
	var rejected int64
	for _, v := range st.RejectCounts() {
		rejected += v
	}
	hr := st.Hashrate(now)
	c.env.Chain.OnStats(&msg.StatsTick{Listener: c.env.Listener, Miners: len(c.miners), Hashrate: hr,
		Accepted: st.Accepted.Load(), Rejected: rejected, UpstreamsReady: ready, At: now})
	c.log().WithFields(logrus.Fields{
		"miners": len(c.miners), "hashrate": codec.FormatHashrate(hr), "accepted": st.Accepted.Load(),
		"rejected": rejected, "upstreams_ready": fmt.Sprintf("%d/%d", ready, len(c.slots)),
	}).Info("summary")
}

func (c *Coordinator) rebalance(ctx actor.Context, now time.Time) {
	loads := make([]msg.MinerLoad, 0, len(c.miners))
	for _, rec := range c.miners {
		if rec.authed && rec.slot != nil {
			h := 0.0
			if rec.st != nil {
				h = rec.st.Hashrate(now)
			}
			loads = append(loads, msg.MinerLoad{Info: rec.info, Route: rec.route, Hashrate: h})
		}
	}
	for _, mv := range c.env.Chain.Rebalance(loads) {
		rec, ok := c.miners[mv.SessionID]
		if !ok || rec.route == mv.Route || rec.slot == nil {
			continue
		}
		if _, ok := c.routes[mv.Route]; !ok || c.pick(mv.Route, nil) == nil {
			continue
		}
		rec.slot.miners--
		ctx.Send(rec.slot.pid, &wire.Detach{SessionID: mv.SessionID})
		rec.slot = nil
		rec.route = mv.Route
		c.place(ctx, mv.SessionID, rec)
	}
}

func (c *Coordinator) snapshot() *wire.Snapshot {
	snap := &wire.Snapshot{Listener: c.env.Listener, Miners: len(c.miners)}
	if c.subs != nil {
		snap.SubAccounts, snap.SubAccountsMax = c.subSnapshot(time.Now()), c.subs.cfg.Max
	}
	for _, rec := range c.miners {
		switch {
		case rec.slot != nil:
			snap.Placed++
		case rec.authed:
			snap.Parked++
		}
	}
	for _, s := range c.slots {
		snap.Upstreams = append(snap.Upstreams, wire.UpstreamState{Slot: s.idx, Route: s.route, Ready: s.ready, Pool: s.pool, Protocol: s.proto, Gen: s.gen, Miners: s.miners, Since: unixOrZero(s.since), Error: s.err})
	}
	sort.Slice(snap.Upstreams, func(i, j int) bool { return snap.Upstreams[i].Slot < snap.Upstreams[j].Slot })
	return snap
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
