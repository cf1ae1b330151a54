package upstream

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
)

// Per-miner links (protocol "stratum-per-miner").
//
// The slot's main link is then a control connection, authorized like an
// aggregated link but never used for shares: it tells the slot (and through
// it the coordinator) that the pool is up, and failover and failback move it
// like any other main link. Every attached miner gets its own connection,
// authorized as "<pool user>.<worker>", so the pool sees each miner with its
// own difficulty and verdicts.
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

type minerUp struct {
	sid     uint16
	seq     uint64
	ctrlGen uint64
	l       *link
	err     error
}

// queueMinerDial asks for a (new) per-miner link for miner sid. The miner
// stays on its current link, if any, until the new one is up.
func (s *Slot) queueMinerDial(sid uint16, a *attached) {
	s.dialSeq++
	a.want = s.dialSeq
	s.dialQ = append(s.dialQ, sid)
	s.pumpDials()
}

func (s *Slot) pumpDials() {
	for s.dials < maxMinerDials && len(s.dialQ) > 0 {
		sid := s.dialQ[0]
		s.dialQ = s.dialQ[1:]
		a := s.attached[sid]
		ctrl := s.link
		if a == nil || a.want == 0 {
			continue
		}
		if ctrl == nil || ctrl.proto != protoPerMiner {
			a.want = 0
			continue
		}
		s.dials++
		p := ctrl.pool
		params := stratumParams{
			Pool: p, Stats: s.env.Stats, BadJob: s.badJob, User: s.poolUser(p) + "." + a.worker, UserAgent: minerUserAgent(a.agent, StratumUserAgent(s.env.UserAgent)),
			MinEN2: 1, Proto: protoPerMiner,
			DialTimeout: s.env.DialTimeout, HandshakeTimeout: s.env.HandshakeTimeout, MaxLine: s.env.MaxLine,
		}
		m := &minerUp{sid: sid, seq: a.want, ctrlGen: ctrl.gen}
		root, self, ctx := s.env.Root, s.self, s.ctx
		go func() {
			m.l, m.err = dialStratum(ctx, params)
			if m.l != nil && ctx.Err() != nil {
				m.l.close() // the slot stopped meanwhile
				return
			}
			root.Send(self, m)
		}()
	}
}

func (s *Slot) onMinerUp(ctx actor.Context, m *minerUp) {
	s.dials--
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
			s.warnLimited("miner-redial", map[string]any{"worker": a.worker}, "per-miner link reconnect failed: "+m.err.Error())
			return
		}
		s.refuseMiner(ctx, m.sid, a, "per-miner link: "+m.err.Error())
		return
	}
	l := m.l
	l.perMiner, l.sid = true, m.sid
	l.poolIdx = s.link.poolIdx
	if l.emap = sharedMap(l.shs.EN1, l.shs.EN2Size); l.emap == nil {
		if !a.xsub {
			l.close()
			s.refuseMiner(ctx, m.sid, a, fmt.Sprintf("pool %s gives an extranonce2 of %d bytes (< 8) and the miner did not send mining.extranonce.subscribe", l.name, l.shs.EN2Size))
			return
		}
		if l.emap = directMap(l.shs.EN1, l.shs.EN2Size); l.emap == nil {
			l.close()
			s.refuseMiner(ctx, m.sid, a, fmt.Sprintf("pool %s gives no extranonce1 and an extranonce2 of %d bytes: nothing is left for the miner's extranonce1", l.name, l.shs.EN2Size))
			return
		}
	}
	l.gen = s.env.Gens.Add(1)
	s.links[l.gen] = l
	s.initLink(l)
	s.startIO(l)
	s.replayHandshake(ctx, l)
	prev := a.cur
	s.setCur(ctx, a, l)
	if prev != nil && prev.perMiner {
		s.retire(ctx, prev)
	}
	s.welcome(ctx, a, l)
}

// minerLinkLost handles the end of a miner's own connection: unless a new
// one is already being dialed, the coordinator places the miner elsewhere.
func (s *Slot) minerLinkLost(ctx actor.Context, l *link, reason string) {
	s.answerAll(ctx, l, "pool link lost before the share was confirmed")
	s.drop(l)
	a := s.attached[l.sid]
	if a == nil || a.cur != l {
		return
	}
	s.setCur(ctx, a, nil)
	if a.want != 0 {
		return // a reconnect is on its way
	}
	s.refuseMiner(ctx, l.sid, a, "the pool closed the miner's link: "+reason)
}
