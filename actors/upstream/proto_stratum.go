package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
)

// Plain Stratum V1 to the pool. An aggregated link carries all the slot's
// miners on one connection authorized as "<pool user>.<listener>"; each
// miner's session id travels inside the pool's extranonce2 (enmap.go), so
// the pool's difficulty and verdicts apply per connection and per-miner
// statistics stay local. The same link type serves stratum-per-miner's
// control and per-miner connections (proto_perminer.go).

func init() { register(config.ProtocolStratum, stratumProtocol{}) }

type stratumProtocol struct{}

// stratumLink is the protocol state of one Stratum connection.
type stratumLink struct {
	hello
	user    []byte // the authorize name as a JSON string, for submits
	control bool   // a stratum-per-miner control link: carries no shares

	out        []byte                  // requests not yet written
	reqs       map[uint64]wire.Pending // by our JSON request id
	nextReq    uint64
	sentUpTo   uint64 // the last request id written to the socket
	flushArmed bool
	ring       []jobRec // recent jobs by local short id
	nextShort  uint8    // local short id of the next job
	emap       *enMap   // extranonce mapping for the next job
}

// stratumRing is how many recent jobs a stratum link can still take shares
// for. Miners keep 8 (miner.jobRing); per-miner links hold one ring each, so
// it stays small.
const stratumRing = 16

// jobRec is one job of a stratum link as the pool named it.
type jobRec struct {
	job    *msg.Job
	poolID []byte // the pool's job id as a JSON string
	m      *enMap
}

// Events a stratum reader posts to its link (postLink → handle).
type (
	stratumVerdict struct {
		id     uint64
		status codec.Status
		text   string
	}
	stratumExtranonce struct {
		en1  string
		size int
	}
	stratumFlush struct{}
)

func (stratumProtocol) dial(ctx context.Context, s *Slot, p msg.PoolAddr, user string) (*link, error) {
	return dialStratum(ctx, s, p, config.ProtocolStratum, s.linkUser(user), StratumUserAgent(s.env.UserAgent), sharedEN2)
}

// linkUser is the name a link for all the slot's miners authorizes with:
// "<pool user>.<stratum_worker or the listener's name>".
func (s *Slot) linkUser(poolUser string) string {
	worker := s.env.StratumWorker
	if worker == "" {
		worker = s.env.Listener
	}
	return poolUser + "." + workerPart(worker)
}

// dialStratum connects and runs a plain Stratum V1 handshake: configure
// (version rolling, mask ffffffff), subscribe, extranonce.subscribe and
// authorize. A pool whose extranonce2 is smaller than minEN2 is refused.
func dialStratum(ctx context.Context, s *Slot, p msg.PoolAddr, protocol, user, userAgent string, minEN2 int) (*link, error) {
	hs := stratumHandshake(user, userAgent, minEN2, protocol)
	hs.badJob = s.badJob
	l, h, err := s.dialHandshake(ctx, p, protocol, false, hs)
	if err != nil {
		return nil, err
	}
	l.proto = &stratumLink{hello: *h, user: codec.AppendJSONString(nil, user)}
	return l, nil
}

func stratumHandshake(user, userAgent string, minEN2 int, protocol string) *handshake {
	var req []byte
	req = codec.AppendConfigureVersionRolling(req, []byte(`"conf"`))
	req = codec.AppendSubscribe(req, []byte(`"sub"`), userAgent)
	req = codec.AppendExtranonceSubscribe(req, []byte(`"xsub"`))
	req = codec.AppendAuthorize(req, []byte(`"auth"`), user, "x")
	return &handshake{
		user:     user,
		req:      req,
		awaits:   []await{{"sub", "subscribe"}, {"auth", "authorize"}, {"", "job"}},
		checkJob: codec.ParseNotify,
		reply: func(id string, rq *codec.Request, h *hello) error {
			if id == "sub" {
				en1, size, err := parseSubscribe(rq)
				if err != nil {
					return err
				}
				if size < minEN2 {
					return fmt.Errorf("extranonce2 size is %d; protocol %q needs at least %d (4 bytes of miner session prefix + 4 for the miner); use protocol %q for this pool", size, protocol, minEN2, config.ProtocolStratumPerMiner)
				}
				h.EN1, h.EN2Size = en1, size
			}
			return nil
		},
		finish: func(h *hello) error {
			if h.Diff == 0 {
				h.Diff = 1 // Stratum's difficulty before any set_difficulty
			}
			return nil
		},
	}
}

// StratumUserAgent derives the user agent stratum links subscribe with from
// the agent's: it must not start with "btccom-agent/", or a btcpool sserver
// would expect the BTCAgent protocol on the link.
func StratumUserAgent(agentUA string) string {
	v := strings.TrimPrefix(agentUA, codec.AgentUserAgentPrefix)
	if v == agentUA || v == "" {
		v = "3"
	}
	return "btcagent-proxy/" + v
}

// workerPart turns a listener name into something every pool accepts after
// the dot of "<user>.<worker>": [A-Za-z0-9_-], anything else becomes '_'.
func workerPart(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "agent"
	}
	return string(b)
}

// ---- reader side ----

func (t *stratumLink) read(s *Slot, l *link) { s.readLoop(l, t) }

func (*stratumLink) checkJob(rq *codec.Request) (*codec.Notify, error) { return codec.ParseNotify(rq) }

func (*stratumLink) frame(*Slot, *link, codec.Frame) {} // a line-only protocol: the reader never frames

func (*stratumLink) reply(s *Slot, l *link, rq *codec.Request) {
	id, err := strconv.ParseUint(string(rq.ID), 10, 64)
	if err != nil {
		return // a late handshake reply ("xsub", "conf")
	}
	status, text := parseVerdict(rq)
	s.postLink(l, stratumVerdict{id: id, status: status, text: text})
}

func (*stratumLink) request(s *Slot, l *link, rq *codec.Request, line []byte) {
	switch string(rq.Method) {
	case codec.MethodSetDifficulty:
		if d, err := strconv.ParseFloat(string(rq.Param(0).Raw), 64); err == nil && d > 0 {
			s.post(&poolDiff{gen: l.gen, d: d})
		}
	case codec.MethodSetExtranonce:
		en1, err := rq.Param(0).String()
		size, err2 := strconv.Atoi(string(rq.Param(1).Raw))
		if err != nil || err2 != nil || (en1 != "" && !codec.IsHex(en1)) || size < 1 || size > maxPoolEN2 {
			s.limited("bad-extranonce", map[string]any{"pool": l.name, "params": string(line)}, "bad mining.set_extranonce from pool; ignored")
			return
		}
		s.postLink(l, stratumExtranonce{en1: strings.ToLower(en1), size: size})
	case codec.MethodReconnect:
		// Host and port in the params are ignored on purpose: the agent
		// only ever connects to the pools in its configuration.
		s.post(&poolReconnect{gen: l.gen})
	}
}

// parseVerdict reads a submit reply: result true is an accept, anything
// else a reject with the pool's code (Stratum codes 20..25 match btcpool's).
func parseVerdict(rq *codec.Request) (codec.Status, string) {
	if string(rq.Result.Raw) == "true" {
		return codec.StatusAccept, ""
	}
	if rq.Error.Kind == codec.KindArray {
		var e []json.RawMessage
		if json.Unmarshal(rq.Error.Raw, &e) == nil && len(e) >= 1 {
			code, _ := strconv.ParseInt(string(e[0]), 10, 32)
			text := ""
			if len(e) >= 2 {
				_ = json.Unmarshal(e[1], &text)
			}
			return codec.Status(code), text
		}
	}
	if rq.Error.Kind == codec.KindObject {
		var e struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(rq.Error.Raw, &e) == nil {
			return codec.Status(e.Code), e.Message
		}
	}
	return codec.StatusRejectNoReason, "rejected by pool: " + string(bytes.TrimSpace(rq.Error.Raw))
}

// ---- slot side ----

func (t *stratumLink) start(s *Slot, l *link) {
	l.diff, l.mask = t.Diff, t.Mask
	t.reqs = map[uint64]wire.Pending{}
	n := stratumRing
	if l.solo {
		n = stratumRing / 2
	}
	t.ring = make([]jobRec, n)
	if t.emap == nil {
		if t.emap = sharedMap(t.EN1, t.EN2Size); t.emap == nil {
			t.emap = controlMap(t.EN1, t.EN2Size) // a control link's: never sent to miners
		}
	}
}

func (t *stratumLink) replay(s *Slot, l *link) {
	now := time.Now()
	s.onJob(l, t.FirstJob, now)
	for _, b := range t.Backlog {
		switch v := b.(type) {
		case *codec.Notify:
			s.onJob(l, v, now)
		case diffEv:
			s.onDiff(l, v.d, nil)
		}
	}
	t.FirstJob, t.Backlog = nil, nil
}

func (t *stratumLink) attach(s *Slot, l *link, sid uint16, a *attached) {
	if t.control {
		s.attachPerMiner(l, sid, a)
		return
	}
	s.serve(l, sid, a)
}

func (*stratumLink) leave(*Slot, *link, uint16) {}

// keeps: a stratum-per-miner control link leaves the miners on their own
// working links to its pool.
func (t *stratumLink) keeps(l *link, a *attached) bool {
	c := a.cur
	return t.control && c != nil && c.solo && c.pool == l.pool && !c.retiring && !c.broken
}

// job builds the miner-facing job and indexes it in the ring under a local
// short id, so a share finds the pool's job id and the extranonce layout
// it was built with.
func (t *stratumLink) job(s *Slot, l *link, n *codec.Notify, at time.Time) *msg.Job {
	if l.broken {
		return nil
	}
	m := t.emap
	short := t.nextShort
	t.nextShort++
	// Solo links build the clean line only for the miner that joins (withCleanLine).
	j := minerJob(l.gen, short, n, at, m.suffix, !l.solo)
	if !m.noHash && (!l.solo || s.env.Chain.HasSubmitHooks()) {
		if hj, err := codec.NewHashJob(n, m.suffix); err == nil {
			j.Hash = hj
		}
	}
	t.ring[int(short)%len(t.ring)] = jobRec{job: j, poolID: codec.AppendJSONString(nil, n.JobID), m: m}
	return j
}

func (t *stratumLink) submit(s *Slot, l *link, m *wire.Submit) {
	p := &m.Pending
	rec := &t.ring[int(m.Share.JobID)%len(t.ring)]
	if rec.job == nil || rec.job.ShortID != m.Share.JobID {
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "job no longer known to the pool link", true)
		return
	}
	if l.broken {
		// The pool's new extranonce2 size no longer fits this job's layout.
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "the pool changed the extranonce; job is stale", true)
		return
	}
	t.nextReq++
	sh := &m.Share
	t.out = appendSubmit(t.out, t.nextReq, t.user, rec, sh)
	t.reqs[t.nextReq] = *p
	s.env.Stats.SharesSent.Add(1)
	switch {
	case l.solo || s.env.FlushInterval <= 0:
		t.flush(l) // one miner's shares are rare: no window
	case !t.flushArmed:
		t.flushArmed = true
		s.after(s.env.FlushInterval, &linkEvent{gen: l.gen, ev: stratumFlush{}})
	}
}

// appendSubmit appends the mining.submit line of share sh on job rec.
func appendSubmit(dst []byte, id uint64, user []byte, rec *jobRec, sh *codec.Share) []byte {
	dst = codec.AppendSubmitHead(dst, id, user, rec.poolID)
	dst = rec.m.appendEN2(dst, sh.SessionID, sh.ExtraNonce2)
	return codec.AppendSubmitTail(dst, sh.NTime, sh.Nonce, sh.VersionBits, sh.HasVersion)
}

func (t *stratumLink) flush(l *link) {
	if len(t.out) == 0 {
		return
	}
	l.send(t.out)
	t.out = t.out[:0]
	t.sentUpTo = t.nextReq
}

// dropUnsent answers the shares still waiting for the flush window as
// stale, without sending them: after the pool changed the extranonce in a
// way this link cannot follow, it would refuse them anyway, at the cost of
// uplink and a reject on the pool's books.
func (t *stratumLink) dropUnsent(s *Slot, text string) {
	for id := t.sentUpTo + 1; id <= t.nextReq; id++ {
		if p, ok := t.reqs[id]; ok {
			answerPending(s.env.Stats, &p, codec.StatusJobNotFoundOrStale, text, true)
			delete(t.reqs, id)
		}
	}
	t.out = t.out[:0]
}

func (t *stratumLink) pending() int { return len(t.reqs) }

func (t *stratumLink) failAll(s *Slot, text string) {
	for id, p := range t.reqs {
		answerPending(s.env.Stats, &p, codec.StatusJobNotFoundOrStale, text, true)
		delete(t.reqs, id)
	}
	t.out = t.out[:0]
}

func (t *stratumLink) handle(s *Slot, l *link, ev any) {
	switch e := ev.(type) {
	case stratumFlush:
		t.flushArmed = false
		t.flush(l)
	case stratumVerdict:
		p, ok := t.reqs[e.id]
		if !ok {
			return // not a submit of ours
		}
		delete(t.reqs, e.id)
		answerPending(s.env.Stats, &p, e.status, e.text, false)
		if l.retiring {
			s.checkRetire(l, false)
		}
	case stratumExtranonce:
		if !l.retiring {
			t.setExtranonce(s, l, e.en1, e.size)
		}
	}
}

// setExtranonce applies a pool's mining.set_extranonce: later jobs use the
// new extranonce1. An extranonce2 too small for the link's layout needs a
// new connection (aggregated links then fail over if the pool keeps it
// small); solo links in the direct layout reconnect too, because the
// miner's own extranonce would change.
func (t *stratumLink) setExtranonce(s *Slot, l *link, en1 string, size int) {
	t.EN1, t.EN2Size = en1, size
	switch {
	case l.solo:
		if t.emap.withSID && size >= sharedEN2 {
			t.emap = sharedMap(en1, size)
			return
		}
		l.broken = true
		t.dropUnsent(s, "the pool changed the extranonce; job is stale")
		s.reconnect(l, "the pool changed the extranonce of a per-miner link")
	case t.control:
		t.emap = controlMap(en1, size)
	default:
		if m := sharedMap(en1, size); m != nil {
			t.emap = m
			return
		}
		l.broken = true
		t.dropUnsent(s, "the pool changed the extranonce; job is stale")
		s.log().WithFields(map[string]any{"pool": l.name, "en2_size": size}).Warn("pool set an extranonce2 smaller than 8 bytes; reconnecting the link")
		s.reconnect(l, fmt.Sprintf("the pool set extranonce2 size %d", size))
	}
}

func (t *stratumLink) reconnect(s *Slot, l *link) bool {
	if !l.solo {
		return false
	}
	if a := s.attached[l.sid]; a != nil && a.cur == l && a.want == 0 {
		s.queueMinerDial(l.sid, a)
	}
	return true
}

func (t *stratumLink) welcome(_ *link, at *wire.Attached) {
	if t.emap != nil && !t.emap.withSID {
		at.EN1, at.EN2Size = t.emap.minerEN1, t.emap.minerEN2
	}
}

func (t *stratumLink) describe(f map[string]any) { f["en1"], f["en2_size"] = t.EN1, t.EN2Size }

func (*stratumLink) stop(*Slot) {}
