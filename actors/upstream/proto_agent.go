package upstream

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
)

// The BTCAgent protocol (docs/PROTOCOL.md): one connection carries every
// miner of the slot. Miners are REGISTERed by session id, shares travel as
// 15-23-byte SUBMIT frames coalesced per flush window by the link's sink
// (sink.go, the share path), difficulty comes per miner in SET_DIFF frames
// and, with subres, verdicts in SUBMIT_RESPONSE frames.

func init() { register(config.ProtocolAgent, agentProtocol{}) }

type agentProtocol struct{}

// PoolEN2Size is the only extranonce2 size the BTCAgent protocol works with:
// 4 bytes of session id space plus the miner's 4 (docs/PROTOCOL.md §4.1).
const PoolEN2Size = 8

// agentLink is the protocol state of one agent link.
type agentLink struct {
	sink *agentSink // the share path's half (sink.go)
	hello
}

// dial runs the agent handshake (docs/PROTOCOL.md §3.3): subscribe with a
// btccom-agent/ user agent, configure for version rolling with mask
// ffffffff, capabilities before and after authorize, authorize with the
// pool user and an empty password.
func (agentProtocol) dial(ctx context.Context, s *Slot, p msg.PoolAddr, user string) (*link, error) {
	hs := agentHandshake(user, s.env.UserAgent, s.env.Subres)
	hs.badJob = s.badJob
	l, h, err := s.dialHandshake(ctx, p, config.ProtocolAgent, true, hs)
	if err != nil {
		return nil, err
	}
	l.proto = &agentLink{hello: *h}
	return l, nil
}

// agentHandshake is the handshake of an agent link; subres asks the pool
// for per-share verdicts.
func agentHandshake(user, userAgent string, subres bool) *handshake {
	var req []byte
	req = codec.AppendSubscribe(req, []byte(`"sub"`), userAgent)
	req = codec.AppendConfigureVersionRolling(req, []byte(`"conf"`))
	req = codec.AppendGetCapabilities(req, []byte(`"caps"`), subres)
	req = codec.AppendAuthorize(req, []byte(`"auth"`), user, "")
	req = codec.AppendGetCapabilities(req, []byte(`"caps_again"`), subres)
	poolSubres := false
	return &handshake{
		user:     user,
		req:      req,
		awaits:   []await{{"sub", "subscribe"}, {"auth", "authorize"}, {"", "job"}, {"caps_again", "capabilities"}},
		checkJob: agentCheckJob,
		reply: func(id string, rq *codec.Request, h *hello) error {
			switch id {
			case "sub":
				en1, size, err := parseSubscribe(rq)
				if err != nil {
					return err
				}
				if len(en1) != 8 {
					return fmt.Errorf("subscribe reply: extranonce1 %q is not 4 bytes of hex", en1)
				}
				if size != PoolEN2Size {
					return fmt.Errorf("extranonce2 size is %d; the BTCAgent protocol needs 8 (is this a btcpool sserver?)", size)
				}
				h.EN1, h.EN2Size = en1, size
			case "caps", "caps_again":
				if bytes.Contains(rq.Result.Raw, []byte(`"`+codec.CapSubmitResponse+`"`)) {
					poolSubres = true
				}
				h.Subres = subres && poolSubres
			}
			return nil
		},
		finish: func(h *hello) error {
			if h.Diff == 0 {
				return fmt.Errorf("no mining.set_difficulty before the first job")
			}
			return nil
		},
	}
}

// agentCheckJob is ParseNotify plus the BTCAgent rule that a job id is a
// decimal 0..255: the binary submit carries nothing else.
func agentCheckJob(rq *codec.Request) (*codec.Notify, error) {
	n, err := codec.ParseNotify(rq)
	if err != nil {
		return nil, err
	}
	if _, ok := codec.ParseJobID([]byte(n.JobID)); !ok {
		return nil, fmt.Errorf("job id %q is not a decimal 0..255, which the BTCAgent binary submit needs", n.JobID)
	}
	return n, nil
}

func (a *agentLink) read(s *Slot, l *link) { s.readLoop(l, a) }

func (*agentLink) checkJob(rq *codec.Request) (*codec.Notify, error) { return agentCheckJob(rq) }

func (a *agentLink) frame(s *Slot, l *link, f codec.Frame) {
	switch f.Cmd {
	case codec.CmdMiningSetDiff:
		d, err := codec.DecodeSetDiff(f)
		if err != nil {
			s.limited("bad-frame", poolFields(l), "bad SET_DIFF frame from pool; ignored: "+err.Error())
			return
		}
		ids := make([]uint16, d.Count)
		for i := range ids {
			ids[i] = d.ID(i)
		}
		s.post(&poolDiff{gen: l.gen, d: float64(uint64(1) << d.Exp), sids: ids})
	case codec.CmdSubmitResponse:
		idx, status, err := codec.DecodeSubmitResponse(f)
		if err != nil {
			s.limited("bad-frame", poolFields(l), "bad SUBMIT_RESPONSE frame from pool; ignored: "+err.Error())
			return
		}
		// The verdict goes straight to the miner from this goroutine.
		if a.sink == nil || !a.sink.verdict(idx, status) {
			s.log().WithField("index", idx).Debug("verdict for an unknown submit index; ignored")
		}
	}
}

// reply: the agent protocol sends no JSON requests after the handshake.
func (*agentLink) reply(*Slot, *link, *codec.Request) {}

// request: later JSON set_difficulty lines are the agent connection's own
// vardiff, which never sees shares; both reference agents ignore them
// (docs/PROTOCOL.md §6.3) and so do we.
func (*agentLink) request(*Slot, *link, *codec.Request, []byte) {}

func (a *agentLink) start(s *Slot, l *link) {
	l.diff, l.mask = a.Diff, a.Mask
	a.sink = newAgentSink(l, a.Subres, s.env.FlushInterval, s.env.Stats, s.env.Loop == nil)
	if s.env.Loop != nil {
		s.env.Loop.AddFlusher(a.sink)
	}
}

func (a *agentLink) replay(s *Slot, l *link) {
	now := time.Now()
	s.onJob(l, a.FirstJob, now)
	for _, b := range a.Backlog {
		if n, ok := b.(*codec.Notify); ok {
			s.onJob(l, n, now)
		}
	}
	a.FirstJob, a.Backlog = nil, nil
}

func (a *agentLink) attach(s *Slot, l *link, sid uint16, m *attached) {
	a.sink.register(sid, m.agent, m.worker)
	s.serve(l, sid, m)
}

func (a *agentLink) leave(_ *Slot, _ *link, sid uint16) { a.sink.unregister(sid) }

func (*agentLink) keeps(*link, *attached) bool { return false }

func (a *agentLink) job(s *Slot, l *link, n *codec.Notify, at time.Time) *msg.Job {
	short, ok := codec.ParseJobID([]byte(n.JobID))
	if !ok {
		return nil // checkJob let it through only if it parses
	}
	j := minerJob(l.gen, short, n, at, a.EN1, true)
	if hj, err := codec.NewHashJob(n, a.EN1); err == nil {
		j.Hash = hj
	}
	return j
}

func (a *agentLink) submit(s *Slot, _ *link, m *wire.Submit) {
	if st := a.sink.Submit(m.Share, m.Pending, false); st != 0 {
		answerPending(s.env.Stats, &m.Pending, st, "job belongs to a pool link that is gone", true)
	}
}

func (a *agentLink) flush(*link) { a.sink.Flush(time.Now()) }

func (a *agentLink) pending() int {
	if a.sink == nil {
		return 0
	}
	return a.sink.pending()
}

func (a *agentLink) failAll(_ *Slot, text string) {
	if a.sink != nil {
		a.sink.failAll(text)
	}
}

func (*agentLink) handle(*Slot, *link, any) {}

func (*agentLink) reconnect(*Slot, *link) bool { return false }

func (a *agentLink) welcome(_ *link, at *wire.Attached) { at.Sink = a.sink }

func (a *agentLink) describe(f map[string]any) { f["en1"], f["subres"] = a.EN1, a.Subres }

func (a *agentLink) stop(s *Slot) {
	if a.sink != nil && s.env.Loop != nil {
		s.env.Loop.RemoveFlusher(a.sink)
	}
}
