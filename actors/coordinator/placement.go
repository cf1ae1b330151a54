package coordinator

// Placement: which link serves a miner, and what happens to its miners when
// a link comes up, goes, or refuses one of them.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/sirupsen/logrus"
)

func (c *Coordinator) authorized(ctx actor.Context, m *wire.MinerAuthorized) {
	rec, ok := c.miners[m.Info.SessionID]
	if !ok {
		return // already gone
	}
	if c.subs != nil {
		c.admit(ctx, rec, m)
		return
	}
	rec.info, rec.mask, rec.authed, rec.xsub = m.Info, m.VersionMask, true, m.ExtranonceSub
	sel := &msg.UpstreamSelecting{Info: m.Info}
	c.env.Chain.OnSelect(sel)
	if _, ok := c.routes[sel.Route]; !ok {
		if sel.Route != "" {
			c.log().WithField("route", sel.Route).Warn("plugin chose an unknown route; using the listener's pools")
		}
		sel.Route = ""
	}
	rec.route = sel.Route
	c.place(ctx, m.Info.SessionID, rec)
}

// pick is the ready slot of route with the fewest miners. Slots whose
// current link already refused the miner (avoid: a per-miner link that
// failed, a pool that cannot map its extranonce) are skipped until they get
// a new link.
func (c *Coordinator) pick(route string, avoid map[int]uint64) *slotRec {
	var best *slotRec
	for _, s := range c.routes[route] {
		if g, ok := avoid[s.idx]; ok && g == s.gen {
			continue
		}
		if s.ready && (best == nil || s.miners < best.miners) {
			best = s
		}
	}
	return best
}

func (c *Coordinator) place(ctx actor.Context, sid uint16, rec *minerRec) {
	s := c.pick(rec.route, rec.avoid)
	if s == nil {
		c.park(ctx, rec, "no pool link ready")
		return
	}
	rec.slot = s
	rec.parkedAt = time.Time{}
	s.miners++
	ctx.Send(s.pid, &wire.Attach{Miner: rec.miner, SessionID: sid, UserAgent: rec.info.UserAgent, Worker: rec.info.Worker, VersionMask: rec.mask, Stats: rec.st, ExtranonceSub: rec.xsub})
}

func (c *Coordinator) park(ctx actor.Context, rec *minerRec, reason string) {
	rec.slot = nil
	if rec.parkedAt.IsZero() {
		rec.parkedAt = time.Now()
	}
	rec.miner.Tell(&wire.Parked{Reason: reason})
	if c.env.Policy == PolicyFake && c.lastJob != nil {
		rec.miner.Tell(&wire.JobNotified{Job: c.fakeJob(time.Now()), Clean: true})
	}
}

// rebuild takes over the sessions of a previous instance of this
// coordinator (one that panicked and was restarted): each is known again,
// and each authorized one says so again (wire.Replay), so it is placed on
// the new links as they come up. A fresh coordinator finds none.
func (c *Coordinator) rebuild() {
	if c.env.Sessions == nil {
		return
	}
	live := c.env.Sessions.takeover()
	if len(live) == 0 {
		return
	}
	now := time.Now()
	// MinersAuth stays: the sessions are still authorized, and each one's
	// replayed MinerAuthorized marks it so here, to be counted out when it
	// leaves.
	c.env.Stats.MinersConn.Store(int64(len(live)))
	for sid, m := range live {
		c.miners[sid] = &minerRec{miner: m, opened: now, parkedAt: now}
		m.Tell(&wire.Replay{})
	}
	c.log().WithField("miners", len(live)).Warn("coordinator restarted; taking its miners over again")
}

func (c *Coordinator) gone(ctx actor.Context, m *wire.MinerGone) {
	if c.env.Sessions != nil {
		c.env.Sessions.remove(m.SessionID)
	}
	rec, ok := c.miners[m.SessionID]
	if !ok {
		// Not known here, yet its id is still allocated (ids are freed only
		// below, so it cannot belong to a newer miner): free it.
		c.env.Alloc.Free(m.SessionID)
		return
	}
	delete(c.miners, m.SessionID)
	if rec.slot != nil {
		rec.slot.miners--
		ctx.Send(rec.slot.pid, &wire.Detach{SessionID: m.SessionID})
	}
	if rec.authed {
		c.env.Stats.MinersAuth.Add(-1)
		if c.subs != nil {
			c.leave(ctx, rec)
		}
	}
	c.env.Stats.MinersConn.Add(-1)
	// The id is freed after the Detach is queued, so the UNREGISTER reaches
	// the pool before any REGISTER of a new miner with the same id.
	c.env.Alloc.Free(m.SessionID)
}

// slot finds the record of the slot a message came from: none for a slot
// already stopped (a sub-account's, closed meanwhile). An index never
// handed out is a bug, and the panic has the coordinator restarted clean.
func (c *Coordinator) slot(idx int) (*slotRec, bool) {
	if idx < 0 || idx >= c.slotsIssued() {
		panic(fmt.Sprintf("coordinator: message from slot %d, which was never started", idx))
	}
	s, ok := c.slots[idx]
	return s, ok
}

func (c *Coordinator) upReady(ctx actor.Context, m *wire.UpstreamReady) {
	s, ok := c.slot(m.Slot)
	if !ok {
		return
	}
	s.ready, s.gen, s.pool, s.proto, s.since, s.err = true, m.Gen, m.Pool, m.Protocol, time.Now(), ""
	if m.VersionMask != 0 && c.env.PoolMask != nil {
		c.env.PoolMask.Store(m.VersionMask)
	}
	// Parked miners of this route get work now, spread over the ready links.
	for sid, rec := range c.miners {
		if rec.authed && rec.slot == nil && rec.route == s.route && c.pick(rec.route, rec.avoid) != nil {
			c.place(ctx, sid, rec)
		}
	}
}

func (c *Coordinator) upLost(ctx actor.Context, m *wire.UpstreamLost) {
	s, ok := c.slot(m.Slot)
	if !ok {
		return
	}
	s.ready, s.miners, s.since, s.err = false, 0, time.Now(), m.Reason
	moved, parked := 0, 0
	for _, sid := range m.Miners {
		rec, ok := c.miners[sid]
		if !ok || rec.slot != s {
			continue
		}
		rec.slot = nil
		if c.replace(ctx, sid, rec, "pool link lost") {
			moved++
		} else {
			parked++
		}
	}
	// A slot may keep some miners (a per-miner pool whose control link
	// went keeps the miners' own links): recount.
	s.miners = 0
	for _, rec := range c.miners {
		if rec.slot == s {
			s.miners++
		}
	}
	if moved > 0 {
		c.env.Stats.Failovers.Add(1)
	}
	entry := c.log().WithFields(logrus.Fields{"slot": m.Slot, "pool": m.Pool, "moved": moved, "without_work": parked, "policy": c.env.Policy})
	// A pool that keeps dropping links must not flood the log: the same pool
	// and reason are logged at warn once a minute per link, repeats at debug.
	key := strconv.Itoa(m.Slot) + "|" + m.Pool + "|" + logging.WithoutAddrs(m.Reason)
	if last, ok := c.lostLogged[key]; ok && time.Since(last) < time.Minute {
		entry.Debug("pool link lost again: " + m.Reason)
		return
	}
	if c.lostLogged == nil {
		c.lostLogged = map[string]time.Time{}
	}
	c.lostLogged[key] = time.Now()
	entry.Warn("pool link lost: " + m.Reason)
}

// refused handles a slot that lost its link between our choice and the Attach.
func (c *Coordinator) refused(ctx actor.Context, m *wire.AttachRefused) {
	s, ok := c.slot(m.Slot)
	if !ok {
		return
	}
	if m.KeepSlot {
		// Only this miner cannot be served there (the slot logged why).
		rec, ok := c.miners[m.SessionID]
		if !ok || rec.slot != s {
			return
		}
		s.miners--
		rec.slot = nil
		if rec.avoid == nil {
			rec.avoid = map[int]uint64{}
		}
		rec.avoid[s.idx] = s.gen
		c.replace(ctx, m.SessionID, rec, m.Reason)
		return
	}
	s.ready = false
	rec, ok := c.miners[m.SessionID]
	if !ok || rec.slot != s {
		return
	}
	s.miners--
	rec.slot = nil
	c.replace(ctx, m.SessionID, rec, "pool link lost")
}

// replace puts a miner whose link is gone on another ready link of its
// route, or applies the outage policy. It reports whether the miner moved.
func (c *Coordinator) replace(ctx actor.Context, sid uint16, rec *minerRec, reason string) bool {
	if c.pick(rec.route, rec.avoid) != nil {
		c.place(ctx, sid, rec)
		return true
	}
	if c.env.Policy == PolicyDisconnect {
		rec.miner.Tell(&wire.Disconnect{Reason: reason + " (outage policy disconnect)"})
		return false
	}
	c.park(ctx, rec, reason)
	return false
}
