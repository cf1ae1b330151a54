package minersim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// testServer is a small Stratum V1 pool for these tests, built on codec. It
// validates hash-mode shares the way a pool does (difficulty bound to the job
// as sent to each connection, btcpool's version-rolling rule) and can be told
// to misbehave: answer out of order, stay silent, reconnect or drop miners.
type testServer struct {
	t       testing.TB
	ln      net.Listener
	marker  string
	en2Size int
	mask    uint32

	mu       sync.Mutex
	changed  chan struct{}
	conns    map[*serverConn]bool
	nextEN1  uint32
	diff     float64
	job      *serverJob
	jobs     map[string]*serverJob
	jobSeq   int
	connects int
	submits  map[string]int // by worker
	accepted int
	rejected map[int]int
	shares   []serverShare
	held     int // replies currently held back
	// knobs
	validate  bool
	holdPairs bool // answer each pair of requests in reverse order
	silent    bool // never answer submits
	mute      bool // never answer anything
	noConfig  bool // never answer mining.configure (as the Go agent does without a mask)
	verdict   func(sub *codec.Submit) codec.Status

	wg sync.WaitGroup
}

type serverJob struct {
	n       *codec.Notify
	hj      *codec.HashJob
	written time.Time
}

type serverConn struct {
	srv     *testServer
	c       net.Conn
	wmu     sync.Mutex
	en1     []byte
	worker  string
	diff    float64
	jobDiff map[string]float64
	held    []byte
	authed  bool
}

type serverShare struct {
	worker     string
	job        string
	nonce      uint32
	bits       uint32
	hasVersion bool
	hashDiff   float64
	jobDiff    float64
	accepted   bool
	code       int
	seq        int // order of arrival
}

const testMarker = "5e11ab1e"

// newTestServer starts a server; opts set its knobs before it accepts.
func newTestServer(t testing.TB, opts ...func(*testServer)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &testServer{
		t: t, ln: ln, marker: testMarker, en2Size: 4, mask: 0x1fffe000,
		changed: make(chan struct{}), conns: map[*serverConn]bool{},
		nextEN1: 0xa0000000, diff: 1, jobs: map[string]*serverJob{},
		submits: map[string]int{}, rejected: map[int]int{},
	}
	for _, o := range opts {
		o(s)
	}
	s.newJobLocked()
	s.wg.Add(1)
	go s.acceptLoop()
	t.Cleanup(s.close)
	return s
}

func (s *testServer) addr() string { return s.ln.Addr().String() }

func (s *testServer) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// notifyLocked wakes waitFor callers.
func (s *testServer) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor blocks until cond (called with the lock held) is true.
func (s *testServer) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok := cond()
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.t.Fatalf("server: timed out waiting for %s", what)
		}
	}
}

func (s *testServer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		sc := &serverConn{srv: s, c: c, diff: s.diff, jobDiff: map[string]float64{}}
		s.nextEN1++
		sc.en1 = []byte{byte(s.nextEN1 >> 24), byte(s.nextEN1 >> 16), byte(s.nextEN1 >> 8), byte(s.nextEN1)}
		s.conns[sc] = true
		s.connects++
		s.notifyLocked()
		s.mu.Unlock()
		s.wg.Add(1)
		go sc.serve()
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newJobLocked makes a new current job, stamped with its creation time.
func (s *testServer) newJobLocked() *serverJob {
	s.jobSeq++
	now := time.Now()
	coinb1 := string(AppendHexStamp([]byte("01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20"), s.marker, now))
	n := &codec.Notify{
		JobID:    strconv.Itoa(s.jobSeq),
		PrevHash: randHex(32),
		Coinb1:   coinb1,
		Coinb2:   "0b2f737475622d706f6f6c2fffffffff01205fa012000000001976a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac00000000",
		Branches: []string{randHex(32), randHex(32)},
		Version:  "20000000",
		NBits:    "1d00ffff",
		NTime:    fmt.Sprintf("%08x", now.Unix()),
		Clean:    true,
	}
	hj, err := codec.NewHashJob(n, "")
	if err != nil {
		s.t.Errorf("server: job: %v", err)
	}
	j := &serverJob{n: n, hj: hj, written: now}
	s.job = j
	s.jobs[n.JobID] = j
	return j
}

// broadcastJob sends a new job to every authorized connection.
func (s *testServer) broadcastJob() string {
	s.mu.Lock()
	j := s.newJobLocked()
	var targets []*serverConn
	for c := range s.conns {
		if c.authed {
			c.jobDiff[j.n.JobID] = c.diff
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	line := j.n.AppendLine(nil, "", true)
	for _, c := range targets {
		c.write(line)
	}
	return j.n.JobID
}

// setDifficulty sends mining.set_difficulty to every authorized connection
// (and makes it the default for new ones) without a new job.
func (s *testServer) setDifficulty(d float64) {
	s.mu.Lock()
	s.diff = d
	var targets []*serverConn
	for c := range s.conns {
		c.diff = d
		if c.authed {
			targets = append(targets, c)
		}
	}
	s.mu.Unlock()
	line := codec.AppendSetDifficulty(nil, d)
	for _, c := range targets {
		c.write(line)
	}
}

// connOf returns the connection authorized as worker.
func (s *testServer) connOf(worker string) *serverConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.worker == worker {
			return c
		}
	}
	return nil
}

func (s *testServer) sendReconnect(worker string) {
	s.t.Helper()
	c := s.connOf(worker)
	if c == nil {
		s.t.Fatalf("server: no connection for %s", worker)
	}
	c.write(codec.AppendReconnect(nil))
}

func (s *testServer) drop(worker string) {
	s.t.Helper()
	c := s.connOf(worker)
	if c == nil {
		s.t.Fatalf("server: no connection for %s", worker)
	}
	_ = c.c.Close()
}

func (c *serverConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, _ = c.c.Write(b)
}

// reply answers a request, honouring the holdPairs and silent knobs.
func (c *serverConn) reply(b []byte, isSubmit bool) {
	s := c.srv
	s.mu.Lock()
	if s.mute || (isSubmit && s.silent) {
		s.mu.Unlock()
		return
	}
	if s.holdPairs && isSubmit {
		if c.held == nil {
			c.held = b
			s.held++
			s.notifyLocked()
			s.mu.Unlock()
			return
		}
		first := c.held
		c.held = nil
		s.held--
		s.mu.Unlock()
		c.write(b) // the later request is answered first
		c.write(first)
		return
	}
	s.mu.Unlock()
	c.write(b)
}

func (c *serverConn) serve() {
	s := c.srv
	defer s.wg.Done()
	defer func() {
		_ = c.c.Close()
		s.mu.Lock()
		delete(s.conns, c)
		s.notifyLocked()
		s.mu.Unlock()
	}()
	rd := codec.NewReader(c.c, 0, false)
	var r codec.Request
	for {
		ch, err := rd.Next()
		if err != nil {
			return // EOF, reset or closed by close(): the miner is gone either way
		}
		if err := codec.ScanRequest(ch.Line, &r); err != nil {
			s.t.Errorf("server: bad line %q: %v", ch.Line, err)
			return
		}
		id := append([]byte(nil), r.ID...)
		switch string(r.Method) {
		case codec.MethodConfigure:
			if s.noConfig {
				continue
			}
			c.reply([]byte(fmt.Sprintf(`{"id":%s,"result":{"version-rolling":true,"version-rolling.mask":"%08x"},"error":null}`+"\n", id, s.mask)), false)
		case codec.MethodSubscribe:
			c.reply(codec.AppendSubscribeResult(nil, id, hex.EncodeToString(c.en1), s.en2Size), false)
		case codec.MethodAuthorize:
			name, _ := r.Param(0).String()
			s.mu.Lock()
			c.worker = name
			c.authed = true
			j := s.job
			c.jobDiff[j.n.JobID] = c.diff
			diff := c.diff
			s.notifyLocked()
			s.mu.Unlock()
			c.reply(codec.AppendTrue(nil, id), false)
			// Difficulty and job after the authorize reply, as real pools do.
			c.write(codec.AppendSetDifficulty(nil, diff))
			c.write(j.n.AppendLine(nil, "", true))
		case codec.MethodSubmit:
			c.reply(c.submit(&r, id), true)
		default:
			c.reply(codec.AppendError(nil, id, codec.StatusIllegalMethod, "Illegal method"), false)
		}
	}
}

// submit judges one share and returns the reply line.
func (c *serverConn) submit(r *codec.Request, id []byte) []byte {
	s := c.srv
	sub, err := codec.ParseSubmit(r, s.en2Size)
	if err != nil {
		code := codec.StatusIllegalParams
		var se *codec.SubmitError
		if errors.As(err, &se) {
			code = se.Code
		}
		return codec.AppendError(nil, id, code, "Illegal params")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	sh := serverShare{worker: string(sub.Worker), job: string(sub.JobID), nonce: sub.Nonce,
		bits: sub.VersionBits, hasVersion: sub.HasVersion, seq: len(s.shares)}
	s.submits[sh.worker]++
	status := codec.StatusAccept
	j := s.jobs[sh.job]
	switch {
	case j == nil:
		status = codec.StatusJobNotFoundOrStale
	case s.validate:
		version := j.hj.Version
		if sub.HasVersion {
			v, ok := codec.RolledVersion(j.hj.Version, sub.VersionBits, s.mask)
			if !ok {
				status = codec.StatusIllegalVersionMask
			}
			version = v
		}
		en2, _ := hex.DecodeString(string(sub.EN2Hex))
		h := j.hj.Hash(c.en1, en2, version, sub.NTime, sub.Nonce)
		sh.hashDiff = codec.HashDifficulty(h)
		sh.jobDiff = c.jobDiff[sh.job]
		t := codec.TargetFromDifficulty(sh.jobDiff)
		if status.Accepted() && !t.Met(h) {
			status = codec.StatusLowDifficulty
		}
	}
	if s.verdict != nil && status.Accepted() {
		status = s.verdict(&sub)
	}
	sh.accepted = status.Accepted()
	if sh.accepted {
		s.accepted++
		s.shares = append(s.shares, sh)
		return codec.AppendTrue(nil, id)
	}
	sh.code = int(status)
	s.rejected[sh.code]++
	s.shares = append(s.shares, sh)
	return codec.AppendError(nil, id, status, status.Text())
}

// sharesSnapshot copies the shares seen so far.
func (s *testServer) sharesSnapshot() []serverShare {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]serverShare(nil), s.shares...)
}

// startSim starts a farm against the server and stops it at cleanup.
func startSim(t testing.TB, cfg Config) *Sim {
	t.Helper()
	sim, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { sim.Stop() })
	return sim
}

// waitSim waits for cond on the farm with a bounded deadline.
func waitSim(t testing.TB, sim *Sim, what string, cond func(*Summary) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := sim.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
