package upstream

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/sirupsen/logrus"
)

// One SV2 extended channel as a link's protocol state: the main link's
// channel (aggregated or control), or a miner's own channel in
// sv2-per-miner mode, whose link shares the main link's connection.
//
// Verdicts: every share waits for the pool's answer, like on stratum links
// and unlike the optimistic agent mode (submit_response_from_server does
// not apply: an SV2 pool always answers). SubmitShares.Error rejects one
// share by sequence number; SubmitShares.Success accepts every share still
// waiting up to its last_sequence_number (pools batch them), so errors,
// which the pool sends before the success that follows them, are applied
// first. A share whose link ends first is answered stale, never true.

// sv2Ring is how many recent jobs a channel takes shares for; a miner's own
// channel keeps fewer (miners keep 8).
const sv2Ring = 16

type sv2Link struct {
	w       *sv2Wire
	l       *link // nil until a miner's channel has its first job
	id      uint32
	group   uint32
	size    int    // extranonce bytes the channel rolls
	emap    *enMap // the layout of the jobs that follow
	diff    float64
	control bool // sv2-per-miner's main channel: carries no shares

	sid  uint16 // a miner's channel: its miner
	want uint64 // a miner's channel: the open the miner waits for

	jobs      sv2Jobs
	next      sv2JobInfo // the job onJob is building (set just before)
	first     sv2JobInfo // a miner's channel: its first job, until replay
	firstN    *codec.Notify
	backlog   []sv2.Message // the main channel: what the handshake read after its opening
	ring      []sv2JobRec
	nextShort uint8
	seq       uint32
	pend      []sv2Pend // shares sent, in sequence order, waiting for a verdict
	en        []byte    // scratch: a share's extranonce
}

// sv2JobInfo is what a share needs of a job besides its layout.
type sv2JobInfo struct {
	id      uint32
	version uint32
	rolling bool
}

type sv2JobRec struct {
	job *msg.Job
	sv2JobInfo
	m *enMap
}

type sv2Pend struct {
	seq uint32
	p   wire.Pending
}

func newSV2Link(w *sv2Wire, id uint32, prefix []byte, size int, group uint32, diff float64) *sv2Link {
	return &sv2Link{w: w, id: id, group: group, size: size, emap: sharedMap(hex.EncodeToString(prefix), size), diff: diff}
}

// ---- jobs: NewExtendedMiningJob + SetNewPrevHash → mining.notify ----

// sv2MaxFuture bounds the future jobs a channel keeps.
const sv2MaxFuture = 8

// sv2Jobs assembles a channel's jobs: a future job waits for the
// SetNewPrevHash that activates it (a new block: clean); an active job
// builds on the current prevhash.
type sv2Jobs struct {
	prev   *sv2.SetNewPrevHash
	future []*sv2.NewExtendedMiningJob
}

// add applies a job message; n is the job miners get, if any.
func (j *sv2Jobs) add(m sv2.Message) (n *codec.Notify, info sv2JobInfo, err error) {
	var job *sv2.NewExtendedMiningJob
	clean := false
	switch m := m.(type) {
	case *sv2.NewExtendedMiningJob:
		if m.MinNTime == nil {
			if len(j.future) == sv2MaxFuture {
				j.future = append(j.future[:0], j.future[1:]...)
			}
			j.future = append(j.future, m)
			return nil, info, nil
		}
		if j.prev == nil {
			return nil, info, fmt.Errorf("sv2: active job %d before any SetNewPrevHash", m.JobID)
		}
		job = m
	case *sv2.SetNewPrevHash:
		j.prev = m
		for i := len(j.future) - 1; i >= 0; i-- {
			if j.future[i].JobID == m.JobID {
				job = j.future[i]
				break
			}
		}
		j.future = j.future[:0] // a new block: older future jobs are for the old one
		if job == nil {
			return nil, info, fmt.Errorf("sv2: SetNewPrevHash for job %d, which is not a future job of the channel", m.JobID)
		}
		clean = true
	default:
		return nil, info, nil
	}
	n, err = sv2.Notify(job, j.prev, strconv.FormatUint(uint64(job.JobID), 10), clean)
	return n, sv2JobInfo{id: job.JobID, version: job.Version, rolling: job.VersionRollingAllowed}, err
}

// jobMsg applies a job message of this channel.
func (t *sv2Link) jobMsg(s *Slot, m sv2.Message, at time.Time) {
	n, info, err := t.jobs.add(m)
	if err != nil {
		s.badJob(t.w.main.name, err)
		return
	}
	if n == nil {
		return
	}
	switch {
	case t.l == nil:
		t.w.serveMiner(s, t, n, info)
	case !t.l.retiring:
		t.next = info
		s.onJob(t.l, n, at)
	}
}

// ---- the linkProto ----

func (t *sv2Link) read(s *Slot, l *link) {
	if l == t.w.main {
		s.sv2Read(l, t.w, t.id, t.group)
	} // a miner's channel: the connection's reader serves it
}

func (t *sv2Link) start(_ *Slot, l *link) {
	t.l = l
	l.diff, l.mask = t.diff, t.w.mask
	n := sv2Ring
	if l.solo {
		n = sv2Ring / 2
	}
	t.ring = make([]sv2JobRec, n)
	t.w.chans[t.id] = t
}

func (t *sv2Link) replay(s *Slot, l *link) {
	if t.firstN != nil {
		t.next = t.first
		s.onJob(l, t.firstN, time.Now())
		t.firstN = nil
		return
	}
	now := time.Now()
	for _, m := range t.backlog {
		t.w.dispatch(s, m, now)
	}
	t.backlog = nil
}

func (t *sv2Link) attach(s *Slot, l *link, sid uint16, a *attached) {
	if t.control {
		t.w.openFor(s, sid, a)
		return
	}
	s.serve(l, sid, a)
}

func (*sv2Link) leave(*Slot, *link, uint16) {}

// keeps: a miner's channel shares the control channel's connection, so it
// goes when the control channel goes, and a new link serves it on a channel
// of its own connection.
func (*sv2Link) keeps(*link, *attached) bool { return false }

func (t *sv2Link) job(s *Slot, l *link, n *codec.Notify, at time.Time) *msg.Job {
	short := t.nextShort
	t.nextShort++
	m := t.emap
	// A miner's channel builds the clean line only for the miner that joins.
	j := minerJob(l.gen, short, n, at, m.suffix, !l.solo)
	if !l.solo || s.env.Chain.HasSubmitHooks() {
		if hj, err := codec.NewHashJob(n, m.suffix); err == nil {
			j.Hash = hj
		}
	}
	t.ring[int(short)%len(t.ring)] = sv2JobRec{job: j, sv2JobInfo: t.next, m: m}
	return j
}

func (t *sv2Link) submit(s *Slot, l *link, m *wire.Submit) {
	p, sh := &m.Pending, &m.Share
	rec := &t.ring[int(sh.JobID)%len(t.ring)]
	if rec.job == nil || rec.job.ShortID != sh.JobID || t.control || t.w.closed {
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "job no longer known to the pool link", true)
		return
	}
	bits := uint32(0)
	if sh.HasVersion {
		bits = sh.VersionBits
	}
	if bits != 0 && !rec.rolling {
		answerPending(s.env.Stats, p, codec.StatusIllegalVersionMask, "the pool does not allow version rolling on this job", true)
		return
	}
	// The rolled extranonce: zeros, the miner's EN1 "0000SSSS", its EN2
	// (rec.m.pad is hex: two digits a byte).
	t.en = t.en[:0]
	for range len(rec.m.pad) / 2 {
		t.en = append(t.en, 0)
	}
	t.en = binary.BigEndian.AppendUint32(t.en, uint32(sh.SessionID))
	t.en = binary.BigEndian.AppendUint32(t.en, sh.ExtraNonce2)
	t.seq++
	share := sv2.SubmitSharesExtended{ChannelID: t.id, SequenceNumber: t.seq, JobID: rec.id,
		Nonce: sh.Nonce, NTime: sh.NTime, Version: rec.version ^ bits, Extranonce: t.en}
	if err := t.w.seal(&share); err != nil {
		answerPending(s.env.Stats, p, codec.StatusJobNotFoundOrStale, "pool link failed before the share was sent", true)
		return
	}
	t.pend = append(t.pend, sv2Pend{seq: t.seq, p: *p})
	s.env.Stats.SharesSent.Add(1)
	t.w.later(s)
}

func (t *sv2Link) flush(*link) { t.w.flush() }

// pending counts the shares waiting for a verdict. The control channel also
// counts the miners' channels still in use: they need its connection.
func (t *sv2Link) pending() int {
	n := len(t.pend)
	if t.control {
		for _, c := range t.w.chans {
			if c != t {
				n += len(c.pend)
				if c.l != nil {
					n += c.l.users
				}
			}
		}
	}
	return n
}

func (t *sv2Link) failAll(s *Slot, text string) {
	for i := range t.pend {
		answerPending(s.env.Stats, &t.pend[i].p, codec.StatusJobNotFoundOrStale, text, true)
	}
	t.pend = nil
}

func (t *sv2Link) handle(s *Slot, _ *link, ev any) {
	switch e := ev.(type) {
	case sv2Flush:
		t.w.armed = false
		t.w.flush()
	case sv2In:
		t.w.dispatch(s, e.m, e.at)
	}
}

func (*sv2Link) reconnect(*Slot, *link) bool { return false }

func (*sv2Link) welcome(*link, *wire.Attached) {}

func (t *sv2Link) describe(f map[string]any) {
	f["channel"], f["extranonce_prefix"], f["extranonce_size"] = t.id, t.emap.suffix[:len(t.emap.suffix)-len(t.emap.pad)], t.size
	f["server_key"] = hex.EncodeToString(t.w.peer[:])
	if t.w.tofu {
		f["authenticated"] = "no (sv2_tofu)"
	} else {
		f["authenticated"] = "authority_pubkey"
	}
}

func (t *sv2Link) stop(s *Slot) {
	w := t.w
	if t.l != w.main {
		// A miner's channel: the pool may stop sending it work.
		if w.chans[t.id] == t && !w.closed {
			w.closeChannel(t.id, "miner left")
		}
		return
	}
	w.closed, w.out = true, nil
	for _, c := range w.chans {
		if c != t && c.l != nil {
			s.post(&linkDown{gen: c.l.gen, err: errWireGone})
		}
	}
}

// ---- messages from the pool ----

// dispatch applies a message from the pool to the channels it names: a
// channel id, or a group id for every channel of the group.
func (w *sv2Wire) dispatch(s *Slot, m sv2.Message, at time.Time) {
	switch m := m.(type) {
	case *sv2.NewExtendedMiningJob:
		w.each(m.ChannelID, func(t *sv2Link) { t.jobMsg(s, m, at) })
	case *sv2.SetNewPrevHash:
		w.each(m.ChannelID, func(t *sv2Link) { t.jobMsg(s, m, at) })
	case *sv2.SetTarget:
		w.each(m.ChannelID, func(t *sv2Link) { t.setTarget(s, m.MaximumTarget) })
	case *sv2.SetExtranoncePrefix:
		if t := w.chans[m.ChannelID]; t != nil && len(m.ExtranoncePrefix) > 0 {
			// Jobs that follow use the new prefix; shares of earlier jobs
			// carry only the rolled part, which does not change.
			t.emap = sharedMap(hex.EncodeToString(m.ExtranoncePrefix), t.size)
		}
	case *sv2.OpenExtendedMiningChannelSuccess:
		w.opened(s, m)
	case *sv2.SubmitSharesSuccess:
		if t := w.chans[m.ChannelID]; t != nil {
			t.accepted(s, m)
		}
	case *sv2.OpenMiningChannelError:
		w.openFailed(s, m)
	case *sv2.SubmitSharesError:
		if t := w.chans[m.ChannelID]; t != nil {
			t.rejected(s, m)
		}
	case *sv2.CloseChannel:
		w.closedByPool(s, m)
	case *sv2.SetGroupChannel:
		for _, id := range m.ChannelIDs {
			if t := w.chans[id]; t != nil {
				t.group = m.GroupChannelID
			}
		}
	}
}

func (w *sv2Wire) each(id uint32, f func(*sv2Link)) {
	if t := w.chans[id]; t != nil {
		f(t)
		return
	}
	for _, t := range w.chans {
		if id != 0 && t.group == id {
			f(t)
		}
	}
}

// setTarget applies SetTarget as the SV1 difficulty for the next job.
func (t *sv2Link) setTarget(s *Slot, target sv2.U256) {
	d := sv2.Difficulty(target)
	if d <= 0 {
		return
	}
	switch {
	case t.l == nil:
		t.diff = d
	case !t.l.retiring:
		s.onDiff(t.l, d, nil)
	}
}

// accepted applies a (batched) SubmitShares.Success.
func (t *sv2Link) accepted(s *Slot, m *sv2.SubmitSharesSuccess) {
	n := uint32(0)
	for len(t.pend) > 0 && int32(t.pend[0].seq-m.LastSequenceNumber) <= 0 {
		answerPending(s.env.Stats, &t.pend[0].p, codec.StatusAccept, "", false)
		t.pend[0] = sv2Pend{}
		t.pend = t.pend[1:]
		n++
	}
	if n != m.NewSubmitsAcceptedCount {
		s.limited("sv2-batch", logrus.Fields{"pool": t.w.main.name, "channel": t.id, "last_sequence_number": m.LastSequenceNumber,
			"pool_count": m.NewSubmitsAcceptedCount, "answered": n}, "SubmitShares.Success counts other shares than the ones waiting up to its sequence number")
	}
	t.drained(s)
}

// rejected applies a SubmitShares.Error.
func (t *sv2Link) rejected(s *Slot, m *sv2.SubmitSharesError) {
	for i := range t.pend {
		if t.pend[i].seq == m.SequenceNumber {
			p := t.pend[i].p
			t.pend = append(t.pend[:i], t.pend[i+1:]...)
			answerPending(s.env.Stats, &p, sv2.StatusOf(m.ErrorCode), m.ErrorCode, false)
			t.drained(s)
			return
		}
	}
}

// drained lets a retiring link close once its verdicts are in.
func (t *sv2Link) drained(s *Slot) {
	if t.l != nil && t.l.retiring {
		s.checkRetire(t.l, false)
	}
	if m := t.w.main; m != t.l && m.retiring {
		s.checkRetire(m, false)
	}
}
