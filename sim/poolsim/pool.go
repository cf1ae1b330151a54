package poolsim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/sirupsen/logrus"
)

// Pool is a running pool simulator. All methods are safe for concurrent use.
type Pool struct {
	cfg       Config
	log       logrus.FieldLogger
	full      bool
	startDiff float64
	capsJSON  string // the fixed get_capabilities result

	mu       sync.Mutex
	ln       net.Listener
	addr     string
	closed   bool
	conns    map[uint64]*conn
	connSeq  uint64
	serverID uint32 // top byte of EN1, bumped by Restart so EN1s never repeat
	en1Next  uint32 // low 24 bits of the next EN1
	rng      *rand.Rand
	tmpl     *jobTemplate
	jobs     []*job // live jobs, oldest first, at most LiveJobs
	cur      *job
	seq      uint64
	block    uint64 // seq of the job that started the current block
	inBlock  int    // jobs published in the current block
	records  map[string]*workerRecord
	subAuth  map[string]uint64 // authorizations per sub-account, ever
	live     int               // registered workers right now
	tot      totals
	events   eventRing
	closedCS []ConnStats // most recently closed connections, oldest first

	// fault injection, guarded by mu
	silent     bool
	refuse     bool
	authFail   bool
	replyDelay time.Duration
	closeAfter int

	waitCh chan struct{} // closed on the next state change; nil when nobody waits
	// waiting mirrors waitCh != nil for the I/O paths, which change only
	// byte counters and must not take mu when nobody waits.
	waiting atomic.Bool

	// clock is time.Now; tests move vardiff windows forward through it
	// instead of sleeping. Guarded by mu.
	clock func() time.Time

	stop      chan struct{}
	wg        sync.WaitGroup
	http      *http.Server
	statsAddr string
	statsDone chan struct{}

	// SV2 mode (Config.SV2Listen); sv2ln and sv2addr guarded by mu
	sv2ln   net.Listener
	sv2addr string
	sv2cfg  noise.ServerConfig
	sv2auth noise.AuthorityKey
}

// maxClosed is how many closed connections Stats keeps for post-mortems.
const maxClosed = 64

// Start listens on cfg.Listen, publishes the first job (a new block) and
// starts the job timer.
func Start(cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := &Pool{
		cfg:       cfg,
		log:       cfg.Logger,
		full:      cfg.Validate == ValidateFull,
		startDiff: cfg.startDiff(),
		conns:     make(map[uint64]*conn),
		serverID:  1,
		en1Next:   1,
		rng:       rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		records:   make(map[string]*workerRecord),
		subAuth:   make(map[string]uint64),
		events:    newEventRing(512),
		stop:      make(chan struct{}),
		tot:       totals{rejected: make(map[codec.Status]uint64)},
		clock:     time.Now,
	}
	p.capsJSON = `{"capabilities":["verrol","subres"]}`
	if cfg.NoSubres {
		p.capsJSON = `{"capabilities":["verrol"]}`
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("poolsim: listen on %s: %w", cfg.Listen, err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	p.nextJob(true)
	if cfg.SV2Listen != "" {
		if err := p.startSV2(); err != nil {
			ln.Close()
			close(p.stop)
			p.wg.Wait()
			return nil, err
		}
	}
	if cfg.StatsAddr != "" {
		if err := p.startHTTP(cfg.StatsAddr); err != nil {
			ln.Close()
			return nil, err
		}
	}
	p.wg.Add(2)
	go p.acceptSV1(ln)
	go p.jobLoop()
	if cfg.StatsFile != "" {
		p.statsDone = make(chan struct{})
		go p.statsFileLoop()
	}
	p.log.WithFields(logrus.Fields{"addr": p.addr, "validate": cfg.Validate, "en2_size": cfg.EN2Size}).Info("poolsim listening")
	return p, nil
}

// Addr is the address the pool listens on (with the real port when
// Config.Listen asked for port 0).
func (p *Pool) Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// Close stops the pool: listener, connections, timers. The stats file, if
// configured, is written one last time.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var errs []error
	if p.ln != nil {
		if err := p.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("poolsim: close listener: %w", err))
		}
	}
	if p.sv2ln != nil {
		if err := p.sv2ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("poolsim: close sv2 listener: %w", err))
		}
	}
	for _, c := range p.conns {
		c.shutdown()
	}
	close(p.stop)
	p.signalLocked()
	p.mu.Unlock()

	p.wg.Wait()
	if p.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := p.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("poolsim: stop stats server: %w", err))
		}
		cancel()
	}
	if p.statsDone != nil {
		<-p.statsDone
		if err := p.writeStatsFile(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// acceptLoop accepts connections on ln for as long as it is the pool's
// listener of that kind (current, read under p.mu); setup runs under p.mu
// for each new connection and serve on the connection's own goroutine.
func (p *Pool) acceptLoop(ln net.Listener, current func() net.Listener, setup, serve func(*conn)) {
	defer p.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off briefly instead
			// of spinning, and keep serving the connections we have.
			p.log.WithError(err).Warn("poolsim: accept")
			select {
			case <-p.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		p.mu.Lock()
		if p.closed || current() != ln {
			p.mu.Unlock()
			nc.Close()
			return
		}
		if p.refuse {
			p.tot.refused++
			p.eventLocked(0, "refused", nc.RemoteAddr().String())
			p.signalLocked()
			p.mu.Unlock()
			nc.Close()
			continue
		}
		c := p.newConnLocked(nc)
		if setup != nil {
			setup(c)
		}
		p.wg.Add(1)
		p.mu.Unlock()
		go serve(c)
	}
}

// acceptSV1 runs the acceptLoop of the Stratum V1 / agent listener.
func (p *Pool) acceptSV1(ln net.Listener) {
	p.acceptLoop(ln, func() net.Listener { return p.ln }, nil, p.serve)
}

// jobLoop publishes the periodic jobs.
func (p *Pool) jobLoop() {
	defer p.wg.Done()
	period := min(p.cfg.NotifyInterval, MaxSilence)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			newBlock := p.inBlock >= p.cfg.BlockEvery
			p.mu.Unlock()
			p.nextJob(newBlock)
		}
	}
}

// NewJob publishes a job now; clean makes it a new block (new prevhash,
// clean_jobs true, every older job stale). Tests use it to step jobs
// deterministically. It counts toward BlockEvery like a periodic job, but
// only the job timer decides on its own to start a new block.
func (p *Pool) NewJob(clean bool) { p.nextJob(clean) }

// CurrentJob returns a copy of the newest job.
func (p *Pool) CurrentJob() *codec.Notify {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := p.cur.notify
	n.Branches = slices.Clone(n.Branches)
	return &n
}

// nextJob builds and publishes a generated job.
func (p *Pool) nextJob(newBlock bool) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.tmpl = newTemplate(p.rng, p.tmpl, newBlock, p.cfg.Branches)
	seq := p.seq + 1
	plans := p.planDiffsLocked(seq)
	// The stamp is taken after all per-connection work so that it measures
	// only the write and what follows it.
	now := time.Now()
	j, err := newJob(seq, uint8((seq-1)%256), p.tmpl, newBlock, now, p.cfg.EN2Size, p.full)
	if err != nil {
		// Generated jobs are well-formed by construction; this is a bug.
		p.mu.Unlock()
		p.log.WithError(err).Error("poolsim: building job")
		return
	}
	targets := p.publishLocked(j, newBlock, plans)
	p.mu.Unlock()
	flushAll(targets)
}

// publishJob installs an externally built notify (tests replay the worked
// examples of the share-validation notes this way).
func (p *Pool) publishJob(n *codec.Notify, newBlock bool) error {
	p.mu.Lock()
	seq := p.seq + 1
	plans := p.planDiffsLocked(seq)
	j, err := prepareJob(seq, n, time.Now(), p.full)
	if err != nil {
		p.mu.Unlock()
		return err
	}
	targets := p.publishLocked(j, newBlock, plans)
	p.mu.Unlock()
	flushAll(targets)
	return nil
}

// publishLocked makes j the current job and queues it, after any difficulty
// changes, on every authorized connection. It returns the connections to
// flush once the lock is released.
func (p *Pool) publishLocked(j *job, newBlock bool, plans map[*conn][]byte) []*conn {
	p.seq = j.seq
	if newBlock || p.block == 0 {
		p.block = j.seq
		p.inBlock = 0
		p.tot.blocks++
	}
	p.inBlock++
	j.block = p.block
	p.jobs = append(p.jobs, j)
	if len(p.jobs) > LiveJobs {
		p.jobs[0] = nil
		p.jobs = p.jobs[1:]
	}
	p.cur = j
	p.tot.jobs++
	targets := make([]*conn, 0, len(p.conns))
	for _, c := range p.conns {
		if !c.authorized {
			continue
		}
		if c.sv2 != nil {
			p.sv2PublishLocked(c, j, newBlock)
			targets = append(targets, c)
			continue
		}
		prefix := plans[c]
		if len(prefix) > 0 {
			c.send(false, prefix, j.line)
		} else {
			c.send(false, j.line)
		}
		c.linesOut++
		p.tot.notifies++
		targets = append(targets, c)
	}
	p.eventLocked(0, "job", fmt.Sprintf("id %s seq %d clean %t to %d connections", j.notify.JobID, j.seq, newBlock, len(targets)))
	p.signalLocked()
	return targets
}

// flushAll writes the queued job to every target, a few connections in
// parallel so that one slow peer does not hold up the rest of the farm.
func flushAll(targets []*conn) {
	if len(targets) == 0 {
		return
	}
	workers := min(len(targets), 2*runtime.GOMAXPROCS(0))
	if workers == 1 {
		for _, c := range targets {
			c.flush()
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(targets) {
					return
				}
				targets[i].flush()
			}
		}()
	}
	wg.Wait()
}

// jobByShortID finds a live job by the binary submit's job id byte.
func (p *Pool) jobByShortIDLocked(id uint8) *job {
	for i := len(p.jobs) - 1; i >= 0; i-- {
		if p.jobs[i].shortID == int(id) {
			return p.jobs[i]
		}
	}
	return nil
}

// jobByID finds a live job by the JSON submit's job id text.
func (p *Pool) jobByIDLocked(id []byte) *job {
	for i := len(p.jobs) - 1; i >= 0; i-- {
		if string(p.jobs[i].idBytes) == string(id) {
			return p.jobs[i]
		}
	}
	return nil
}

// ---- waiting ----

// signalLocked wakes WaitFor callers; state changed.
func (p *Pool) signalLocked() {
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
		p.waiting.Store(false)
	}
}

// bytesCounted wakes WaitFor after a byte counter changed outside mu: a
// write can finish after the change that queued it was signalled (delayed
// replies, a flush by another goroutine), and a condition on the counters
// would otherwise wait for an unrelated event.
func (p *Pool) bytesCounted() {
	if !p.waiting.Load() {
		return
	}
	p.mu.Lock()
	p.signalLocked()
	p.mu.Unlock()
}

// WaitFor blocks until cond holds for a Stats snapshot or ctx ends. cond is
// evaluated at once and then again after state changes, never on a timer.
// Changes that happen while a snapshot is taken or evaluated are coalesced
// into one re-evaluation.
func (p *Pool) WaitFor(ctx context.Context, cond func(*Stats) bool) error {
	for {
		start := time.Now()
		p.mu.Lock()
		s := p.snapshotLocked()
		if p.waitCh == nil {
			p.waitCh = make(chan struct{})
			p.waiting.Store(true)
		}
		ch := p.waitCh
		closed := p.closed
		p.mu.Unlock()
		cost := time.Since(start)
		if cond(&s) {
			return nil
		}
		if closed {
			return errors.New("poolsim: wait: pool closed before the condition held")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("poolsim: wait: %w", ctx.Err())
		}
		// A snapshot holds the pool lock for its whole cost, and with
		// thousands of workers there is a change per share: re-snapshotting
		// at once would starve the share path (measured: ~1,000 shares/s
		// with 1,000 workers). Let changes accumulate for a few snapshot
		// costs first; small pools, as in tests, re-evaluate immediately.
		if cost > 100*time.Microsecond {
			select {
			case <-time.After(min(4*cost, 50*time.Millisecond)):
			case <-ctx.Done():
				return fmt.Errorf("poolsim: wait: %w", ctx.Err())
			}
		}
	}
}

// ---- fault injection ----

// CloseConn closes one connection (by its Stats id), like a single broken
// link, and returns once it is gone from Stats; false if there is no such
// connection.
func (p *Pool) CloseConn(id uint64) bool {
	p.mu.Lock()
	c, ok := p.conns[id]
	if ok {
		c.shutdown()
		p.eventLocked(id, "close-conn", "closed by test")
		p.signalLocked()
	}
	p.mu.Unlock()
	if ok {
		<-c.done
	}
	return ok
}

// DropAll closes every connection, like a pool crash, and returns once they
// are gone from Stats. The listener keeps accepting.
func (p *Pool) DropAll() {
	p.mu.Lock()
	done := make([]chan struct{}, 0, len(p.conns))
	for _, c := range p.conns {
		c.shutdown()
		done = append(done, c.done)
	}
	p.eventLocked(0, "drop-all", fmt.Sprintf("%d connections", len(done)))
	p.signalLocked()
	p.mu.Unlock()
	for _, d := range done {
		<-d
	}
}

// SetSilent stops (on) or resumes sending anything at all: jobs, replies,
// verdicts. Connections stay open and input is still processed; what would
// have been sent while silent is lost, as with a hung pool.
func (p *Pool) SetSilent(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = on
	p.eventLocked(0, "silent", fmt.Sprint(on))
	p.signalLocked()
}

// SetRefuse makes the pool close new connections at once (on) or accept
// them again.
func (p *Pool) SetRefuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
	p.eventLocked(0, "refuse", fmt.Sprint(on))
	p.signalLocked()
}

// SetReplyDelay delays every reply (JSON responses and SUBMIT_RESPONSE
// verdicts) by d. Anything queued behind a delayed reply on the same
// connection waits for it, so per-connection order is kept.
func (p *Pool) SetReplyDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.replyDelay = max(d, 0)
	p.eventLocked(0, "reply-delay", d.String())
	p.signalLocked()
}

// CloseAfterShares makes each connection, current and future, close after
// it has submitted n more shares (JSON submits or submit frames, counted as
// they arrive). The n-th share is still processed and answered before the
// close. n <= 0 turns it off.
func (p *Pool) CloseAfterShares(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeAfter = max(n, 0)
	for _, c := range p.conns {
		c.sharesLeft = p.closeAfter
	}
	p.eventLocked(0, "close-after-shares", fmt.Sprint(n))
	p.signalLocked()
}

// SetAuthorizeResult makes mining.authorize succeed (true, the default) or
// fail with result false and error 29.
func (p *Pool) SetAuthorizeResult(ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.authFail = !ok
	p.eventLocked(0, "authorize-result", fmt.Sprint(ok))
	p.signalLocked()
}

// Restart simulates a pool restart: the listener and every connection are
// closed, the pool listens again on the same address, and a new block is
// published. Connections made afterwards get EN1 values never used before.
func (p *Pool) Restart() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("poolsim: restart: pool is closed")
	}
	old, oldSV2 := p.ln, p.sv2ln
	p.ln, p.sv2ln = nil, nil
	if old != nil {
		old.Close()
	}
	if oldSV2 != nil {
		oldSV2.Close()
	}
	done := make([]chan struct{}, 0, len(p.conns))
	for _, c := range p.conns {
		c.shutdown()
		done = append(done, c.done)
	}
	p.serverID = (p.serverID + 1) & 0xff
	p.en1Next = 1
	addr := p.addr
	p.mu.Unlock()
	for _, d := range done {
		<-d
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("poolsim: restart: listen on %s: %w", addr, err)
	}
	var sv2ln net.Listener
	if oldSV2 != nil {
		if sv2ln, err = net.Listen("tcp", p.sv2addr); err != nil {
			ln.Close()
			return fmt.Errorf("poolsim: restart: listen for sv2 on %s: %w", p.sv2addr, err)
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		if sv2ln != nil {
			sv2ln.Close()
		}
		return errors.New("poolsim: restart: pool closed meanwhile")
	}
	p.ln = ln
	if sv2ln != nil {
		p.sv2ln = sv2ln
		p.wg.Add(1)
		go p.sv2AcceptLoop(sv2ln)
	}
	p.tot.restarts++
	p.eventLocked(0, "restart", addr)
	p.wg.Add(1)
	p.mu.Unlock()
	go p.acceptSV1(ln)
	p.nextJob(true)
	return nil
}
