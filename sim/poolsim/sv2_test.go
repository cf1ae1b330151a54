package poolsim

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/sirupsen/logrus"
)

// sv2Diff makes shares cheap: about one hash in 430 meets it.
const sv2Diff = 1e-7

func startSV2Pool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	cfg.SV2Listen = "127.0.0.1:0"
	if cfg.JSONDiff == 0 {
		cfg.JSONDiff = sv2Diff
	}
	return startPool(t, cfg)
}

// sv2Client is a minimal SV2 client built from codec/sv2 and its noise
// package, as the agent's upstream will be.
type sv2Client struct {
	t *testing.T
	c *noise.Conn
}

func dialSV2(t *testing.T, p *Pool, cfg noise.ClientConfig) (*sv2Client, error) {
	t.Helper()
	if cfg.Authority == nil && !cfg.TOFU {
		k := p.SV2AuthorityKey()
		cfg.Authority = &k
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := noise.Dial(ctx, p.SV2Addr(), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &sv2Client{t: t, c: c}, nil
}

func (cl *sv2Client) send(m sv2.Message) {
	cl.t.Helper()
	if err := cl.c.WriteMessage(m); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *sv2Client) read() sv2.Message {
	cl.t.Helper()
	_ = cl.c.NetConn().SetReadDeadline(time.Now().Add(ioTimeout))
	m, err := cl.c.ReadMessage()
	if err != nil {
		cl.t.Fatalf("read: %v", err)
	}
	return m
}

func expectMsg[T sv2.Message](cl *sv2Client) T {
	cl.t.Helper()
	m := cl.read()
	v, ok := m.(T)
	if !ok {
		cl.t.Fatalf("got %T %+v, want %T", m, m, *new(T))
	}
	return v
}

func (cl *sv2Client) setup() {
	cl.t.Helper()
	cl.send(&sv2.SetupConnection{MinVersion: 2, MaxVersion: 2, Flags: sv2.FlagRequiresVersionRolling, EndpointHost: "127.0.0.1", Vendor: "test"})
	expectMsg[*sv2.SetupConnectionSuccess](cl)
}

// extendedJob is what a client holds for an extended channel.
type extendedJob struct {
	open *sv2.OpenExtendedMiningChannelSuccess
	job  *sv2.NewExtendedMiningJob
	prev *sv2.SetNewPrevHash
}

func (cl *sv2Client) openExtended(user string) *extendedJob {
	cl.t.Helper()
	cl.send(&sv2.OpenExtendedMiningChannel{RequestID: 9, UserIdentity: user, NominalHashRate: 1e6, MinExtranonceSize: 8})
	e := &extendedJob{open: expectMsg[*sv2.OpenExtendedMiningChannelSuccess](cl)}
	e.job = expectMsg[*sv2.NewExtendedMiningJob](cl)
	e.prev = expectMsg[*sv2.SetNewPrevHash](cl)
	if e.open.RequestID != 9 || e.job.MinNTime != nil || e.prev.JobID != e.job.JobID || len(e.open.ExtranoncePrefix) != 4 {
		cl.t.Fatalf("channel open: %+v %+v %+v", e.open, e.job, e.prev)
	}
	return e
}

// mineExtended finds nonces whose hash meets (good) and misses (bad) the
// channel target, hashing with the repository's SV1 share code.
func mineExtended(t *testing.T, e *extendedJob, target sv2.U256, en []byte, version uint32) (good, bad uint32) {
	t.Helper()
	n, err := sv2.Notify(e.job, e.prev, "x", true)
	if err != nil {
		t.Fatal(err)
	}
	hj, err := codec.NewHashJob(n, hex.EncodeToString(e.open.ExtranoncePrefix))
	if err != nil {
		t.Fatal(err)
	}
	return grind(t, sv2.TargetToCodec(target), func(nonce uint32) [32]byte {
		return hj.Hash(nil, en, version, e.prev.MinNTime, nonce)
	})
}

func grind(t *testing.T, tgt codec.Target, hash func(uint32) [32]byte) (good, bad uint32) {
	t.Helper()
	foundGood, foundBad := false, false
	for nonce := uint32(0); nonce < 200_000 && !(foundGood && foundBad); nonce++ {
		if tgt.Met(hash(nonce)) {
			if !foundGood {
				good, foundGood = nonce, true
			}
		} else if !foundBad {
			bad, foundBad = nonce, true
		}
	}
	if !foundGood || !foundBad {
		t.Fatal("no share found in 200,000 nonces")
	}
	return good, bad
}

// TestSV2ExtendedChannel: handshake, channel, job, then one share per verdict.
func TestSV2ExtendedChannel(t *testing.T) {
	p := startSV2Pool(t, Config{})
	cl, err := dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl.setup()
	e := cl.openExtended("alice.rig1")
	if e.open.ExtranonceSize != 8 || !e.open.HasGroupChannelID || sv2.Difficulty(e.open.Target) < sv2Diff*0.99 {
		t.Fatalf("open %+v", e.open)
	}
	en := []byte{0, 0, 0, 1, 0, 0, 0, 2}
	rolled := e.job.Version | 0x00002000 // a rolled bit inside the mask
	good, bad := mineExtended(t, e, e.open.Target, en, rolled)
	submit := func(seq, job, nonce uint32, en []byte, version uint32) {
		cl.send(sv2.ExtendedShare(e.open.ChannelID, seq, job, nil, en, e.prev.MinNTime, nonce, version))
	}
	expectErr := func(seq uint32, code string) {
		t.Helper()
		m := expectMsg[*sv2.SubmitSharesError](cl)
		if m.SequenceNumber != seq || m.ErrorCode != code {
			t.Fatalf("seq %d: %+v, want %s", seq, m, code)
		}
	}
	submit(1, e.job.JobID, good, en, rolled)
	if m := expectMsg[*sv2.SubmitSharesSuccess](cl); m.LastSequenceNumber != 1 || m.NewSubmitsAcceptedCount != 1 {
		t.Fatalf("verdict %+v", m)
	}
	submit(2, e.job.JobID, good, en, rolled)
	expectErr(2, sv2.ErrDuplicateShare)
	submit(3, e.job.JobID, bad, en, rolled)
	expectErr(3, sv2.ErrDifficultyTooLow)
	submit(4, e.job.JobID+100, good, en, e.job.Version)
	expectErr(4, sv2.ErrInvalidJobID)
	submit(5, e.job.JobID, good, en[:4], e.job.Version)
	expectErr(5, sv2.ErrBadExtranonceSize)
	submit(6, e.job.JobID, good, en, e.job.Version|0x80000000)
	expectErr(6, sv2.ErrInvalidNonRollableVersion)
	cl.send(&sv2.SubmitSharesExtended{ChannelID: 99, SequenceNumber: 7, JobID: e.job.JobID, Extranonce: en})
	expectErr(7, sv2.ErrInvalidChannelID)

	// A job in the same block arrives active (min_ntime set, no prevhash);
	// a new block arrives as a future job plus SetNewPrevHash, and shares on
	// the old block are stale.
	p.NewJob(false)
	if j := expectMsg[*sv2.NewExtendedMiningJob](cl); j.MinNTime == nil || j.JobID == e.job.JobID {
		t.Fatalf("active job %+v", j)
	}
	p.NewJob(true)
	j2 := expectMsg[*sv2.NewExtendedMiningJob](cl)
	if p2 := expectMsg[*sv2.SetNewPrevHash](cl); j2.MinNTime != nil || p2.JobID != j2.JobID || p2.PrevHash == e.prev.PrevHash {
		t.Fatalf("new block %+v %+v", j2, p2)
	}
	submit(8, e.job.JobID, good+1, en, rolled)
	expectErr(8, sv2.ErrStaleShare)

	st := waitFor(t, p, "the verdicts to be counted", func(s *Stats) bool { return s.Workers["alice.rig1"].Accepted == 1 })
	w := st.Workers["alice.rig1"]
	if w.Rejected[codec.StatusDuplicateShare] != 1 || w.Rejected[codec.StatusLowDifficulty] != 1 || w.Rejected[codec.StatusJobNotFoundOrStale] != 1 || !w.Online {
		t.Fatalf("worker stats %+v", w)
	}
	if c := st.Conns[0]; !c.SV2 || c.FramesIn["SubmitSharesExtended"] != 8 || c.FramesOut["SubmitShares.Error"] != 7 || c.Workers != 1 {
		t.Fatalf("conn stats %+v", c)
	}
}

// TestSV2StandardChannels: per-miner mode, two workers on one connection,
// each with its own merkle root, judged and counted by user_identity.
func TestSV2StandardChannels(t *testing.T) {
	p := startSV2Pool(t, Config{Validate: ValidateStructural})
	cl, err := dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl.setup()
	type std struct {
		open *sv2.OpenStandardMiningChannelSuccess
		job  *sv2.NewMiningJob
		prev *sv2.SetNewPrevHash
	}
	var chans []std
	for i, user := range []string{"alice.w1", "alice.w2"} {
		cl.send(&sv2.OpenStandardMiningChannel{RequestID: uint32(i), UserIdentity: user, NominalHashRate: 1e6})
		s := std{open: expectMsg[*sv2.OpenStandardMiningChannelSuccess](cl)}
		s.job = expectMsg[*sv2.NewMiningJob](cl)
		s.prev = expectMsg[*sv2.SetNewPrevHash](cl)
		if len(s.open.ExtranoncePrefix) != 4+DefaultEN2Size || s.job.ChannelID != s.open.ChannelID {
			t.Fatalf("standard channel %+v %+v", s.open, s.job)
		}
		chans = append(chans, s)
	}
	if chans[0].job.MerkleRoot == chans[1].job.MerkleRoot {
		t.Fatal("two standard channels share a merkle root")
	}
	for _, s := range chans {
		var hdr [80]byte
		binary.LittleEndian.PutUint32(hdr[0:], s.job.Version)
		copy(hdr[4:], s.prev.PrevHash[:])
		copy(hdr[36:], s.job.MerkleRoot[:])
		binary.LittleEndian.PutUint32(hdr[68:], s.prev.MinNTime)
		binary.LittleEndian.PutUint32(hdr[72:], s.prev.NBits)
		good, _ := grind(t, sv2.TargetToCodec(s.open.Target), func(nonce uint32) [32]byte {
			binary.LittleEndian.PutUint32(hdr[76:], nonce)
			return codec.DoubleSHA256(hdr[:])
		})
		cl.send(&sv2.SubmitSharesStandard{ChannelID: s.open.ChannelID, SequenceNumber: 1, JobID: s.job.JobID, Nonce: good, NTime: s.prev.MinNTime, Version: s.job.Version})
		if m := expectMsg[*sv2.SubmitSharesSuccess](cl); m.ChannelID != s.open.ChannelID {
			t.Fatalf("verdict %+v", m)
		}
	}
	st := waitFor(t, p, "both workers", func(s *Stats) bool {
		return s.Workers["alice.w1"].Accepted == 1 && s.Workers["alice.w2"].Accepted == 1
	})
	if st.Totals.RegisteredWorkers != 2 {
		t.Fatalf("registered %d", st.Totals.RegisteredWorkers)
	}
	// A worker goes offline with its channel.
	cl.send(&sv2.CloseChannel{ChannelID: chans[0].open.ChannelID, ReasonCode: "miner gone"})
	waitFor(t, p, "the channel to close", func(s *Stats) bool { return !s.Workers["alice.w1"].Online && s.Workers["alice.w2"].Online })
}

// syncBuffer is a log sink safe for the pool's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestSV2Refusals: a wrong authority key and an expired certificate fail
// the client's handshake with a clear error; a tampered frame makes the
// pool close the connection with one log line saying so.
func TestSV2Refusals(t *testing.T) {
	var logs syncBuffer
	l := logrus.New()
	l.SetOutput(&logs)
	p := startSV2Pool(t, Config{Logger: l, SV2CertValidity: time.Minute})
	other, _ := noise.ParseAuthorityKey("9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh")
	if _, err := dialSV2(t, p, noise.ClientConfig{Authority: &other}); !errors.Is(err, noise.ErrWrongAuthority) {
		t.Fatalf("wrong authority: %v", err)
	}
	late := func() time.Time { return time.Now().Add(2 * time.Minute) }
	if _, err := dialSV2(t, p, noise.ClientConfig{Now: late}); !errors.Is(err, noise.ErrCertExpired) {
		t.Fatalf("expired certificate: %v", err)
	}

	cl, err := dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl.setup()
	ct, err := cl.c.Seal(nil, sv2.FrameOf(&sv2.SetupConnection{MinVersion: 2, MaxVersion: 2}))
	if err != nil {
		t.Fatal(err)
	}
	ct[len(ct)-1] ^= 0x40 // the payload's tag
	if _, err := cl.c.NetConn().Write(ct); err != nil {
		t.Fatal(err)
	}
	st := waitFor(t, p, "the tampered connection to close", func(s *Stats) bool {
		for _, c := range s.Closed {
			if c.SV2 && strings.Contains(c.CloseReason, "tampered") {
				return true
			}
		}
		return false
	})
	var lines []string
	for _, ln := range strings.Split(logs.String(), "\n") {
		if strings.Contains(ln, "tampered") {
			lines = append(lines, ln)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], "closing the connection") {
		t.Fatalf("log lines about the tampered frame: %q", lines)
	}
	_ = cl.c.NetConn().SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := cl.c.ReadFrame(); err == nil {
		t.Fatal("connection still open")
	}
	if st.Totals.Connections != 0 {
		t.Fatalf("open connections %d", st.Totals.Connections)
	}
}

// TestSV2TargetAndFaults: a forced difficulty arrives as SetTarget before
// the next job; Reconnect and a pool-side close reach the client.
func TestSV2TargetAndFaults(t *testing.T) {
	p := startSV2Pool(t, Config{Validate: ValidateStructural})
	cl, err := dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl.setup()
	e := cl.openExtended("bob.rig")
	p.SetWorkerDiff("bob.rig", 1024)
	p.NewJob(false)
	if m := expectMsg[*sv2.SetTarget](cl); m.ChannelID != e.open.ChannelID || sv2.Difficulty(m.MaximumTarget) != 1024 {
		t.Fatalf("SetTarget %+v (difficulty %g)", m, sv2.Difficulty(m.MaximumTarget))
	}
	expectMsg[*sv2.NewExtendedMiningJob](cl)
	st := p.Stats()
	if !p.SendSV2Reconnect(st.Conns[0].ID, "127.0.0.1", 3334) {
		t.Fatal("SendSV2Reconnect")
	}
	if m := expectMsg[*sv2.Reconnect](cl); m.NewHost != "127.0.0.1" || m.NewPort != 3334 {
		t.Fatalf("reconnect %+v", m)
	}
	p.CloseConn(st.Conns[0].ID)
	_ = cl.c.NetConn().SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := cl.c.ReadFrame(); err == nil {
		t.Fatal("read after CloseConn succeeded")
	}
	if w := p.Stats().Workers["bob.rig"]; w.Online || w.Difficulty != 1024 {
		t.Fatalf("worker %+v", w)
	}
}

// TestSV2ConfiguredAuthorityAndRestart: the SRI example secret gives its
// published public key, and the SV2 listener comes back after Restart.
func TestSV2ConfiguredAuthorityAndRestart(t *testing.T) {
	p := startSV2Pool(t, Config{Validate: ValidateStructural, SV2AuthoritySecret: "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n"})
	if got := p.SV2AuthorityKey().String(); got != "9auqWEzQDVyd2oe1JVGFLMLHZtCo2FFqZwtKA5gd9xbuEu7PH72" {
		t.Fatalf("authority key %s", got)
	}
	cl, err := dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cl.setup()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	_ = cl.c.NetConn().SetReadDeadline(time.Now().Add(ioTimeout))
	if _, err := cl.c.ReadFrame(); err == nil {
		t.Fatal("connection survived the restart")
	}
	cl, err = dialSV2(t, p, noise.ClientConfig{})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	cl.setup()
	cl.openExtended("carol.rig")
}

// SV2CertBackdate gives certificates that are already expired when the
// client checks them, with the client's real clock.
func TestSV2CertBackdate(t *testing.T) {
	p := startSV2Pool(t, Config{SV2CertValidity: time.Minute, SV2CertBackdate: time.Hour})
	if _, err := dialSV2(t, p, noise.ClientConfig{}); !errors.Is(err, noise.ErrCertExpired) {
		t.Fatalf("backdated certificate: %v", err)
	}
	ok := startSV2Pool(t, Config{SV2CertValidity: time.Hour, SV2CertBackdate: time.Minute})
	if _, err := dialSV2(t, ok, noise.ClientConfig{}); err != nil {
		t.Fatalf("certificate backdated within its validity: %v", err)
	}
}
