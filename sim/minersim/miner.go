package minersim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/btcagent/btcagent/codec"
)

type reqKind uint8

const (
	reqConfigure reqKind = iota + 1
	reqSubscribe
	reqAuthorize
	reqSubmit
	reqRaw
)

// pendingReq is a request waiting for its reply. Replies are matched by id
// only: peers may answer out of order.
type pendingReq struct {
	id    uint64
	sent  time.Duration // since Start
	nonce uint32
	kind  reqKind
	job   string
}

// maxPending bounds the requests a miner remembers; beyond it the oldest is
// forgotten (it stays counted as unanswered).
const maxPending = 256

// minerJob is the job a miner works on, with the difficulty that was in force
// when it arrived (difficulty is bound to jobs, like real firmware).
type minerJob struct {
	id      string
	version uint32
	ntime   uint32
	diff    float64
	target  codec.Target   // hash mode
	hj      *codec.HashJob // hash mode
}

// hashWork is a hash-mode miner's position in its nonce space. It is touched
// by one hashing goroutine at a time (a miner is queued at most once) and
// always under the miner's mutex.
type hashWork struct {
	builtGen uint64 // workGen the header was built for
	header   [80]byte
	nonce    uint64 // next nonce to try; 1<<32 means exhausted
	en2      uint64
	roll     uint64
	bits     uint32
}

type dropReason uint8

const (
	dropError     dropReason = iota // connection lost or protocol failure
	dropReconnect                   // client.reconnect
	dropAuth                        // authorize refused
	dropStop                        // Sim.Stop
)

// miner is one simulated device. Everything below mu is guarded by it.
type miner struct {
	s    *Sim
	idx  int32
	name string

	mu      sync.Mutex
	link    *link
	linkGen uint32
	nextID  uint64
	pending []pendingReq
	rawIDs  []string // non-numeric ids of SubmitRaw requests

	subscribed, authorized bool
	en1                    []byte
	en2Size                int
	rollGranted            bool
	mask                   uint32
	nextDiff               float64 // last set_difficulty; applies from the next notify
	job                    minerJob
	hasJob                 bool
	workGen                uint64 // bumped whenever the hash-mode header must be rebuilt
	jobsSeen               int64

	sent, accepted int64
	rejected       map[int]int64
	shareEpoch     uint32
	shareArmed     bool
	hw             *hashWork
	queued         bool // hash mode: in the work queue or held by a hashing goroutine

	failures      int
	everConnected bool
	reconnectWait time.Duration
	reconnects    int64
	disconnects   int64
	rawReplies    int64
	lastRaw       string
	lastErr       string
}

// MinerView is a copy of one miner's state, for tests.
type MinerView struct {
	Index           int
	Worker          string
	Connected       bool
	Subscribed      bool
	Authorized      bool
	ExtraNonce1     string
	ExtraNonce2Size int
	// Difficulty is that of the job being worked on; PendingDifficulty is the
	// last mining.set_difficulty, which applies from the next notify.
	Difficulty        float64
	PendingDifficulty float64
	JobID             string
	JobsSeen          int64
	VersionRolling    bool   // version rolling granted
	VersionMask       uint32 // mask in use (granted mask or the last set_version_mask)
	SharesSent        int64
	SharesAccepted    int64
	SharesRejected    map[int]int64
	Pending           int // requests without a reply on the current connection
	Reconnects        int64
	Disconnects       int64
	RawReplies        int64  // replies to SubmitRaw lines and replies with unknown ids
	LastRawReply      string // the last such reply line
	LastError         string
}

func (m *miner) view() MinerView {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := MinerView{
		Index:             int(m.idx),
		Worker:            m.name,
		Connected:         m.link != nil && m.link.counted,
		Subscribed:        m.subscribed,
		Authorized:        m.authorized,
		ExtraNonce1:       fmt.Sprintf("%x", m.en1),
		ExtraNonce2Size:   m.en2Size,
		PendingDifficulty: m.nextDiff,
		JobsSeen:          m.jobsSeen,
		VersionRolling:    m.rollGranted,
		VersionMask:       m.mask,
		SharesSent:        m.sent,
		SharesAccepted:    m.accepted,
		SharesRejected:    make(map[int]int64, len(m.rejected)),
		Pending:           len(m.pending),
		Reconnects:        m.reconnects,
		Disconnects:       m.disconnects,
		RawReplies:        m.rawReplies,
		LastRawReply:      m.lastRaw,
		LastError:         m.lastErr,
	}
	if m.hasJob {
		v.Difficulty = m.job.diff
		v.JobID = m.job.id
	}
	for k, n := range m.rejected {
		v.SharesRejected[k] = n
	}
	return v
}

// lineOutcome collects what handling a batch of lines produced, so that writes
// and callbacks happen after the miner's lock is released.
type lineOutcome struct {
	out     []byte
	results []ShareResult
	drop    error
	why     dropReason
}

var errReconnectRequested = errors.New("client.reconnect received")

// arrival is when a read's bytes came: now is when the simulator read them;
// kernel, when the transport knows it, is when they reached the socket
// (unix nanoseconds, 0 unknown). They differ by however long the reader
// waited for a core, which during a broadcast is the agent's writers'.
type arrival struct {
	now    time.Time
	kernel int64
}

// onData handles bytes read from l.
func (m *miner) onData(l *link, data []byte, at arrival) {
	var o lineOutcome
	m.mu.Lock()
	if m.link != l {
		m.mu.Unlock()
		return
	}
	err := l.split.Feed(data, func(c codec.Chunk) error {
		return m.handleLineLocked(c.Line, at, &o)
	})
	if err != nil && o.drop == nil {
		// Only the splitter fails on its own: a line over the cap.
		m.s.protocolErrors.Add(1)
		o.drop, o.why = fmt.Errorf("reading from peer: %w", err), dropError
	}
	if o.drop != nil {
		m.dropLocked(l, o.why, o.drop)
	}
	m.mu.Unlock()
	if o.drop == nil && len(o.out) > 0 {
		if err := l.write(o.out); err != nil {
			m.writeFailed(l, err)
		}
	}
	if cb := m.s.cfg.OnShare; cb != nil {
		for _, r := range o.results {
			cb(r)
		}
	}
	m.s.changes.notify()
}

// onLinkClosed is the transport telling that l ended.
func (m *miner) onLinkClosed(l *link, err error) {
	m.mu.Lock()
	l.dead = true
	if m.link == l {
		if err == nil {
			err = errors.New("connection closed by peer")
		}
		m.dropLocked(l, dropError, err)
	}
	m.mu.Unlock()
	m.s.changes.notify()
}

func (m *miner) writeFailed(l *link, err error) {
	m.mu.Lock()
	m.dropLocked(l, dropError, err)
	m.mu.Unlock()
	m.s.changes.notify()
}

// dropLocked ends l (if it is still the current link), updates the gauges and
// schedules the reconnect.
func (m *miner) dropLocked(l *link, why dropReason, cause error) {
	if m.link != l {
		return
	}
	s := m.s
	m.link = nil
	if l.counted {
		s.connected.Add(-1)
	}
	if m.subscribed {
		s.subscribed.Add(-1)
	}
	if m.authorized {
		s.authorized.Add(-1)
	}
	m.subscribed, m.authorized, m.hasJob = false, false, false
	m.shareEpoch++
	m.shareArmed = false
	m.workGen++
	// Replies to these can never come: the ids belong to the old connection.
	m.pending = m.pending[:0]
	m.rawIDs = nil
	l.close()

	var delay time.Duration
	switch why {
	case dropStop:
		return
	case dropReconnect:
		// Real firmware reconnects at once; a little spread keeps a farm-wide
		// client.reconnect from arriving as one SYN burst.
		delay = m.reconnectWait + rand.N(s.cfg.ReconnectMin)
	case dropAuth:
		s.authFailures.Add(1)
		m.noteErrLocked(cause)
		m.failures++
		delay = m.backoffLocked()
	default:
		s.disconnects.Add(1)
		m.disconnects++
		m.noteErrLocked(cause)
		m.failures++
		delay = m.backoffLocked()
	}
	if s.stopping.Load() {
		return
	}
	s.sched.after(delay, event{miner: m.idx, kind: evConnect})
}

// backoffLocked is an exponential backoff with jitter, so that a farm cut off
// together does not come back together.
func (m *miner) backoffLocked() time.Duration {
	c := m.s.cfg
	d := c.ReconnectMin << min(max(m.failures-1, 0), 20)
	d = min(d, c.ReconnectMax)
	return d/2 + rand.N(d/2+1)
}

func (m *miner) noteErrLocked(err error) {
	if err == nil {
		return
	}
	m.lastErr = err.Error()
	m.s.noteError(m, err)
}

func (m *miner) newIDLocked() uint64 {
	m.nextID++
	return m.nextID
}

func (m *miner) addPendingLocked(p pendingReq) {
	if len(m.pending) == maxPending {
		copy(m.pending, m.pending[1:])
		m.pending = m.pending[:maxPending-1]
	}
	m.pending = append(m.pending, p)
}

func (m *miner) takePendingLocked(id uint64) (pendingReq, bool) {
	for i := range m.pending {
		if m.pending[i].id == id {
			p := m.pending[i]
			m.pending = append(m.pending[:i], m.pending[i+1:]...)
			return p, true
		}
	}
	return pendingReq{}, false
}

// requestLocked appends a handshake request to out and remembers it.
func (m *miner) requestLocked(out []byte, kind reqKind, method, params string) []byte {
	id := m.newIDLocked()
	m.addPendingLocked(pendingReq{id: id, kind: kind, sent: m.s.sched.now()})
	return appendCall(out, id, method, params)
}

// firstRequestLocked starts the handshake on a fresh link. mining.configure
// and mining.subscribe go out together: some agents never answer a configure
// they do not like, and a miner must not hang on it. The configure reply may
// then come before or after the subscribe reply; both orders work because
// replies are matched by id.
func (m *miner) firstRequestLocked(out []byte) []byte {
	s := m.s
	if s.cfg.VersionRolling {
		out = m.requestLocked(out, reqConfigure, codec.MethodConfigure, s.configureParams)
	}
	return m.requestLocked(out, reqSubscribe, codec.MethodSubscribe, s.subscribeParams)
}

// handleLineLocked processes one line from the peer. It returns an error only
// to stop processing the rest of the read (the link is being dropped).
func (m *miner) handleLineLocked(line []byte, at arrival, o *lineOutcome) error {
	s := m.s
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	var r codec.Request
	if err := codec.ScanRequest(line, &r); err != nil {
		// One bad line does not make the stream unusable; firmware skips it.
		s.protocolErrors.Add(1)
		m.noteErrLocked(fmt.Errorf("unparsable line from peer: %w", err))
		return nil
	}
	if r.IsResponse() {
		return m.handleReplyLocked(&r, line, at.now, o)
	}
	switch string(r.Method) {
	case codec.MethodNotify:
		m.handleNotifyLocked(&r, at)
	case codec.MethodSetDifficulty:
		d, err := numberParam(r.Param(0))
		if err != nil || !(d > 0) {
			s.protocolErrors.Add(1)
			m.noteErrLocked(fmt.Errorf("mining.set_difficulty %s: bad difficulty", r.Param(0).Raw))
			return nil
		}
		m.nextDiff = d
		s.setDiffs.Add(1)
	case codec.MethodSetVersionMask:
		mask, err := hex32Param(r.Param(0))
		if err != nil {
			s.protocolErrors.Add(1)
			m.noteErrLocked(fmt.Errorf("mining.set_version_mask: %w", err))
			return nil
		}
		if s.cfg.VersionRolling {
			// The device can only roll the bits it asked for.
			m.mask = mask & s.cfg.VersionMask
			m.rollGranted = m.mask != 0
			m.workGen++
		}
	case codec.MethodSetExtranonce:
		en1Hex, err1 := r.Param(0).String()
		size, err2 := numberParam(r.Param(1))
		var en1 []byte
		err := errors.Join(err1, err2)
		if err == nil {
			en1, err = parseExtranonce(en1Hex, int(size))
		}
		if err != nil {
			s.protocolErrors.Add(1)
			m.noteErrLocked(fmt.Errorf("mining.set_extranonce: %w", err))
			return nil
		}
		m.en1, m.en2Size = en1, int(size)
		m.workGen++
	case codec.MethodReconnect:
		s.reconnectRequests.Add(1)
		m.reconnectWait = 0
		if w, err := numberParam(r.Param(2)); err == nil && w > 0 {
			m.reconnectWait = min(time.Duration(w*float64(time.Second)), time.Minute)
		}
		o.drop, o.why = errReconnectRequested, dropReconnect
		return errReconnectRequested
	case "client.get_version":
		if len(r.ID) > 0 && string(r.ID) != "null" {
			o.out = codec.AppendResult(o.out, r.ID, string(appendJSONString(nil, s.cfg.UserAgent)))
		}
	default:
		// client.show_message and friends: nothing a miner must act on.
	}
	return nil
}

// handleNotifyLocked makes a new job current.
func (m *miner) handleNotifyLocked(r *codec.Request, at arrival) {
	s := m.s
	// Counted last, so a snapshot that shows the notify shows its fan-out
	// sample too.
	defer s.notifies.Add(1)
	idv := r.Param(0)
	version, ok1 := codec.ParseHex32(r.Param(5).Str)
	ntime, ok2 := codec.ParseHex32(r.Param(7).Str)
	if r.NParams < 9 || idv.Kind != codec.KindString || len(idv.Str) == 0 || !ok1 || !ok2 {
		s.protocolErrors.Add(1)
		m.noteErrLocked(fmt.Errorf("mining.notify with bad params"))
		return
	}
	idBytes := idv.Str
	if bytes.IndexByte(idv.Raw, '\\') >= 0 {
		dec, err := idv.String()
		if err != nil {
			s.protocolErrors.Add(1)
			return
		}
		idBytes = []byte(dec)
	}
	l := m.link
	js := s.jobs.seen(idBytes, r.Param(2).Str, at, l.gotJob, s.cfg.JobTimestamp)
	jobID := js.id
	l.gotJob = true
	if js.stamped {
		s.fanout.record(js.lat)
		if js.kernelOK {
			s.fanoutKernel.record(js.kernelLat)
		}
	}
	m.jobsSeen++
	diff := m.nextDiff
	if diff == 0 {
		diff = 1 // the Stratum default before any set_difficulty
	}
	job := minerJob{id: jobID, version: version, ntime: ntime, diff: diff}
	if s.cfg.Hash {
		n, err := codec.ParseNotify(r)
		if err == nil {
			job.hj, err = codec.NewHashJob(n, "")
		}
		if err != nil {
			s.protocolErrors.Add(1)
			m.noteErrLocked(fmt.Errorf("mining.notify %s: %w", jobID, err))
			return
		}
		job.target = codec.TargetFromDifficulty(diff)
	}
	m.job, m.hasJob = job, true
	m.workGen++
	m.kickLocked()
}

// handleReplyLocked matches a reply to its request by id.
func (m *miner) handleReplyLocked(r *codec.Request, line []byte, now time.Time, o *lineOutcome) error {
	s := m.s
	var p pendingReq
	found := false
	if id, ok := parseUintID(r.ID); ok {
		p, found = m.takePendingLocked(id)
	} else {
		for i, raw := range m.rawIDs {
			if raw == string(r.ID) {
				m.rawIDs = append(m.rawIDs[:i], m.rawIDs[i+1:]...)
				p, found = pendingReq{kind: reqRaw}, true
				break
			}
		}
	}
	if !found || p.kind == reqRaw {
		m.rawReplies++
		m.lastRaw = string(line)
		return nil
	}
	switch p.kind {
	case reqConfigure:
		granted, mask := false, uint32(0)
		if r.Result.Kind == codec.KindObject {
			var err error
			if granted, mask, err = parseConfigureResult(r.Result.Raw); err != nil {
				s.protocolErrors.Add(1)
				m.noteErrLocked(err)
			}
		}
		// A miner whose configure is refused still mines, without rolling.
		m.mask = mask & s.cfg.VersionMask
		m.rollGranted = granted && m.mask != 0
		m.workGen++
	case reqSubscribe:
		if r.Result.Kind != codec.KindArray {
			o.drop, o.why = fmt.Errorf("subscribe refused: %s", r.Error.Raw), dropError
			s.protocolErrors.Add(1)
			return o.drop
		}
		en1, size, err := parseSubscribeResult(r.Result.Raw)
		if err != nil {
			o.drop, o.why = err, dropError
			s.protocolErrors.Add(1)
			return err
		}
		m.en1, m.en2Size = en1, size
		if !m.subscribed {
			m.subscribed = true
			s.subscribed.Add(1)
		}
		o.out = m.requestLocked(o.out, reqAuthorize, codec.MethodAuthorize, jsonArray(m.name, s.cfg.Password))
	case reqAuthorize:
		if !isTrue(r.Result) {
			o.drop, o.why = fmt.Errorf("authorize %s refused: %s", m.name, r.Error.Raw), dropAuth
			return o.drop
		}
		if !m.authorized {
			m.authorized = true
			s.authorized.Add(1)
		}
		m.failures = 0
		m.kickLocked()
	case reqSubmit:
		lat := s.sched.now() - p.sent
		s.submitLat.record(lat)
		res := ShareResult{Miner: int(m.idx), ID: p.id, JobID: p.job, Nonce: p.nonce, Latency: lat}
		if isTrue(r.Result) {
			res.Accepted = true
			m.accepted++
			s.accepted.Add(1)
		} else {
			res.Code = 0
			if r.Error.Kind != codec.KindNull && r.Error.Kind != codec.KindInvalid {
				res.Code = errorCode(r.Error)
			}
			if m.rejected == nil {
				m.rejected = make(map[int]int64)
			}
			m.rejected[res.Code]++
			s.addReject(res.Code)
		}
		if s.cfg.OnShare != nil {
			o.results = append(o.results, res)
		}
	}
	return nil
}

// cappedLocked reports whether the miner reached MaxSharesPerMiner.
func (m *miner) cappedLocked() bool {
	max := m.s.cfg.MaxSharesPerMiner
	return max > 0 && m.sent >= int64(max)
}

func (m *miner) readyLocked() bool {
	return m.link != nil && m.authorized && m.hasJob && !m.cappedLocked() && !m.s.stopping.Load()
}

// kickLocked starts work once the miner is authorized and has a job: a share
// timer in fast mode, a place in the hashing queue in hash mode.
func (m *miner) kickLocked() {
	if !m.readyLocked() {
		return
	}
	s := m.s
	if s.cfg.Hash {
		if !m.queued {
			m.queued = true
			s.hashq <- m // capacity Miners: cannot block, a miner is queued at most once
		}
		return
	}
	if !m.shareArmed {
		m.shareArmed = true
		// Spread the first share over one interval so a farm that connected
		// together does not submit together.
		s.sched.after(rand.N(s.cfg.ShareInterval)+1, event{miner: m.idx, kind: evShare, epoch: m.shareEpoch})
	}
}

// fastShareLocked builds one random share on the current job into dst.
func (m *miner) fastShareLocked(dst []byte) []byte {
	var en2 [maxEN2Size]byte
	for i := 0; i < m.en2Size; i += 8 {
		v := rand.Uint64()
		for j := 0; j < 8 && i+j < m.en2Size; j++ {
			en2[i+j] = byte(v >> (8 * j))
		}
	}
	p := submitParams{
		worker: m.name,
		job:    m.job.id,
		en2:    en2[:m.en2Size],
		ntime:  m.job.ntime,
		nonce:  rand.Uint32(),
	}
	if m.rollGranted {
		p.bits = rand.Uint32() & m.mask
		p.withBits = true
	}
	return m.submitLocked(dst, &p)
}

// submitLocked assigns an id, remembers the submit and appends its line.
func (m *miner) submitLocked(dst []byte, p *submitParams) []byte {
	p.id = m.newIDLocked()
	m.addPendingLocked(pendingReq{id: p.id, kind: reqSubmit, sent: m.s.sched.now(), nonce: p.nonce, job: p.job})
	m.sent++
	m.s.sent.Add(1)
	return appendSubmit(dst, p)
}

// fireShare is the scheduler's fast-mode event: send one share and re-arm.
func (s *Sim) fireShare(ev event) {
	m := s.miners[ev.miner]
	m.mu.Lock()
	if ev.epoch != m.shareEpoch || !m.shareArmed {
		m.mu.Unlock()
		return
	}
	m.shareArmed = false
	if !m.readyLocked() {
		m.mu.Unlock()
		return
	}
	s.schedBuf = m.fastShareLocked(s.schedBuf[:0])
	l := m.link
	if !m.cappedLocked() {
		m.shareArmed = true
		s.sched.after(s.nextInterval(), event{miner: m.idx, kind: evShare, epoch: m.shareEpoch})
	}
	m.mu.Unlock()
	if err := l.write(s.schedBuf); err != nil {
		m.writeFailed(l, err)
	}
	s.changes.notify()
}

// nextInterval is ShareInterval ± Jitter.
func (s *Sim) nextInterval() time.Duration {
	iv := float64(s.cfg.ShareInterval)
	iv *= 1 + s.cfg.Jitter*(2*rand.Float64()-1)
	return max(time.Duration(iv), time.Microsecond)
}

// rawRequestLocked registers the id of a SubmitRaw line so its reply is kept
// apart from share verdicts.
func (m *miner) rawRequestLocked(line []byte) {
	var r codec.Request
	if codec.ScanRequest(line, &r) != nil || r.IsResponse() || len(r.ID) == 0 || string(r.ID) == "null" {
		return
	}
	if id, ok := parseUintID(r.ID); ok {
		m.addPendingLocked(pendingReq{id: id, kind: reqRaw, sent: m.s.sched.now()})
		return
	}
	if len(m.rawIDs) < 16 {
		m.rawIDs = append(m.rawIDs, string(r.ID))
	}
}

// en2Bytes writes counter v big-endian into the last bytes of an EN2 of size n.
func en2Bytes(dst []byte, v uint64, n int) []byte {
	dst = dst[:n]
	clear(dst)
	for i := n - 1; i >= 0 && v != 0; i-- {
		dst[i] = byte(v)
		v >>= 8
	}
	return dst
}
