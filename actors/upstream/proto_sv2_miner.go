package upstream

import (
	"fmt"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
)

// sv2-per-miner: every miner the control channel's link takes gets its own
// extended channel on the same connection, opened as "<pool user>.<worker>".
// The miner is served once that channel has its first job, by a solo link
// whose connection is the shared one (sv2ChanConn): jobs, difficulty and
// verdicts are per miner, as with stratum-per-miner, but there is one TCP
// connection and one reader per slot, and the shares of all miners of a
// flush window leave in one write. Until then a miner stays where it was
// (when a new link replaces the old one, on its old channel).

// sv2WantTag marks attached.want values that are SV2 channel opens, so they
// never equal a stratum-per-miner dial number.
const sv2WantTag = 1 << 40

// sv2Open is a miner's channel open waiting for the pool's answer.
type sv2Open struct {
	sid  uint16
	want uint64
	user string
}

// openFor asks the pool for miner a's channel.
func (w *sv2Wire) openFor(s *Slot, sid uint16, a *attached) {
	w.nextReq++
	req := w.nextReq
	o := &sv2Open{sid: sid, want: sv2WantTag | uint64(req), user: s.poolUser(w.main.pool) + "." + a.worker}
	w.opening[req] = o
	a.want = o.want
	open := &sv2.OpenExtendedMiningChannel{RequestID: req, UserIdentity: o.user, NominalHashRate: sv2MinerHashRate,
		MaxTarget: sv2MaxTarget, MinExtranonceSize: sv2MinEN}
	if w.seal(open) == nil {
		w.later(s) // opens of a window (a farm joining) leave together
	}
}

// waiting returns the miner an open is for, if it still waits for it.
func (w *sv2Wire) waiting(s *Slot, o *sv2Open) *attached {
	if a := s.attached[o.sid]; a != nil && a.want == o.want {
		return a
	}
	return nil
}

// opened takes the pool's channel for a miner (jobs follow).
func (w *sv2Wire) opened(s *Slot, m *sv2.OpenExtendedMiningChannelSuccess) {
	o := w.opening[m.RequestID]
	if o == nil {
		return // the main channel's, or not ours
	}
	delete(w.opening, m.RequestID)
	a := w.waiting(s, o)
	if a == nil || w.main.retiring {
		w.closeChannel(m.ChannelID, "miner left")
		return
	}
	if m.ExtranonceSize < sv2MinEN {
		w.closeChannel(m.ChannelID, "extranonce too small")
		a.want = 0
		s.refuseMiner(o.sid, a, fmt.Sprintf("pool %s gives the miner's channel an extranonce of %d bytes; %d are needed (its session prefix and 4 bytes of its own)", w.main.name, m.ExtranonceSize, sv2MinEN))
		return
	}
	t := newSV2Link(w, m.ChannelID, m.ExtranoncePrefix, int(m.ExtranonceSize), m.GroupChannelID, sv2.Difficulty(m.Target))
	t.sid, t.want = o.sid, o.want
	w.chans[t.id] = t
}

// openFailed hands a miner whose channel the pool refused back to the
// coordinator.
func (w *sv2Wire) openFailed(s *Slot, m *sv2.OpenMiningChannelError) {
	o := w.opening[m.RequestID]
	if o == nil {
		return
	}
	delete(w.opening, m.RequestID)
	if a := w.waiting(s, o); a != nil {
		a.want = 0
		s.refuseMiner(o.sid, a, fmt.Sprintf("pool %s refused a channel for %q: %s", w.main.name, o.user, m.ErrorCode))
	}
}

// serveMiner moves a miner onto its channel once the channel has a job.
func (w *sv2Wire) serveMiner(s *Slot, t *sv2Link, n *codec.Notify, info sv2JobInfo) {
	a := s.attached[t.sid]
	if a == nil || a.want != t.want || w.main.retiring {
		w.closeChannel(t.id, "miner left")
		return
	}
	a.want = 0
	main := w.main
	cl := &link{conn: sv2ChanConn{main.conn}, pool: main.pool, poolIdx: main.poolIdx, name: main.name,
		protocol: main.protocol, proto: t, solo: true, sid: t.sid}
	t.first, t.firstN = info, n
	s.serveSolo(cl, a)
}

// closedByPool ends a miner's channel the pool closed: the coordinator
// places the miner again.
func (w *sv2Wire) closedByPool(s *Slot, m *sv2.CloseChannel) {
	t := w.chans[m.ChannelID]
	if t == nil || t.l == w.main {
		return
	}
	delete(w.chans, m.ChannelID)
	if t.l != nil {
		s.down(t.l, fmt.Errorf("the pool closed the miner's channel %d: %s", m.ChannelID, m.ReasonCode))
		return
	}
	if a := s.attached[t.sid]; a != nil && a.want == t.want {
		a.want = 0
		s.refuseMiner(t.sid, a, fmt.Sprintf("the pool closed the miner's channel %d before its first job: %s", m.ChannelID, m.ReasonCode))
	}
}
