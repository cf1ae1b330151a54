package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/btcagent/btcagent/internal/proxydial"
	"github.com/sirupsen/logrus"
)

// ---- dialling and failover ----

func (s *Slot) poolUser(p msg.PoolAddr) string {
	if p.User != "" {
		return p.User
	}
	return s.env.Route.PoolUser
}

// dialPool connects to pool idx in its protocol. It only reads the
// immutable Env, so dial goroutines may call it.
func (s *Slot) dialPool(ctx context.Context, idx int) (*link, error) {
	p := s.env.Route.Pools[idx]
	name, proto := protoOf(p)
	if proto == nil {
		return nil, &HandshakeError{Pool: poolName(p), Reason: fmt.Sprintf("protocol %q is not built into this agent", name)}
	}
	l, err := proto.dial(ctx, s, p, s.poolUser(p))
	if l != nil {
		l.poolIdx = idx
	}
	return l, err
}

func (s *Slot) startDial() {
	if s.dialing || s.link != nil {
		return
	}
	pools := s.env.Route.Pools
	if len(pools) == 0 {
		return
	}
	s.dialing = true
	idx := s.poolIdx % len(pools)
	ctx := s.ctx
	go func() {
		l, err := s.dialPool(ctx, idx)
		if err != nil {
			s.post(&linkFailed{err: err, pool: idx})
			return
		}
		if ctx.Err() != nil {
			l.close() // the slot stopped meanwhile
			return
		}
		s.post(&linkUp{l: l, pool: idx})
	}()
}

func (s *Slot) backoff() time.Duration {
	// One attempt per pool per step; the delay doubles after each full pass
	// over the list, capped, with ±20% jitter so that many slots (and many
	// farms) do not reconnect in lockstep.
	n := max(len(s.env.Route.Pools), 1)
	pass := s.attempt / n
	d := s.env.ReconnectMin
	for i := 0; i < pass && d < s.env.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, s.env.ReconnectMax)
	j := 0.8 + 0.4*rand.Float64()
	return time.Duration(float64(d) * j)
}

func (s *Slot) after(d time.Duration, m any) { time.AfterFunc(d, func() { s.post(m) }) }

func (s *Slot) onFailed(m *linkFailed) {
	s.dialing = false
	reason := m.err.Error()
	// One line per distinct failure, and a reminder every 20 attempts. A
	// handshake failure is "the same" when pool and stage match: a refusing
	// pool shows up as reset, EOF or broken pipe from one attempt to the next.
	key := logging.WithoutAddrs(reason)
	var he *HandshakeError
	if errors.As(m.err, &he) {
		key = he.Pool + "|" + he.Reason
	}
	if key != s.lastErrKey || s.attempt%20 == 0 {
		s.log().WithField("attempt", s.attempt+1).Warn("pool link failed: " + reason)
	}
	s.lastErr, s.lastErrKey = reason, key
	s.attempt++
	s.poolIdx = m.pool + 1
	s.env.Stats.Reconnects.Add(1)
	s.after(s.backoff(), &redial{})
}

// install makes l the slot's main link: generation, reader, and the jobs
// that arrived with the handshake.
func (s *Slot) install(l *link, pool int) {
	l.poolIdx = pool
	s.link, s.ready = l, true
	s.poolIdx = pool
	s.since = time.Now()
	s.open(l)
}

// open gives a link that finished its handshake a generation and starts it.
func (s *Slot) open(l *link) {
	l.gen = s.env.Gens.Add(1)
	l.members = map[uint16]struct{}{}
	s.links[l.gen] = l
	l.proto.start(s, l)
	st := s.env.Stats
	l.startWriter(30*time.Second, func(int) { st.Writes.Add(1) }) // bytes are counted at the socket
	go l.proto.read(s, l)
	l.proto.replay(s, l)
}

// announce tells the coordinator l serves the slot now and moves the
// slot's miners onto it, except those that keep their own link.
func (s *Slot) announce(l *link) {
	// First, so that a refusal below is recorded against this link.
	s.tell(s.env.Coordinator, &wire.UpstreamReady{Slot: s.env.Slot, Gen: l.gen, Pool: l.name, Protocol: l.protocol, VersionMask: l.mask})
	for sid, a := range s.attached {
		if a.cur != nil && l.proto.keeps(l, a) {
			continue
		}
		prev := a.cur
		s.attachOn(l, sid, a)
		if prev != nil && prev.solo && a.cur != prev {
			s.retire(prev)
		}
	}
	l.proto.flush(l)
	s.armFailback()
}

func (s *Slot) onUp(l *link, pool int) {
	s.dialing = false
	if s.link != nil {
		// A switch dial finished first and took the slot: this one is spare.
		l.close()
		return
	}
	s.install(l, pool)
	// Remember how far the failover had gone: a link that dies before it
	// proves stable counts as one more failed attempt (see lost).
	s.upAttempt = s.attempt
	s.attempt, s.lastErr, s.lastErrKey = 0, "", ""
	if pool > 0 {
		s.env.Stats.Failovers.Add(1)
	}
	s.logReady(l, "pool link ready")
	s.announce(l)
}

func (s *Slot) logReady(l *link, text string) {
	f := logrus.Fields{"pool": l.name, "protocol": l.protocol, "mask": codec.Hex32(l.mask), "diff": l.diff}
	l.proto.describe(f)
	if via := proxydial.Via(l.conn); via != "" {
		f["via"] = via // credentials hidden
	}
	s.log().WithFields(f).Info(text)
}

// down handles a link whose connection ended.
func (s *Slot) down(l *link, err error) {
	reason := "connection closed"
	if err != nil {
		reason = err.Error()
		var ne interface{ Timeout() bool }
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			reason = fmt.Sprintf("pool silent for %s", s.env.DeadAfter)
		case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
			// Whether the close fell between two messages, inside one, or
			// came as a reset or a broken pipe because our last write
			// crossed it is chance; one wording keeps the loss logged once,
			// not two or three times.
			reason = "the pool closed the connection"
		}
	}
	switch {
	case l == s.link:
		s.lost(reason)
	case l.solo && !l.retiring:
		s.soloLost(l, reason)
	default:
		l.proto.failAll(s, "pool link lost before the share was confirmed")
		for _, a := range s.attached {
			if a.cur == l {
				s.setCur(a, nil) // waiting for its own link
			}
		}
		s.drop(l)
	}
}

// soloLost handles the end of a miner's own connection: unless a new one
// is already being dialled, the coordinator places the miner elsewhere.
func (s *Slot) soloLost(l *link, reason string) {
	l.proto.failAll(s, "pool link lost before the share was confirmed")
	s.drop(l)
	a := s.attached[l.sid]
	if a == nil || a.cur != l {
		return
	}
	s.setCur(a, nil)
	if a.want != 0 {
		return // a reconnect is on its way
	}
	s.refuseMiner(l.sid, a, "the pool closed the miner's link: "+reason)
}

func (s *Slot) lost(reason string) {
	l := s.link
	// The coordinator logs the loss once, with what it did about the miners.
	l.proto.failAll(s, "pool link lost before the share was confirmed")
	s.drop(l)
	gen, name := l.gen, l.name
	s.link, s.ready = nil, false
	s.lastErr = reason
	sids := make([]uint16, 0, len(s.attached))
	for sid, a := range s.attached {
		a.want = 0
		if c := a.cur; c != nil && c.solo {
			if l.proto.keeps(l, a) {
				// Only the control connection went (an idle timeout, say):
				// the miners' own links still work and stay; the slot takes
				// no new miners until it is back.
				continue
			}
			c.proto.failAll(s, "pool link lost before the share was confirmed")
			s.drop(c)
		}
		s.setCur(a, nil)
		delete(s.attached, sid)
		sids = append(sids, sid)
	}
	s.perMiner.reset()
	s.tell(s.env.Coordinator, &wire.UpstreamLost{Slot: s.env.Slot, Gen: gen, Pool: name, Reason: reason, Miners: sids})
	s.env.Stats.Reconnects.Add(1)
	if time.Since(s.since) < s.stableAfter() {
		// A pool that accepts the login and then drops the link (after the
		// first job, say) is a failing pool, not a working one: keep the
		// backoff growing and move on along the list instead of redialling
		// it every few milliseconds.
		s.attempt = s.upAttempt + 1
		s.poolIdx = l.poolIdx + 1
	} else {
		s.attempt = 1
	}
	s.after(s.backoff(), &redial{})
}

// stableAfter is how long a link must stay up before its loss counts as a
// hiccup of a working pool rather than one more failure of a bad one.
func (s *Slot) stableAfter() time.Duration {
	return max(10*s.env.ReconnectMin, 5*time.Second)
}

// closeLink closes a link's socket and releases its protocol state.
func (s *Slot) closeLink(l *link) {
	l.proto.stop(s)
	l.close()
}

// drop closes a link and forgets it.
func (s *Slot) drop(l *link) {
	s.closeLink(l)
	delete(s.links, l.gen)
	for i, r := range s.retired {
		if r == l {
			s.retired = append(s.retired[:i], s.retired[i+1:]...)
			break
		}
	}
}

// setCur moves a miner to link l (nil: none), keeping the links' user counts.
func (s *Slot) setCur(a *attached, l *link) {
	old := a.cur
	if old == l {
		return
	}
	a.cur = l
	if l != nil {
		l.users++
	}
	if old != nil {
		old.users--
		if old.retiring {
			s.checkRetire(old, false)
		}
	}
}

// ---- replacing a working link: failback and pool-requested reconnects ----

// startSwitch dials the candidate pools in order, in the background; the
// first that completes its handshake replaces the main link.
func (s *Slot) startSwitch(cands []int, why string) {
	if s.switching || len(cands) == 0 {
		return
	}
	s.switching = true
	ctx := s.ctx
	go func() {
		var last error
		for _, idx := range cands {
			l, err := s.dialPool(ctx, idx)
			if err == nil {
				if ctx.Err() != nil {
					l.close()
					return
				}
				s.post(&linkUp{l: l, pool: idx, swtch: true, reason: why})
				return
			}
			last = err
		}
		s.post(&linkFailed{err: last, pool: cands[len(cands)-1], swtch: true})
	}()
}

func (s *Slot) onSwitchUp(m *linkUp) {
	s.switching, s.wantReconnect = false, false
	if s.link == nil {
		// The old link died meanwhile: this is simply the slot's new link.
		s.onUp(m.l, m.pool)
		return
	}
	s.retire(s.link)
	l := m.l
	s.install(l, m.pool)
	s.lastErr = ""
	s.logReady(l, "pool link replaced ("+m.reason+"): miners move to "+l.name)
	s.announce(l)
}

func (s *Slot) onSwitchFailed(m *linkFailed) {
	s.switching = false
	if m.err != nil {
		s.limited("switch-failed", logrus.Fields{}, "better pool still unavailable: "+m.err.Error())
	}
	if s.link == nil {
		return
	}
	if s.link.broken {
		reason := "no candidate"
		if m.err != nil {
			reason = m.err.Error()
		}
		s.lost("could not reconnect after the pool changed the extranonce: " + reason)
		return
	}
	if s.wantReconnect {
		s.wantReconnect = false
		s.startSwitch([]int{s.link.poolIdx}, "the pool sent client.reconnect")
		return
	}
	s.armFailback()
}

func (s *Slot) armFailback() {
	d := s.env.FailbackInterval
	if s.failbackArmed || s.link == nil || s.link.poolIdx == 0 || d <= 0 {
		return
	}
	s.failbackArmed = true
	s.after(d, &failbackTick{})
}

func (s *Slot) onFailbackTick() {
	s.failbackArmed = false
	if s.link == nil || s.link.poolIdx == 0 {
		return
	}
	if s.switching {
		s.armFailback()
		return
	}
	cands := make([]int, 0, s.link.poolIdx)
	for i := 0; i < s.link.poolIdx; i++ {
		cands = append(cands, i)
	}
	s.startSwitch(cands, "failback")
}

// reconnect replaces l with a fresh connection to the same pool, keeping the
// miners on l until the new one is up.
func (s *Slot) reconnect(l *link, why string) {
	if l.proto.reconnect(s, l) || l != s.link {
		return
	}
	if s.switching {
		s.wantReconnect = true
		return
	}
	s.startSwitch([]int{l.poolIdx}, why)
}

// retire takes l out of service: it still delivers the verdicts of shares it
// carried (and takes late shares on its jobs) and is closed once drained.
func (s *Slot) retire(l *link) {
	if l.retiring {
		return
	}
	l.retiring, l.retiredAt = true, time.Now()
	l.proto.flush(l)
	if !l.solo {
		s.retired = append(s.retired, l)
	}
	s.after(retireGrace, &retireCheck{gen: l.gen})
}

// A replaced link stays open for the verdicts of the shares it carried: at
// least retireGrace (shares still in mailboxes), at most retireMax.
const (
	retireGrace = 500 * time.Millisecond
	retireMax   = 10 * time.Second
)

// checkRetire closes a retiring link once no miner uses it and its shares
// are answered (after the grace period, for shares still in mailboxes), or
// when retireMax has passed. timer re-arms the check.
func (s *Slot) checkRetire(l *link, timer bool) {
	if !l.retiring || s.links[l.gen] != l {
		return
	}
	age := time.Since(l.retiredAt)
	if l.users == 0 && ((l.proto.pending() == 0 && age >= retireGrace) || age >= retireMax) {
		l.proto.failAll(s, "pool link retired before the share was confirmed")
		s.drop(l)
		return
	}
	if timer {
		s.after(retireGrace, &retireCheck{gen: l.gen})
	}
}
