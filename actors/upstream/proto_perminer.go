package upstream

import (
	"context"
	"fmt"
	"strings"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
)

// Stratum per miner (protocol "stratum-per-miner").
//
// The slot's main link is then a control connection, authorized like an
// aggregated link but never used for shares: it tells the slot (and through
// it the coordinator) that the pool is up, and failover and failback move it
// like any other main link. Every attached miner gets its own solo link,
// authorized as "<pool user>.<worker>", so the pool sees each miner with its
// own difficulty and verdicts. Both are stratumLinks (proto_stratum.go).
//
// Cost: one TCP connection and one reader goroutine per miner (its stack
// plus a 2-4 KB line buffer) and about 8 recent jobs per miner (each ~3 KB
// with 12 merkle branches; the hash-check copy is built only when a submit
// plugin needs it). The writer goroutine exists only while a write is in
// progress. Dials are spread: at most maxMinerDials handshakes per slot at
// a time.
//
// Extranonce: with a pool extranonce2 of 8 bytes or more the miner keeps the
// agent layout (see enMap). With less, only a miner that sent
// mining.extranonce.subscribe can be served: it gets mining.set_extranonce
// with the pool's nonce space (direct layout). A miner that did not is
// refused on that pool: the coordinator places it elsewhere or applies the
// outage policy, and the refusal is logged at most once a minute per slot.
const maxMinerDials = 32

func init() { register(config.ProtocolStratumPerMiner, perMinerProtocol{}) }

type perMinerProtocol struct{}

func (perMinerProtocol) dial(ctx context.Context, s *Slot, p msg.PoolAddr, user string) (*link, error) {
	l, err := dialStratum(ctx, s, p, config.ProtocolStratumPerMiner, s.linkUser(user), StratumUserAgent(s.env.UserAgent), 1)
	if err == nil {
		l.proto.(*stratumLink).control = true
	}
	return l, err
}

// perMinerDials is the slot's queue of solo links to dial.
type perMinerDials struct {
	queue []uint16 // miners waiting for a dial slot
	dials int      // dials in flight
	seq   uint64
}

// reset forgets the queue (the control link is gone; dials in flight are
// dropped when they come back).
func (d *perMinerDials) reset() { d.queue = nil }

// isControl reports whether l is a stratum-per-miner control link.
func isControl(l *link) bool {
	if l == nil {
		return false
	}
	t, ok := l.proto.(*stratumLink)
	return ok && t.control
}

// minerUp is a solo link's dial result.
type minerUp struct {
	sid     uint16
	seq     uint64
	ctrlGen uint64
	l       *link
	err     error
}

// attachPerMiner is a control link's attach: the miner is served once its
// own link is up.
func (s *Slot) attachPerMiner(l *link, sid uint16, a *attached) {
	if t := l.proto.(*stratumLink); t.EN2Size < sharedEN2 && !a.xsub {
		s.refuseMiner(sid, a, fmt.Sprintf("pool %s gives an extranonce2 of %d bytes (< 8) and the miner did not send mining.extranonce.subscribe, so it cannot be served by this pool", l.name, t.EN2Size))
		return
	}
	s.queueMinerDial(sid, a)
}

// queueMinerDial asks for a (new) solo link for miner sid. The miner stays
// on its current link, if any, until the new one is up.
func (s *Slot) queueMinerDial(sid uint16, a *attached) {
	d := &s.perMiner
	d.seq++
	a.want = d.seq
	d.queue = append(d.queue, sid)
	s.pumpDials()
}

func (s *Slot) pumpDials() {
	d := &s.perMiner
	for d.dials < maxMinerDials && len(d.queue) > 0 {
		sid := d.queue[0]
		d.queue = d.queue[1:]
		a := s.attached[sid]
		ctrl := s.link
		if a == nil || a.want == 0 {
			continue
		}
		if !isControl(ctrl) {
			a.want = 0
			continue
		}
		d.dials++
		p := ctrl.pool
		user, ua := s.poolUser(p)+"."+a.worker, minerUserAgent(a.agent, StratumUserAgent(s.env.UserAgent))
		m := &minerUp{sid: sid, seq: a.want, ctrlGen: ctrl.gen}
		ctx := s.ctx
		go func() {
			m.l, m.err = dialStratum(ctx, s, p, config.ProtocolStratumPerMiner, user, ua, 1)
			if m.l != nil && ctx.Err() != nil {
				m.l.close() // the slot stopped meanwhile
				return
			}
			s.post(m)
		}()
	}
}

// minerUserAgent is what a solo link subscribes with: the miner's own
// client name, so the pool sees the real firmware, unless it would pass for
// an agent.
func minerUserAgent(ua, fallback string) string {
	if ua == "" || strings.HasPrefix(strings.ToLower(ua), codec.AgentUserAgentPrefix) {
		return fallback
	}
	return ua
}

func (s *Slot) onMinerUp(m *minerUp) {
	s.perMiner.dials--
	defer s.pumpDials()
	a := s.attached[m.sid]
	if a == nil || a.want != m.seq || s.link == nil || s.link.gen != m.ctrlGen {
		// The miner left, was given another dial, or the pool link changed.
		if m.l != nil {
			m.l.close()
		}
		return
	}
	a.want = 0
	if m.err != nil {
		if a.cur != nil && !a.cur.broken {
			// A reconnect the pool asked for failed; the old link still works.
			s.limited("miner-redial", map[string]any{"worker": a.worker}, "per-miner link reconnect failed: "+m.err.Error())
			return
		}
		s.refuseMiner(m.sid, a, "per-miner link: "+m.err.Error())
		return
	}
	l := m.l
	t := l.proto.(*stratumLink)
	l.solo, l.sid = true, m.sid
	l.poolIdx = s.link.poolIdx
	if t.emap = sharedMap(t.EN1, t.EN2Size); t.emap == nil {
		if !a.xsub {
			l.close()
			s.refuseMiner(m.sid, a, fmt.Sprintf("pool %s gives an extranonce2 of %d bytes (< 8) and the miner did not send mining.extranonce.subscribe", l.name, t.EN2Size))
			return
		}
		if t.emap = directMap(t.EN1, t.EN2Size); t.emap == nil {
			l.close()
			s.refuseMiner(m.sid, a, fmt.Sprintf("pool %s gives no extranonce1 and an extranonce2 of %d bytes: nothing is left for the miner's extranonce1", l.name, t.EN2Size))
			return
		}
	}
	s.serveSolo(l, a)
}

// serveSolo opens l, a miner's own link, and moves miner a onto it; the
// miner's previous own link is retired (it still delivers its verdicts).
func (s *Slot) serveSolo(l *link, a *attached) {
	s.open(l)
	prev := a.cur
	s.setCur(a, l)
	if prev != nil && prev.solo {
		s.retire(prev)
	}
	s.welcome(a, l)
}
