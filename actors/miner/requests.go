package miner

// The miner's requests: subscribe, configure, authorize and the share path
// of mining.submit, each handled by the session that received the line.

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// hooks recycles the submit hook's message. A free list, not a sync.Pool:
// the share path is pinned at zero allocations, and a Pool may drop what
// it is given (it does on purpose under the race detector).
var hooks struct {
	mu   sync.Mutex
	free []*msg.ShareSubmitted
}

func getHook() *msg.ShareSubmitted {
	hooks.mu.Lock()
	defer hooks.mu.Unlock()
	if n := len(hooks.free); n > 0 {
		h := hooks.free[n-1]
		hooks.free = hooks.free[:n-1]
		return h
	}
	return new(msg.ShareSubmitted)
}

func putHook(h *msg.ShareSubmitted) {
	*h = msg.ShareSubmitted{}
	hooks.mu.Lock()
	if len(hooks.free) < 64 {
		hooks.free = append(hooks.free, h)
	}
	hooks.mu.Unlock()
}

// ---- requests ----

func (s *Session) handleLine(line []byte, now time.Time) {
	if s.closing {
		return
	}
	s.lastReq = now.UnixNano()
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return
	}
	if line[0] != '{' {
		// HTTP probes, TLS hellos and port scanners: not Stratum, nothing to answer.
		s.env.Limiter.Warn("not-stratum", logrus.Fields{"remote": s.info.Remote.String()}, "non-Stratum data from a miner connection; closing it")
		s.close("not stratum")
		return
	}
	r := reqPool.Get().(*codec.Request)
	defer reqPool.Put(r)
	if err := codec.ScanRequest(line, r); err != nil {
		s.badLines++
		s.env.Limiter.Warn("bad-json", logrus.Fields{"remote": s.info.Remote.String(), "error": err.Error()}, "malformed JSON from a miner")
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, nil, codec.StatusIllegalParams, "malformed JSON: "+err.Error())
		})
		if s.badLines >= 10 {
			s.close("too many malformed lines")
		}
		return
	}
	if r.IsResponse() {
		return // a reply to something we sent (e.g. client.get_version); nothing to do
	}
	switch string(r.Method) {
	case codec.MethodSubmit:
		s.submit(r)
	case codec.MethodSubscribe:
		s.subscribe(r)
	case codec.MethodAuthorize:
		s.authorize(r)
	case codec.MethodConfigure:
		s.configure(r)
	case codec.MethodSuggestDifficulty, codec.MethodSuggestTarget:
		// The BTCAgent protocol has no way to pass a per-miner hint upstream
		// (docs/PROTOCOL.md §8.3); say so honestly instead of pretending.
		s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, "false") })
	case codec.MethodExtranonceSub:
		s.extranonceSub = true
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
	case codec.MethodMultiVersion:
		s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, "false") })
	default:
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, r.ID, codec.StatusIllegalParams, "unsupported method "+truncate(string(r.Method), 40))
		})
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (s *Session) subscribe(r *codec.Request) {
	if r.NParams > 0 {
		if ua, err := r.Param(0).String(); err == nil {
			s.info.UserAgent = codec.PrintableUA(ua) // miner-chosen: bounded and printable for the API, logs and plugins
		}
	}
	s.subscribed = true
	s.reply(func(d []byte) []byte { return codec.AppendSubscribeResult(d, r.ID, s.en1s, s.en2Size()) })
}

func (s *Session) en2Size() int {
	if s.en2n > 0 {
		return int(s.en2n)
	}
	return EN2Size
}

// setExtranonce switches the miner to the extranonce a link gives it (""
// means its own: "%08x" of the session id, 4 bytes) and tells a subscribed
// miner with mining.set_extranonce; it applies from the next job, which the
// link sends right after.
func (s *Session) setExtranonce(en1 string, size int) (changed bool) {
	if en1 == "" {
		en1, size = codec.Hex32(uint32(s.sid)), EN2Size
	}
	if en1 == s.en1s && size == s.en2Size() {
		return false
	}
	s.en1s, s.en2n = en1, uint8(size)
	s.en1 = [4]byte{}
	if b, err := codec.DecodeHex(en1); err == nil && len(b) == 4 {
		copy(s.en1[:], b)
	}
	if s.extranonceSub && s.subscribed {
		s.reply(func(d []byte) []byte { return codec.AppendSetExtranonce(d, en1, size) })
	}
	return true
}

func (s *Session) configure(r *codec.Request) {
	var exts []string
	var opts map[string]json.RawMessage
	if r.NParams >= 1 {
		_ = json.Unmarshal(r.Param(0).Raw, &exts)
	}
	if r.NParams >= 2 {
		_ = json.Unmarshal(r.Param(1).Raw, &opts)
	}
	res := make([]byte, 0, 128)
	res = append(res, '{')
	wantVR := false
	for i, e := range exts {
		if i > 0 {
			res = append(res, ',')
		}
		if e == codec.VersionRollingExtension {
			wantVR = true
			mask := uint32(0xffffffff)
			if raw, ok := opts[codec.VersionRollingMaskKey]; ok {
				var hexMask string
				if json.Unmarshal(raw, &hexMask) == nil {
					if v, ok := codec.ParseHex32([]byte(hexMask)); ok {
						mask = v
					}
				}
			}
			s.askMask, s.configured = mask, true
			granted := mask & s.grantable()
			s.sentMask = granted
			res = append(res, `"version-rolling":true,"version-rolling.mask":"`...)
			res = codec.AppendHex32(res, granted)
			res = append(res, '"')
			continue
		}
		res = append(res, '"')
		res = append(res, jsonSafe(e)...)
		res = append(res, `":false`...)
	}
	res = append(res, '}')
	s.reply(func(d []byte) []byte { return codec.AppendResult(d, r.ID, string(res)) })
	if wantVR {
		s.reply(func(d []byte) []byte { return codec.AppendSetVersionMask(d, s.sentMask) })
	}
}

func jsonSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 {
			return -1
		}
		return r
	}, s)
}

// grantable is the pool's mask as best we know it.
func (s *Session) grantable() uint32 {
	if s.poolMask != 0 {
		return s.poolMask
	}
	if s.env.PoolMask != nil {
		if m := s.env.PoolMask(); m != 0 {
			return m
		}
	}
	return DefaultVersionMask
}

func (s *Session) onPoolMask(mask uint32) {
	s.poolMask = mask
	if !s.configured {
		return
	}
	if granted := s.askMask & mask; granted != s.sentMask {
		s.sentMask = granted
		s.reply(func(d []byte) []byte { return codec.AppendSetVersionMask(d, granted) })
	}
}

func (s *Session) authorize(r *codec.Request) {
	user, err := r.Param(0).String()
	if err != nil {
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, r.ID, codec.StatusIllegalParams, "worker name must be a string")
		})
		return
	}
	if s.authorized {
		// One worker per connection: a second authorize is acknowledged and
		// its shares counted under the first name.
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
		return
	}
	if s.multi != nil && s.multi.req != nil {
		s.reply(func(d []byte) []byte {
			return codec.AppendError(d, r.ID, codec.StatusUnauthorized, "an authorize is already in progress")
		})
		return
	}
	var sub string
	if s.env.MultiUser {
		n, ref := s.env.Allow.Admit(user)
		if ref != nil {
			s.refuse(r.ID, user, ref)
			return
		}
		sub = n.SubAccount
	}
	pw, _ := r.Param(1).String()
	a := &msg.MinerAuthorizing{Info: s.info, Password: pw, Scratch: &s.scratch}
	a.Info.User = user
	a.Info.Worker = codec.SplitWorker(user)
	switch s.env.Chain.OnAuthorize(a) {
	case msg.Reject:
		code, text := a.Code, a.Text
		if code == 0 {
			code = codec.StatusUnauthorized
		}
		if text == "" {
			text = code.Text()
		}
		s.reply(func(d []byte) []byte { return codec.AppendError(d, r.ID, code, text) })
		return
	case msg.Drop:
		s.close("refused by plugin")
		return
	}
	_, worker := codec.FitRegister(s.info.UserAgent, a.Info.Worker)
	s.info.User, s.info.Worker = user, worker
	if s.env.MultiUser {
		// Answered when the coordinator admits the sub-account (admitted):
		// only it knows whether the listener's cap leaves room.
		s.multi = &multiAuth{sub: sub, req: append([]byte(nil), r.ID...)}
		s.env.Root.Send(s.env.Coordinator, s.authorizedMsg())
		return
	}
	s.authorized = true
	s.st.SetIdentity(s.info.UserAgent, s.env.PoolUser+"."+worker)
	s.env.Stats.MinersAuth.Add(1)
	s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
	s.env.Root.Send(s.env.Coordinator, s.authorizedMsg())
}

// authorizedMsg asks the coordinator to place this (authorized) miner; the
// user agent is cut to what a REGISTER frame carries.
func (s *Session) authorizedMsg() *wire.MinerAuthorized {
	mask := uint32(0)
	if s.configured {
		mask = s.askMask
	}
	info := s.info
	info.UserAgent, _ = codec.FitRegister(s.info.UserAgent, s.info.Worker)
	m := &wire.MinerAuthorized{Info: info, VersionMask: mask, ExtranonceSub: s.extranonceSub}
	if s.multi != nil {
		m.SubAccount = s.multi.sub
	}
	return m
}

// ---- jobs ----

func (s *Session) onJob(m *wire.JobNotified) {
	j := m.Job
	clean := m.Clean || j.Clean
	if clean {
		s.stale = 0
		for i := range s.jobs {
			if s.jobs[i].job != nil {
				s.stale |= 1 << i
			}
		}
	}
	s.jobPos = (s.jobPos + 1) % jobRing
	s.jobs[s.jobPos] = jobEntry{job: j, diff: s.diff}
	s.stale &^= 1 << s.jobPos
	s.latest = j
	if m.Clean && !j.Clean {
		s.write(j.CleanLine)
	} else {
		s.write(j.Line)
	}
}

// findJob returns the ring entry of a job id and whether a newer block
// has arrived since that job.
func (s *Session) findJob(id []byte) (*jobEntry, bool) {
	for i := 0; i < jobRing; i++ {
		k := (int(s.jobPos) - i + jobRing) % jobRing
		e := &s.jobs[k]
		if e.job != nil && e.job.ID == string(id) {
			return e, s.stale&(1<<k) != 0
		}
	}
	return nil, false
}

// ---- shares ----

func (s *Session) reject(id []byte, code codec.Status, text, reason string) {
	s.st.Rejected.Add(1)
	s.env.Stats.LocalRejected.Add(1)
	s.env.Stats.Reject(reason)
	if text == "" {
		text = code.Text()
	}
	s.reply(func(d []byte) []byte { return codec.AppendError(d, id, code, text) })
}

func (s *Session) submit(r *codec.Request) {
	if !s.subscribed {
		s.reject(r.ID, codec.StatusNotSubscribed, "", "unauthorized")
		return
	}
	if !s.authorized {
		s.reject(r.ID, codec.StatusUnauthorized, "", "unauthorized")
		return
	}
	sub, err := codec.ParseSubmit(r, s.en2Size())
	if err != nil {
		s.reject(r.ID, codec.StatusIllegalParams, err.Error(), "illegal_params")
		return
	}
	e, staleBlock := s.findJob(sub.JobID)
	if e == nil {
		s.reject(r.ID, codec.StatusJobNotFoundOrStale, "", "stale")
		return
	}
	job := e.job
	if job.Fake {
		// Placeholder work during an outage: answered here, never forwarded, counted as unpaid.
		s.env.Stats.FakeAnswered.Add(1)
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, r.ID) })
		return
	}
	if s.upstream == nil {
		s.reject(r.ID, codec.StatusJobNotFoundOrStale, "job belongs to a pool link that is gone", "stale")
		return
	}
	bits := uint32(0)
	if sub.HasVersion {
		bits = sub.VersionBits
	}
	urgent := false
	if s.env.Chain.HasSubmitHooks() {
		h := getHook()
		*h = msg.ShareSubmitted{
			Info: &s.info, Job: job, Difficulty: e.diff, MinerEN1: s.en1,
			ExtraNonce2: sub.ExtraNonce2, NTime: sub.NTime, Nonce: sub.Nonce,
			VersionBits: bits, HasVersion: sub.HasVersion && bits != 0, VersionMask: s.sentMask,
			Latest: job == s.latest, StaleBlock: staleBlock, Scratch: &s.scratch, Now: time.Unix(0, s.lastReq),
		}
		v := s.env.Chain.OnSubmit(h)
		code, text, reconnect := h.Code, h.Text, h.Reconnect
		urgent = h.BlockCandidate
		putHook(h)
		if reconnect {
			defer s.write(codec.AppendReconnect(nil))
		}
		if v != msg.Continue {
			if code == 0 {
				code = codec.StatusRejectNoReason
			}
			s.reject(r.ID, code, text, code.Reason())
			return
		}
		if urgent {
			s.env.Log.WithFields(logrus.Fields{"worker": s.info.Worker, "job": job.ID, "nonce": codec.Hex32(sub.Nonce)}).Warn("block candidate: share meets the network target; sending it to the pool now")
		}
	}
	sh := codec.Share{
		JobID: job.ShortID, SessionID: s.sid, ExtraNonce2: sub.ExtraNonce2,
		Nonce: sub.Nonce, NTime: sub.NTime, VersionBits: bits,
		HasTime: sub.NTime != job.NTime, HasVersion: bits != 0,
	}
	if s.sink != nil && s.sink.Gen() == job.Gen {
		// The hot path: straight into the link's buffer on this goroutine.
		p := wire.Pending{Miner: s, Diff: e.diff, Stats: s.st}
		p.ReqID.Set(r.ID)
		if st := s.sink.Submit(sh, p, urgent); st != 0 {
			s.reject(r.ID, st, "job belongs to a pool link that is gone", st.Reason())
		}
		return
	}
	m := &wire.Submit{Gen: job.Gen, Share: sh, Pending: wire.Pending{Miner: s, Diff: e.diff, Stats: s.st}}
	m.Pending.ReqID.Set(r.ID)
	s.env.Root.Send(s.upstream, m)
}

func (s *Session) answer(reqID []byte, status codec.Status, text string) {
	if status.Accepted() {
		s.reply(func(d []byte) []byte { return codec.AppendTrue(d, reqID) })
		return
	}
	if text == "" {
		text = status.Text()
	}
	s.reply(func(d []byte) []byte { return codec.AppendError(d, reqID, status, text) })
}
