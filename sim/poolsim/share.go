package poolsim

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// worker is one live worker: a registered agent session or an authorized
// plain miner. Guarded by Pool.mu.
type worker struct {
	name    string
	sid     uint16
	agent   bool
	conn    *conn
	rec     *workerRecord
	diff    float64    // difficulty of the newest job
	steps   []diffStep // difficulty per job range, oldest first
	pending float64    // forced by SetWorkerDiff, sent before the next job
	vdStart time.Time  // vardiff window
	vdSum   float64    // sum of the difficulties of accepted shares in the window
	vdN     int
}

// diffStep binds a difficulty to the jobs from seq `from` on: a SET_DIFF
// sent before job J applies to shares on J and later, never earlier ones.
type diffStep struct {
	from uint64
	diff float64
	tgt  codec.Target
}

// workerRecord is the per-name statistics entry. It outlives sessions, so a
// worker that reconnects (or moves to another agent link) keeps its counts.
type workerRecord struct {
	stats    WorkerStats
	sessions map[*worker]struct{}
}

func (w *worker) stepFor(seq uint64) *diffStep {
	for i := len(w.steps) - 1; i > 0; i-- {
		if w.steps[i].from <= seq {
			return &w.steps[i]
		}
	}
	return &w.steps[0]
}

// newWorkerLocked starts a session under full name name; part is the
// worker part after the sub-account.
func (p *Pool) newWorkerLocked(c *conn, name, part string, sid uint16, agent bool, ua string) *worker {
	rec := p.records[name]
	if rec == nil {
		rec = &workerRecord{
			stats:    WorkerStats{Name: name, SubAccount: c.subAccount, Worker: part, Rejected: make(map[codec.Status]uint64)},
			sessions: make(map[*worker]struct{}),
		}
		p.records[name] = rec
	}
	now := p.clock()
	w := &worker{name: name, sid: sid, agent: agent, conn: c, rec: rec, diff: p.startDiff, vdStart: now}
	// From job 0 on: shares on jobs sent before the registration are judged
	// at the start difficulty too, as sserver does (docs/PROTOCOL.md §6.2).
	w.steps = []diffStep{{from: 0, diff: p.startDiff, tgt: codec.TargetFromDifficulty(p.startDiff)}}
	rec.sessions[w] = struct{}{}
	rec.stats.Conn = c.id
	rec.stats.Agent = agent
	rec.stats.SessionID = sid
	rec.stats.UserAgent = ua
	rec.stats.Difficulty = w.diff
	rec.stats.Registered = now
	p.live++
	if agent {
		p.eventLocked(c.id, "register", fmt.Sprintf("sid %d %s", sid, name))
	}
	return w
}

func (p *Pool) retireWorkerLocked(w *worker) {
	if _, ok := w.rec.sessions[w]; !ok {
		return
	}
	delete(w.rec.sessions, w)
	p.live--
}

// applyDiffLocked makes nd the worker's difficulty from job seq on.
func (p *Pool) applyDiffLocked(w *worker, seq uint64, nd float64) {
	w.diff = nd
	w.steps = append(w.steps, diffStep{from: seq, diff: nd, tgt: codec.TargetFromDifficulty(nd)})
	// Steps whose successor already covers the oldest live job can go.
	if seq >= LiveJobs {
		oldest := seq - LiveJobs + 1
		for len(w.steps) > 1 && w.steps[1].from <= oldest {
			w.steps = w.steps[1:]
		}
	}
	w.rec.stats.Difficulty = nd
}

// SetWorkerDiff forces a difficulty (rounded up to a power of two) for the
// worker with this full name ("<user>.<worker>" for agent workers, the
// authorize name for plain miners). It is sent before the next job: as a
// SET_DIFF frame on agent links, as mining.set_difficulty to plain miners.
func (p *Pool) SetWorkerDiff(fullName string, diff uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if diff == 0 {
		p.eventLocked(0, "set-worker-diff-ignored", fullName+": difficulty 0")
		return
	}
	nd := math.Ldexp(1, min(bits.Len64(diff-1), 63))
	rec := p.records[fullName]
	if rec == nil || len(rec.sessions) == 0 {
		p.eventLocked(0, "set-worker-diff-ignored", fullName+": no such live worker")
		return
	}
	for w := range rec.sessions {
		w.pending = nd
	}
	p.eventLocked(0, "set-worker-diff", fmt.Sprintf("%s -> %g", fullName, nd))
	p.signalLocked()
}

// planDiffsLocked decides difficulty changes for job seq and returns, per
// connection, the bytes to send before its notify: SET_DIFF frames grouped
// by exponent (ascending, ids ascending) on agent links (docs/PROTOCOL.md §6.2), a JSON
// set_difficulty to plain miners.
func (p *Pool) planDiffsLocked(seq uint64) map[*conn][]byte {
	now := p.clock()
	vardiff := p.cfg.Vardiff && p.cfg.FixedDiff == 0
	var plans map[*conn][]byte
	for _, c := range p.conns {
		if !c.authorized {
			continue
		}
		if c.sv2 != nil {
			p.sv2PlanLocked(c, seq, now, vardiff)
			continue
		}
		var out []byte
		if c.agent {
			var groups map[uint8][]uint16
			for sid, w := range c.workers {
				nd, ok := p.retargetLocked(w, now, vardiff)
				if !ok {
					continue
				}
				p.applyDiffLocked(w, seq, nd)
				if groups == nil {
					groups = make(map[uint8][]uint16)
				}
				exp := uint8(bits.Len64(uint64(nd)) - 1)
				groups[exp] = append(groups[exp], sid)
			}
			if groups == nil {
				continue
			}
			exps := make([]uint8, 0, len(groups))
			for e := range groups {
				exps = append(exps, e)
			}
			slices.Sort(exps)
			frames, ids := 0, 0
			for _, e := range exps {
				sids := groups[e]
				slices.Sort(sids)
				out = codec.AppendSetDiff(out, e, sids)
				frames += (len(sids) + codec.MaxSetDiffIDs - 1) / codec.MaxSetDiffIDs
				ids += len(sids)
			}
			c.framesOut[codec.CmdMiningSetDiff] += uint64(frames)
			p.tot.setDiffFrames += uint64(frames)
			p.eventLocked(c.id, "set-diff", fmt.Sprintf("%d frames, %d sessions, before job seq %d", frames, ids, seq))
		} else if c.plain != nil {
			nd, ok := p.retargetLocked(c.plain, now, vardiff)
			if !ok {
				continue
			}
			p.applyDiffLocked(c.plain, seq, nd)
			out = codec.AppendSetDifficulty(nil, nd)
			c.linesOut++
		}
		if len(out) > 0 {
			if plans == nil {
				plans = make(map[*conn][]byte)
			}
			plans[c] = out
		}
	}
	return plans
}

// retargetLocked returns the worker's new difficulty, if it changes.
func (p *Pool) retargetLocked(w *worker, now time.Time, vardiff bool) (float64, bool) {
	if w.pending > 0 {
		nd := w.pending
		w.pending = 0
		w.vdStart, w.vdSum, w.vdN = now, 0, 0
		return nd, nd != w.diff
	}
	if !vardiff {
		return 0, false
	}
	nd, evaluated := vardiffNext(w.diff, w.vdN, w.vdSum, now.Sub(w.vdStart), p.cfg.ShareTarget)
	if evaluated {
		w.vdStart, w.vdSum, w.vdN = now, 0, 0
	}
	return nd, nd != w.diff
}

// vardiffNext is the vardiff rule: estimate the worker's rate from the
// difficulty it submitted over the window and pick the power of two nearest
// (in log scale) to one share per target. It waits for enough evidence
// (a full target period, several shares or a long silence) and reports
// whether it evaluated, which restarts the window.
func vardiffNext(cur float64, n int, sum float64, elapsed, target time.Duration) (next float64, evaluated bool) {
	switch {
	case elapsed <= 0:
		return cur, false
	case n >= 32 && elapsed >= time.Second:
		// A flood of shares: react before a full period has passed.
	case elapsed < target:
		return cur, false
	case n == 0 && elapsed < 3*target:
		return cur, false
	case n > 0 && n < 4 && elapsed < 6*target:
		return cur, false
	}
	var ideal float64
	if n == 0 {
		// No share at all: the rate is below one per elapsed period.
		ideal = cur * target.Seconds() / elapsed.Seconds()
	} else {
		ideal = sum / elapsed.Seconds() * target.Seconds()
	}
	if ideal < 1 {
		// Fractional start difficulties (JSONDiff for CPU miners) are left
		// alone: SET_DIFF cannot express them, and going up would starve them.
		if cur <= 1 {
			return cur, true
		}
		return 1, true
	}
	exp := min(math.Round(math.Log2(ideal)), 62)
	return math.Ldexp(1, int(exp)), true
}

// ---- share checks ----

// shareCheck is the result of the checks done under the lock; a share that
// passed them still needs its hash compared (full mode).
type shareCheck struct {
	job     *job
	done    bool
	status  codec.Status
	version uint32
	ntime   uint32
	nonce   uint32
	diff    float64
	tgt     *codec.Target
	en1b    [4]byte // the extranonce1 the share is hashed with
}

func rejected(s codec.Status) shareCheck { return shareCheck{done: true, status: s} }

// precheckLocked applies sserver's checks in order: job known and of the
// current block (21), version bits inside the mask (33), nTime bounds
// (31/32), duplicate (22). Passing shares are entered in the job's
// duplicate set and get the worker's difficulty for that job.
func (p *Pool) precheckLocked(w *worker, j *job, en1 uint32, en1b [4]byte, en2 uint64, ntime, nonce, vbits uint32, hasVer bool, mask uint32) shareCheck {
	if j == nil || j.block != p.block {
		return rejected(codec.StatusJobNotFoundOrStale)
	}
	ver := j.version
	if hasVer {
		v, ok := codec.RolledVersion(j.version, vbits, mask)
		if !ok {
			return rejected(codec.StatusIllegalVersionMask)
		}
		ver = v
	}
	if ntime < j.ntime {
		return rejected(codec.StatusTimeTooOld)
	}
	if uint64(ntime) > uint64(j.ntime)+MaxNTimeAhead {
		return rejected(codec.StatusTimeTooNew)
	}
	key := dupKey{en1: en1, en2: en2, nonce: nonce, ntime: ntime, bits: vbits}
	if _, dup := j.dups[key]; dup {
		return rejected(codec.StatusDuplicateShare)
	}
	j.dups[key] = struct{}{}
	st := w.stepFor(j.seq)
	return shareCheck{job: j, version: ver, ntime: ntime, nonce: nonce, diff: st.diff, tgt: &st.tgt, en1b: en1b}
}

// judgeLocked finishes a share. In full mode the hash is computed with the
// lock released: it is the only expensive step, and only this connection's
// reader goroutine touches its share sequence meanwhile.
func (p *Pool) judgeLocked(c *conn, chk *shareCheck, en2 []byte) codec.Status {
	if chk.done {
		return chk.status
	}
	if !p.full {
		return codec.StatusAccept
	}
	tgt := *chk.tgt // the step may be pruned while unlocked
	p.mu.Unlock()
	h := chk.job.hash.Hash(chk.en1b[:], en2, chk.version, chk.ntime, chk.nonce)
	p.mu.Lock()
	switch {
	case chk.job.netTgt.Met(h):
		return codec.StatusSolved
	case tgt.Met(h):
		return codec.StatusAccept
	}
	return codec.StatusLowDifficulty
}

// recordLocked counts a verdict for a share that reached validation.
func (p *Pool) recordLocked(c *conn, w *worker, chk *shareCheck, status codec.Status) {
	c.validated++
	rec := w.rec
	if status.Accepted() {
		c.accepted++
		p.tot.accepted++
		rec.stats.Accepted++
		w.vdSum += chk.diff
		w.vdN++
		if status == codec.StatusSolved {
			p.tot.solved++
			p.eventLocked(c.id, "block-solved", w.name)
		}
	} else {
		c.rejected[status]++
		p.tot.rejected[status]++
		rec.stats.Rejected[status]++
	}
	rec.stats.LastShare = time.Now()
	rec.stats.LastStatus = status
}

// countShareLocked spends the CloseAfterShares budget.
func (p *Pool) countShareLocked(c *conn) {
	if c.sharesLeft > 0 {
		c.sharesLeft--
		if c.sharesLeft == 0 {
			c.closeNow = true
		}
	}
}

func (p *Pool) dropLocked(c *conn, reason string) {
	c.dropped++
	p.tot.dropped++
	p.eventLocked(c.id, "share-dropped", reason)
}

func (p *Pool) ignoreLocked(c *conn, kind, reason string) {
	c.ignored++
	p.tot.ignored++
	p.eventLocked(c.id, kind, reason)
}

// ---- agent ex-messages ----

// handleFrame processes one ex-message (docs/PROTOCOL.md §5).
func (p *Pool) handleFrame(c *conn, f codec.Frame) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.signalLocked()
	c.framesIn[f.Cmd]++
	c.recent.add(f)
	submit := codec.IsSubmitCmd(f.Cmd)
	if submit {
		p.countShareLocked(c)
	}
	if !c.agent || !c.authorized {
		// sserver's null dispatcher: logged and discarded.
		why := "before authorize"
		if c.authorized {
			why = "on a plain miner connection"
		}
		if submit {
			p.dropLocked(c, codec.CmdName(f.Cmd)+" "+why)
		} else {
			p.ignoreLocked(c, "frame-ignored", codec.CmdName(f.Cmd)+" "+why)
		}
		return
	}
	switch {
	case f.Cmd == codec.CmdRegisterWorker:
		p.registerLocked(c, f)
	case f.Cmd == codec.CmdUnregisterWorker:
		p.unregisterLocked(c, f)
	case submit:
		p.agentShareLocked(c, f)
	default:
		p.ignoreLocked(c, "frame-ignored", "unknown command "+codec.CmdName(f.Cmd))
	}
}

func (p *Pool) registerLocked(c *conn, f codec.Frame) {
	reg, err := codec.DecodeRegisterWorker(f)
	if err != nil {
		p.ignoreLocked(c, "register-ignored", err.Error())
		return
	}
	if _, ok := c.workers[reg.SessionID]; ok {
		// sserver fills its map with emplace: the first registration stays.
		p.ignoreLocked(c, "register-ignored", fmt.Sprintf("session %d already registered", reg.SessionID))
		return
	}
	name := codec.FilterName(reg.Worker)
	if name == "" {
		name = codec.DefaultWorkerName
	}
	// sserver files agent sessions under the link's sub-account, the
	// authorize name up to its first dot.
	c.workers[reg.SessionID] = p.newWorkerLocked(c, c.subAccount+"."+name, name, reg.SessionID, true, codec.FilterName(reg.Agent))
}

func (p *Pool) unregisterLocked(c *conn, f codec.Frame) {
	sid, err := codec.DecodeUnregisterWorker(f)
	if err != nil {
		p.ignoreLocked(c, "unregister-ignored", err.Error())
		return
	}
	w := c.workers[sid]
	if w == nil {
		p.ignoreLocked(c, "unregister-ignored", fmt.Sprintf("session %d not registered", sid))
		return
	}
	delete(c.workers, sid)
	p.retireWorkerLocked(w)
	p.eventLocked(c.id, "unregister", fmt.Sprintf("sid %d %s", sid, w.name))
}

// agentShareLocked validates a binary submit and, with subres on, answers
// with a SUBMIT_RESPONSE carrying the connection's next submit index.
func (p *Pool) agentShareLocked(c *conn, f codec.Frame) {
	s, err := codec.DecodeSubmitShare(f)
	if err != nil {
		p.dropLocked(c, err.Error())
		return
	}
	w := c.workers[s.SessionID]
	if w == nil {
		// Dropped silently and without using an index (docs/PROTOCOL.md §5.3, §9.3).
		p.dropLocked(c, fmt.Sprintf("%s for unknown session %d", codec.CmdName(f.Cmd), s.SessionID))
		return
	}
	// EN2_pool = (sid << 32 | en2) as 8 big-endian bytes, cut to the
	// announced size (docs/PROTOCOL.md §4.1).
	var en2 [8]byte
	binary.BigEndian.PutUint64(en2[:], uint64(s.SessionID)<<32|uint64(s.ExtraNonce2))
	en2b := en2[8-p.cfg.EN2Size:]
	ntime := s.NTime
	j := p.jobByShortIDLocked(s.JobID)
	if ntime == 0 && j != nil {
		ntime = j.ntime // a missing nTime means the job's
	}
	en1, en1b := c.en1For(j)
	chk := p.precheckLocked(w, j, en1, en1b, beUint(en2b), ntime, s.Nonce, s.VersionBits, s.HasVersion, p.cfg.VersionMask)
	idx := c.submitIdx
	c.submitIdx++
	status := p.judgeLocked(c, &chk, en2b)
	p.recordLocked(c, w, &chk, status)
	if c.subres {
		c.framesOut[codec.CmdSubmitResponse]++
		c.send(true, codec.AppendSubmitResponse(nil, idx, status))
	}
}

// beUint reads up to 8 bytes as a big-endian number (the duplicate key).
func beUint(b []byte) uint64 {
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	return v
}

// ---- plain miner submits ----

// plainSubmit validates a JSON mining.submit and answers it.
func (p *Pool) plainSubmit(c *conn, req *codec.Request) {
	p.mu.Lock()
	en2Size := c.en2SizeLocked()
	p.mu.Unlock()
	sub, perr := codec.ParseSubmit(req, en2Size)
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.signalLocked()
	c.linesIn++
	p.countShareLocked(c)
	refuse := func(code codec.Status, text string) {
		c.rejected[code]++
		p.tot.rejected[code]++
		if c.plain != nil {
			c.plain.rec.stats.Rejected[code]++
		}
		c.replyLine(codec.AppendError(nil, req.ID, code, text))
	}
	switch {
	case !c.subscribed:
		refuse(codec.StatusNotSubscribed, codec.StatusNotSubscribed.Text())
		return
	case !c.authorized:
		refuse(codec.StatusUnauthorized, codec.StatusUnauthorized.Text())
		return
	case c.agent:
		refuse(codec.StatusIllegalParams, "agent connections submit shares as ex-messages")
		return
	case perr != nil:
		code := codec.StatusIllegalParams
		var se *codec.SubmitError
		if errors.As(perr, &se) {
			code = se.Code
		}
		refuse(code, perr.Error())
		return
	}
	w := c.plain
	var en2 [8]byte
	if _, err := hex.Decode(en2[:], sub.EN2Hex); err != nil {
		refuse(codec.StatusIllegalParams, "extranonce2 is not hex")
		return
	}
	en2b := en2[:en2Size]
	j := p.jobByIDLocked(sub.JobID)
	en1, en1b := c.en1For(j)
	chk := p.precheckLocked(w, j, en1, en1b, beUint(en2b), sub.NTime, sub.Nonce, sub.VersionBits, sub.HasVersion, c.verMask)
	status := p.judgeLocked(c, &chk, en2b)
	p.recordLocked(c, w, &chk, status)
	if status.Accepted() {
		c.replyLine(codec.AppendTrue(nil, req.ID))
		return
	}
	c.replyLine(codec.AppendError(nil, req.ID, status, status.Text()))
}
