package minersim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// Sim is a running farm. All methods are safe for concurrent use.
type Sim struct {
	cfg    Config
	log    logrus.FieldLogger
	ctx    context.Context
	cancel context.CancelFunc
	start  time.Time
	cpu0   time.Duration

	miners []*miner
	tr     transport
	sched  *scheduler
	dialq  chan *miner
	hashq  chan *miner
	dialer net.Dialer
	wg     sync.WaitGroup

	// schedBuf is owned by the scheduler goroutine (fast-mode share lines).
	schedBuf []byte

	configureParams string
	subscribeParams string

	stopping atomic.Bool
	stopOnce sync.Once
	final    Summary

	changes *changes
	jobs    jobRing
	fanout  histogram
	// fanoutKernel is fanout measured to the kernel's receive time.
	fanoutKernel histogram
	submitLat    histogram

	connected, subscribed, authorized atomic.Int64
	sent, accepted                    atomic.Int64
	reconnects, reconnectRequests     atomic.Int64
	disconnects, connectErrors        atomic.Int64
	authFailures, protocolErrors      atomic.Int64
	notifies, setDiffs, hashes        atomic.Int64

	rejMu   sync.Mutex
	rejects map[int]int64
	lastErr string
}

// Start validates cfg, raises the open-file limit and starts connecting the
// miners in the background. Cancelling ctx stops all activity (no new dials,
// shares or hashing); Stop also closes the connections and returns the final
// summary.
func Start(ctx context.Context, cfg Config) (*Sim, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if soft, err := raiseFileLimit(); err != nil {
		cfg.Logger.WithError(err).Warn("minersim: cannot raise the open-file limit")
	} else if soft > 0 && uint64(cfg.Miners)+64 > soft {
		cfg.Logger.Warnf("minersim: %d miners need more descriptors than the limit of %d; some dials will fail", cfg.Miners, soft)
	}
	s := &Sim{
		cfg:     cfg,
		log:     cfg.Logger,
		start:   time.Now(),
		cpu0:    processCPU(),
		dialq:   make(chan *miner, cfg.Miners),
		changes: newChanges(),
		rejects: make(map[int]int64),
		dialer:  net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1},
	}
	s.sched = newScheduler(s.start)
	s.subscribeParams = jsonArray(cfg.UserAgent)
	s.configureParams = fmt.Sprintf(`[["%s"],{"%s":"%08x","%s":2}]`,
		codec.VersionRollingExtension, codec.VersionRollingMaskKey, cfg.VersionMask, codec.VersionRollingMinBitsKey)
	switch cfg.Transport {
	case TransportNetio:
		t, err := newNetioTransport(cfg.Pollers, cfg.KernelArrival, cfg.Logger)
		if err != nil {
			return nil, err
		}
		s.tr = t
	case TransportNbio:
		t, err := newNbioTransport(cfg.Pollers)
		if err != nil {
			return nil, err
		}
		s.tr = t
	default:
		s.tr = &goroutineTransport{}
	}
	s.miners = make([]*miner, cfg.Miners)
	for i := range s.miners {
		m := &miner{s: s, idx: int32(i), name: WorkerName(cfg.User, cfg.WorkerPrefix, cfg.Miners, i)}
		if cfg.Names != nil {
			m.name = cfg.Names[i]
		}
		if cfg.Hash {
			m.hw = &hashWork{}
		}
		s.miners[i] = m
	}
	s.ctx, s.cancel = context.WithCancel(ctx)

	for range cfg.DialConcurrency {
		s.wg.Add(1)
		go s.dialLoop()
	}
	if cfg.Hash {
		s.hashq = make(chan *miner, cfg.Miners)
		for range cfg.HashThreads {
			g, err := newGrinder()
			if err != nil {
				s.cancel()
				s.wg.Wait()
				s.tr.stop()
				return nil, err
			}
			s.wg.Add(1)
			go s.hashLoop(g)
		}
	}
	if cfg.ConnectRate > 0 {
		// Paced connects go through the scheduler, one event per miner.
		step := time.Second / time.Duration(cfg.ConnectRate)
		for i := range s.miners {
			s.sched.add(event{at: time.Duration(i) * step, miner: int32(i), kind: evConnect})
		}
	} else {
		for _, m := range s.miners {
			s.dialq <- m
		}
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sched.run(s.ctx, s.fire)
	}()
	return s, nil
}

// fire runs one due scheduler event.
func (s *Sim) fire(ev event) {
	switch ev.kind {
	case evConnect:
		select {
		case s.dialq <- s.miners[ev.miner]:
		default:
			// Cannot happen: a miner waits for at most one connect at a time and
			// the queue holds all of them. Retry rather than lose the miner.
			s.sched.after(time.Second, ev)
		}
	case evShare:
		s.fireShare(ev)
	case evHandshake:
		m := s.miners[ev.miner]
		m.mu.Lock()
		if l := m.link; l != nil && l.gen == ev.epoch && !m.authorized {
			m.dropLocked(l, dropError, fmt.Errorf("not authorized within %v", s.cfg.HandshakeTimeout))
		}
		m.mu.Unlock()
		s.changes.notify()
	}
}

func (s *Sim) dialLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.dialq:
			s.connect(m)
		}
	}
}

// connect dials one miner and starts its handshake.
func (s *Sim) connect(m *miner) {
	nc, err := s.dialer.DialContext(s.ctx, "tcp", s.cfg.Target)
	if err != nil {
		if s.ctx.Err() != nil {
			return
		}
		s.connectErrors.Add(1)
		m.mu.Lock()
		m.noteErrLocked(fmt.Errorf("dial %s: %w", s.cfg.Target, err))
		m.failures++
		s.sched.after(m.backoffLocked(), event{miner: m.idx, kind: evConnect})
		m.mu.Unlock()
		s.changes.notify()
		return
	}
	l := &link{m: m, nc: nc}
	if err := s.tr.attach(l); err != nil {
		l.close()
		s.connectErrors.Add(1)
		m.mu.Lock()
		m.noteErrLocked(err)
		m.failures++
		s.sched.after(m.backoffLocked(), event{miner: m.idx, kind: evConnect})
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	if s.stopping.Load() || l.dead {
		dead := l.dead
		m.mu.Unlock()
		l.close()
		if dead && !s.stopping.Load() {
			// Closed by the peer before we even spoke: a failed connect.
			s.connectErrors.Add(1)
			m.mu.Lock()
			m.failures++
			s.sched.after(m.backoffLocked(), event{miner: m.idx, kind: evConnect})
			m.mu.Unlock()
		}
		return
	}
	m.linkGen++
	l.gen = m.linkGen
	l.counted = true
	m.link = l
	s.connected.Add(1)
	if m.everConnected {
		m.reconnects++
		s.reconnects.Add(1)
	}
	m.everConnected = true
	m.shareEpoch++
	m.rollGranted, m.mask = false, 0
	m.en1, m.en2Size = nil, 0
	out := m.firstRequestLocked(nil)
	s.sched.after(s.cfg.HandshakeTimeout, event{miner: m.idx, kind: evHandshake, epoch: l.gen})
	m.mu.Unlock()
	if err := l.write(out); err != nil {
		m.writeFailed(l, err)
	}
	s.changes.notify()
}

// hashSlice is how many nonces one turn of a miner covers: a few milliseconds,
// short enough that a new job is picked up quickly and miners share threads
// fairly.
const hashSlice = 16 * 1024

func (s *Sim) hashLoop(g *grinder) {
	defer s.wg.Done()
	var buf []byte
	for {
		select {
		case <-s.ctx.Done():
			return
		case m := <-s.hashq:
			buf = s.grindTurn(m, g, buf[:0])
		}
	}
}

// grindTurn hashes one slice of miner m's nonce space and submits what it
// finds. The header is copied out so the miner's lock is not held while
// hashing; a job change during the slice discards the result.
func (s *Sim) grindTurn(m *miner, g *grinder, buf []byte) []byte {
	m.mu.Lock()
	if !m.readyLocked() {
		m.queued = false
		m.mu.Unlock()
		return buf
	}
	w := m.hw
	if w.builtGen != m.workGen || w.nonce > 0xFFFFFFFF {
		m.rebuildHeaderLocked()
	}
	hdr := w.header
	start := uint32(w.nonce)
	count := uint32(min(uint64(hashSlice), 1<<32-w.nonce))
	target := m.job.target
	gen := m.workGen
	m.mu.Unlock()

	var nonce uint32
	found := false
	done := uint32(0)
	if err := g.setHeader(&hdr); err != nil {
		s.noteError(m, err)
	} else {
		nonce, found, done = g.search(start, count, &target)
	}
	s.hashes.Add(int64(done))

	var l *link
	m.mu.Lock()
	if m.workGen == gen && m.readyLocked() {
		if found {
			p := submitParams{
				worker:   m.name,
				job:      m.job.id,
				en2:      en2Bytes(make([]byte, maxEN2Size), w.en2, m.en2Size),
				ntime:    m.job.ntime,
				nonce:    nonce,
				bits:     w.bits,
				withBits: m.rollGranted,
			}
			buf = m.submitLocked(buf, &p)
			l = m.link
			w.nonce = uint64(nonce) + 1
			if m.rollGranted {
				// Vary the version bits per share, as ASICBoost devices do.
				w.roll++
				w.builtGen = 0
			}
		} else {
			w.nonce = uint64(start) + uint64(done)
		}
	}
	if m.readyLocked() && !s.stopping.Load() {
		s.hashq <- m // m is still marked queued; capacity Miners cannot block
	} else {
		m.queued = false
	}
	m.mu.Unlock()
	if l != nil {
		if err := l.write(buf); err != nil {
			m.writeFailed(l, err)
		}
		s.changes.notify()
	}
	return buf
}

// rebuildHeaderLocked builds the header for the current job, extranonce2 and
// version bits, and restarts the nonce range. An exhausted range moves on to
// the next extranonce2, as firmware does.
func (m *miner) rebuildHeaderLocked() {
	w := m.hw
	if w.builtGen == 0 && w.en2 == 0 && w.roll == 0 {
		// Random starting points: a miner that reconnects with the same
		// extranonce1 must not repeat shares it already sent.
		w.en2 = rand.Uint64()
		w.roll = rand.Uint64()
	}
	if w.builtGen != m.workGen || w.nonce > 0xFFFFFFFF {
		// A new job, new parameters or an exhausted nonce range: move to a
		// fresh extranonce2 so that no (job, en2, nonce) is ever repeated,
		// even when a reconnect brings back the same job and extranonce1.
		w.en2++
	}
	version := m.job.version
	w.bits = 0
	if m.rollGranted {
		combos := rollCombos(m.mask)
		w.bits = depositBits(uint32(w.roll%combos), m.mask)
		if w.bits == 0 {
			w.roll++
			w.bits = depositBits(uint32(w.roll%combos), m.mask)
		}
		// btcpool's rule (docs/SHARES.md, step 4): header version is
		// the job version XOR the submitted bits. For job versions without
		// bits inside the mask this equals BIP310's rule.
		version, _ = codec.RolledVersion(version, w.bits, m.mask)
	}
	var en2 [maxEN2Size]byte
	w.header = m.job.hj.Header(m.en1, en2Bytes(en2[:], w.en2, m.en2Size), version, m.job.ntime, 0)
	w.nonce = 0
	w.builtGen = m.workGen
}

// Miner returns a copy of miner i's state.
func (s *Sim) Miner(i int) MinerView {
	if i < 0 || i >= len(s.miners) {
		return MinerView{Index: i, LastError: "no such miner"}
	}
	return s.miners[i].view()
}

// SubmitRaw sends line (a newline is added if missing) on miner i's current
// connection, for tests of bad input. If the line is a request with an id, its
// reply is counted in MinerView.RawReplies instead of as a share verdict;
// numeric ids should not collide with the miner's own (which count up from 1).
func (s *Sim) SubmitRaw(i int, line []byte) error {
	if i < 0 || i >= len(s.miners) {
		return fmt.Errorf("minersim: no miner %d", i)
	}
	m := s.miners[i]
	m.mu.Lock()
	l := m.link
	if l == nil {
		m.mu.Unlock()
		return fmt.Errorf("minersim: miner %d is not connected", i)
	}
	m.rawRequestLocked(line)
	m.mu.Unlock()
	out := line
	if len(line) == 0 || line[len(line)-1] != '\n' {
		out = append(append(make([]byte, 0, len(line)+1), line...), '\n')
	}
	if err := l.write(out); err != nil {
		m.writeFailed(l, err)
		return fmt.Errorf("minersim: miner %d: %w", i, err)
	}
	return nil
}

// Stats returns a snapshot of the farm.
func (s *Sim) Stats() Summary { return s.snapshot(true) }

// WaitFor blocks until cond holds for a snapshot, re-evaluating it after
// every state change (connects, replies, jobs, shares), or until ctx ends.
// Snapshots passed to cond leave RSSBytes zero to keep re-evaluation cheap.
func (s *Sim) WaitFor(ctx context.Context, cond func(*Summary) bool) error {
	s.changes.waiters.Add(1)
	defer s.changes.waiters.Add(-1)
	for {
		ch := s.changes.wait()
		sum := s.snapshot(false)
		if cond(&sum) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("minersim: condition not met: %w (last snapshot: %d connected, %d authorized, %d sent, %d accepted)",
				ctx.Err(), sum.Connected, sum.Authorized, sum.SharesSent, sum.SharesAccepted)
		}
	}
}

// Stop closes every miner and returns the final summary. The gauges
// (Connected, Subscribed, Authorized) are those just before the shutdown;
// SharesUnanswered then counts shares that were never answered.
func (s *Sim) Stop() Summary {
	s.stopOnce.Do(func() {
		gauges := s.snapshot(false)
		s.stopping.Store(true)
		s.cancel()
		for _, m := range s.miners {
			m.mu.Lock()
			if m.link != nil {
				m.dropLocked(m.link, dropStop, nil)
			}
			m.mu.Unlock()
		}
		s.wg.Wait()
		s.tr.stop()
		s.final = s.snapshot(true)
		s.final.Connected, s.final.Subscribed, s.final.Authorized = gauges.Connected, gauges.Subscribed, gauges.Authorized
		s.changes.notify()
	})
	return s.final
}

func (s *Sim) addReject(code int) {
	s.rejMu.Lock()
	s.rejects[code]++
	s.rejMu.Unlock()
}

func (s *Sim) noteError(m *miner, err error) {
	s.rejMu.Lock()
	s.lastErr = fmt.Sprintf("%s: %v", m.name, err)
	s.rejMu.Unlock()
	if !errors.Is(err, errReconnectRequested) {
		s.log.WithField("worker", m.name).WithError(err).Debug("minersim: miner error")
	}
}

func (s *Sim) snapshot(full bool) Summary {
	elapsed := time.Since(s.start)
	// Verdicts are read before the sent counter: a share is counted as sent
	// before its verdict can exist, so this order never makes unanswered
	// negative.
	var rejected int64
	s.rejMu.Lock()
	rejects := make(map[int]int64, len(s.rejects))
	for k, v := range s.rejects {
		rejects[k] = v
		rejected += v
	}
	lastErr := s.lastErr
	s.rejMu.Unlock()
	accepted := s.accepted.Load()
	sum := Summary{
		Miners:            len(s.miners),
		Transport:         s.cfg.Transport,
		Elapsed:           elapsed,
		Connected:         int(s.connected.Load()),
		Subscribed:        int(s.subscribed.Load()),
		Authorized:        int(s.authorized.Load()),
		SharesAccepted:    accepted,
		SharesRejected:    rejects,
		LastError:         lastErr,
		SharesSent:        s.sent.Load(),
		Reconnects:        s.reconnects.Load(),
		ReconnectRequests: s.reconnectRequests.Load(),
		Disconnects:       s.disconnects.Load(),
		ConnectErrors:     s.connectErrors.Load(),
		AuthFailures:      s.authFailures.Load(),
		ProtocolErrors:    s.protocolErrors.Load(),
		Notifies:          s.notifies.Load(),
		SetDifficulties:   s.setDiffs.Load(),
		Hashes:            s.hashes.Load(),
		Jobs:              s.jobs.snapshot(),
	}
	sum.SharesUnanswered = sum.SharesSent - accepted - rejected
	q, mx, n := s.fanout.quantiles(0.5, 0.99)
	sum.FanoutP50, sum.FanoutP99, sum.FanoutMax, sum.FanoutSamples = q[0], q[1], mx, n
	q, mx, n = s.fanoutKernel.quantiles(0.5, 0.99)
	sum.FanoutKernelP50, sum.FanoutKernelP99, sum.FanoutKernelMax, sum.FanoutKernelSamples = q[0], q[1], mx, n
	q, mx, _ = s.submitLat.quantiles(0.5, 0.99)
	sum.SubmitP50, sum.SubmitP99, sum.SubmitMax = q[0], q[1], mx
	if secs := elapsed.Seconds(); secs > 0 {
		sum.HashRate = float64(sum.Hashes) / secs
		sum.SelfCPU = (processCPU() - s.cpu0).Seconds() / secs
	}
	if full {
		sum.RSSBytes = residentBytes()
	}
	return sum
}
