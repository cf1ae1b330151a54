package poolsim

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/sirupsen/logrus"
)

// SV2 mode: a Noise listener whose connections open extended channels
// (aggregated mode: the client rolls the extranonce after a 4-byte prefix
// of its own) or standard channels (per-miner mode: the pool fixes the
// whole extranonce and sends merkle roots). Jobs, blocks, vardiff, share
// checks and statistics are the pool's own; only the wire differs.

// sv2Conn is the SV2 state of a connection, guarded by Pool.mu.
type sv2Conn struct {
	nc       *noise.Conn
	setup    bool
	channels map[uint32]*sv2Channel
	nextID   uint32
	in, out  map[uint8]uint64 // messages by type
	pending  []sv2.Message    // SetTargets to send before the next job
}

// sv2Channel is one open channel; each is a worker named by its
// user_identity.
type sv2Channel struct {
	id       uint32
	standard bool
	w        *worker
	en1      uint32
	en1b     [4]byte
	en2      []byte // standard channels: the fixed rest of the extranonce
	jobsSent bool
}

// sv2Parts is a job's fields in SV2 form, computed once per job.
type sv2Parts struct {
	prefix, suffix []byte
	path           []sv2.U256
	prev           sv2.U256
	nbits          uint32
}

func (p *Pool) sv2PartsLocked(j *job) (*sv2Parts, error) {
	if j.sv2 != nil {
		return j.sv2, nil
	}
	n := &j.notify
	s := &sv2Parts{nbits: n.NBitsValue(), path: make([]sv2.U256, len(n.Branches))}
	var err error
	if s.prefix, err = hex.DecodeString(n.Coinb1); err != nil {
		return nil, fmt.Errorf("poolsim: job %s coinb1: %w", n.JobID, err)
	}
	if s.suffix, err = hex.DecodeString(n.Coinb2); err != nil {
		return nil, fmt.Errorf("poolsim: job %s coinb2: %w", n.JobID, err)
	}
	for i, b := range n.Branches {
		if _, err := hex.Decode(s.path[i][:], []byte(b)); err != nil {
			return nil, fmt.Errorf("poolsim: job %s branch %d: %w", n.JobID, i, err)
		}
	}
	ph, err := hex.DecodeString(n.PrevHash)
	if err != nil || len(ph) != 32 {
		return nil, fmt.Errorf("poolsim: job %s prevhash is not 32 bytes of hex", n.JobID)
	}
	for i := 0; i < 32; i += 4 { // mining.notify's word-swapped form → header order
		s.prev[i], s.prev[i+1], s.prev[i+2], s.prev[i+3] = ph[i+3], ph[i+2], ph[i+1], ph[i]
	}
	j.sv2 = s
	return s, nil
}

// hashJobLocked is the job's share-hashing form; structural mode skips it
// at publication, but standard channels need merkle roots anyway.
func (p *Pool) hashJobLocked(j *job) (*codec.HashJob, error) {
	if j.hash == nil {
		h, err := codec.NewHashJob(&j.notify, "")
		if err != nil {
			return nil, err
		}
		j.hash = h
	}
	return j.hash, nil
}

// sv2AcceptLoop accepts SV2 connections; the handshake runs on the
// connection's own goroutine.
func (p *Pool) sv2AcceptLoop(ln net.Listener) {
	p.acceptLoop(ln, func() net.Listener { return p.sv2ln }, func(c *conn) {
		c.sv2 = &sv2Conn{channels: make(map[uint32]*sv2Channel), nextID: 1, in: map[uint8]uint64{}, out: map[uint8]uint64{}}
		c.userAgent = "sv2"
	}, p.serveSV2)
}

// countingConn counts input and flushes queued output before each read, as
// connReader does for the SV1 modes.
type countingConn struct {
	net.Conn
	c *conn
}

func (cc countingConn) Read(b []byte) (int, error) {
	cc.c.flush()
	n, err := cc.Conn.Read(b)
	if n > 0 {
		cc.c.bytesIn.Add(uint64(n))
		cc.c.p.bytesCounted()
	}
	return n, err
}

// sv2HandshakeTimeout bounds a client that connects and says nothing.
const sv2HandshakeTimeout = 10 * time.Second

func (p *Pool) serveSV2(c *conn) {
	defer p.wg.Done()
	_ = c.nc.SetDeadline(time.Now().Add(sv2HandshakeTimeout))
	nconn, err := noise.Server(countingConn{Conn: c.nc, c: c}, p.sv2cfg)
	if err != nil {
		p.log.WithField("conn", c.id).Warnf("poolsim: sv2 handshake with %s failed: %v", c.remote, err)
		c.shutdown()
		p.removeConn(c, fmt.Errorf("sv2 handshake: %w", err))
		return
	}
	_ = c.nc.SetDeadline(time.Time{})
	c.bytesOut.Add(noise.ActTwoSize)
	p.mu.Lock()
	c.sv2.nc = nconn
	p.eventLocked(c.id, "sv2-handshake", c.remote)
	p.signalLocked()
	p.mu.Unlock()
	for {
		var f sv2.Frame
		if f, err = nconn.ReadFrame(); err != nil {
			if errors.Is(err, noise.ErrTampered) {
				// The one line an operator needs: whose frame, and why the link ends.
				p.log.WithField("conn", c.id).Warnf("poolsim: %v; closing the connection", err)
			}
			break
		}
		m, derr := sv2.Decode(f)
		p.mu.Lock()
		c.sv2.in[f.MsgType]++
		if derr != nil {
			c.badLines++
			p.eventLocked(c.id, "sv2-bad-message", derr.Error())
		} else {
			p.handleSV2Locked(c, m)
		}
		p.signalLocked()
		closeNow := c.closeNow
		p.mu.Unlock()
		if closeNow {
			err = errCloseAfterShares
			break
		}
	}
	p.finish(c, err)
}

// sv2SendLocked seals msgs in order and queues them as one write. While the
// pool is silent nothing is sealed, so the nonces stay in step with what
// the peer receives.
func (p *Pool) sv2SendLocked(c *conn, reply bool, msgs ...sv2.Message) {
	if p.silent {
		for _, m := range msgs {
			c.suppressed += uint64(len(m.AppendPayload(nil)) + noise.EncryptedHeaderSize)
		}
		return
	}
	var b []byte
	for _, m := range msgs {
		var err error
		if b, err = c.sv2.nc.Seal(b, sv2.FrameOf(m)); err != nil {
			p.eventLocked(c.id, "sv2-seal-failed", err.Error())
			return
		}
		c.sv2.out[m.MsgType()]++
	}
	c.send(reply, b)
}

func (p *Pool) handleSV2Locked(c *conn, m sv2.Message) {
	s := c.sv2
	switch m := m.(type) {
	case *sv2.SetupConnection:
		if m.Protocol != sv2.ProtocolMining || m.MinVersion > sv2.Version || m.MaxVersion < sv2.Version {
			p.sv2SendLocked(c, true, &sv2.SetupConnectionError{ErrorCode: "unsupported-protocol"})
			p.eventLocked(c.id, "sv2-setup-refused", fmt.Sprintf("protocol %d versions %d..%d", m.Protocol, m.MinVersion, m.MaxVersion))
			return
		}
		s.setup = true
		c.subscribed = true
		c.userAgent = codec.FilterName("sv2/" + m.Vendor + "/" + m.Firmware)
		p.sv2SendLocked(c, true, &sv2.SetupConnectionSuccess{UsedVersion: sv2.Version})
		p.eventLocked(c.id, "sv2-setup", fmt.Sprintf("flags %#x vendor %q", m.Flags, m.Vendor))
	case *sv2.OpenExtendedMiningChannel:
		p.sv2OpenLocked(c, m.RequestID, m.UserIdentity, m.MaxTarget, false, int(m.MinExtranonceSize))
	case *sv2.OpenStandardMiningChannel:
		p.sv2OpenLocked(c, m.RequestID, m.UserIdentity, m.MaxTarget, true, 0)
	case *sv2.SubmitSharesExtended:
		p.countShareLocked(c)
		p.sv2ShareLocked(c, m.ChannelID, m.SequenceNumber, m.JobID, m.Extranonce, m.NTime, m.Nonce, m.Version, false)
	case *sv2.SubmitSharesStandard:
		p.countShareLocked(c)
		p.sv2ShareLocked(c, m.ChannelID, m.SequenceNumber, m.JobID, nil, m.NTime, m.Nonce, m.Version, true)
	case *sv2.CloseChannel:
		if ch := s.channels[m.ChannelID]; ch != nil {
			delete(s.channels, m.ChannelID)
			p.retireWorkerLocked(ch.w)
			p.eventLocked(c.id, "sv2-close-channel", fmt.Sprintf("%d %s", m.ChannelID, m.ReasonCode))
		}
	case *sv2.UpdateChannel:
		p.eventLocked(c.id, "sv2-update-channel", fmt.Sprintf("%d %g H/s", m.ChannelID, m.NominalHashRate))
	default:
		p.ignoreLocked(c, "sv2-ignored", sv2.MsgName(m.MsgType()))
	}
}

// sv2OpenLocked opens a channel with its own 4-byte extranonce1 (from the
// pool's EN1 space, so no two channels hash the same coinbase).
func (p *Pool) sv2OpenLocked(c *conn, req uint32, user string, maxTarget sv2.U256, standard bool, minEN int) {
	s := c.sv2
	fail := func(code string) {
		p.sv2SendLocked(c, true, &sv2.OpenMiningChannelError{RequestID: req, ErrorCode: code})
		p.eventLocked(c.id, "sv2-open-refused", code)
	}
	switch {
	case !s.setup:
		fail("no-setup-connection")
		return
	case minEN > p.cfg.EN2Size:
		fail(sv2.ErrOpenChannelExtranonceSize)
		return
	case p.authFail:
		fail(sv2.ErrOpenChannelUnknownUser)
		return
	}
	name := codec.FilterName(user)
	if name == "" {
		name = codec.DefaultWorkerName
	}
	en1 := p.serverID<<24 | p.en1Next&0xffffff
	p.en1Next = (p.en1Next + 1) & 0xffffff
	ch := &sv2Channel{id: s.nextID, standard: standard, en1: en1,
		en1b: [4]byte{byte(en1 >> 24), byte(en1 >> 16), byte(en1 >> 8), byte(en1)}}
	s.nextID++
	if c.subAccount == "" {
		if c.subAccount = subAccountOf(name); c.subAccount != "" {
			p.subAuth[c.subAccount]++
		}
	}
	_, part, _ := strings.Cut(name, ".")
	ch.w = p.newWorkerLocked(c, name, part, uint16(ch.id), false, c.userAgent)
	s.channels[ch.id] = ch
	c.authorized = true
	if c.user == "" {
		c.user = name
	}
	target := sv2.TargetFromDifficulty(p.startDiff)
	if limit := sv2.TargetToCodec(maxTarget); maxTarget != (sv2.U256{}) && bytes.Compare(limit[:], ch.w.steps[0].tgt[:]) < 0 {
		// The client's bound is harder than the start difficulty: honour it.
		target = maxTarget
		p.applyDiffLocked(ch.w, 0, sv2.Difficulty(target))
	}
	prefix := ch.en1b[:]
	if standard {
		ch.en2 = make([]byte, p.cfg.EN2Size)
		prefix = append(append([]byte{}, ch.en1b[:]...), ch.en2...)
		p.sv2SendLocked(c, true, &sv2.OpenStandardMiningChannelSuccess{RequestID: req, ChannelID: ch.id, Target: target, ExtranoncePrefix: prefix})
	} else {
		p.sv2SendLocked(c, true, &sv2.OpenExtendedMiningChannelSuccess{RequestID: req, ChannelID: ch.id, Target: target,
			ExtranonceSize: uint16(p.cfg.EN2Size), ExtranoncePrefix: prefix, HasGroupChannelID: true})
	}
	kind := "extended"
	if standard {
		kind = "standard"
	}
	p.eventLocked(c.id, "sv2-open", fmt.Sprintf("%s channel %d %s en1 %08x", kind, ch.id, name, en1))
	// The current job as a future job plus its prevhash, so mining starts.
	p.sv2JobLocked(c, ch, p.cur, true)
}

// sv2JobLocked sends job j to one channel; future jobs are followed by the
// SetNewPrevHash that activates them.
func (p *Pool) sv2JobLocked(c *conn, ch *sv2Channel, j *job, future bool) {
	parts, err := p.sv2PartsLocked(j)
	if err != nil {
		p.eventLocked(c.id, "sv2-job-failed", err.Error())
		return
	}
	id := uint32(j.seq)
	var minNTime *uint32
	if !future {
		nt := j.ntime
		minNTime = &nt
	}
	var msgs []sv2.Message
	if ch.standard {
		hj, err := p.hashJobLocked(j)
		if err != nil {
			p.eventLocked(c.id, "sv2-job-failed", err.Error())
			return
		}
		msgs = append(msgs, &sv2.NewMiningJob{ChannelID: ch.id, JobID: id, MinNTime: minNTime, Version: j.version,
			MerkleRoot: hj.MerkleRoot(ch.en1b[:], ch.en2)})
	} else {
		msgs = append(msgs, &sv2.NewExtendedMiningJob{ChannelID: ch.id, JobID: id, MinNTime: minNTime, Version: j.version,
			VersionRollingAllowed: true, MerklePath: parts.path, CoinbaseTxPrefix: parts.prefix, CoinbaseTxSuffix: parts.suffix})
	}
	if future {
		msgs = append(msgs, &sv2.SetNewPrevHash{ChannelID: ch.id, JobID: id, PrevHash: parts.prev, MinNTime: j.ntime, NBits: parts.nbits})
	}
	ch.jobsSent = true
	p.tot.notifies++
	p.sv2SendLocked(c, false, msgs...)
}

// sv2PublishLocked sends a newly published job to every channel of c,
// after any SetTarget vardiff decided for it.
func (p *Pool) sv2PublishLocked(c *conn, j *job, newBlock bool) {
	if len(c.sv2.pending) > 0 {
		p.sv2SendLocked(c, false, c.sv2.pending...)
		c.sv2.pending = nil
	}
	for _, ch := range c.sv2.channels {
		p.sv2JobLocked(c, ch, j, newBlock)
	}
}

// sv2PlanLocked is planDiffsLocked for an SV2 connection: retarget every
// channel and queue SetTarget for the next job.
func (p *Pool) sv2PlanLocked(c *conn, seq uint64, now time.Time, vardiff bool) {
	for _, ch := range c.sv2.channels {
		nd, ok := p.retargetLocked(ch.w, now, vardiff)
		if !ok {
			continue
		}
		p.applyDiffLocked(ch.w, seq, nd)
		c.sv2.pending = append(c.sv2.pending, &sv2.SetTarget{ChannelID: ch.id, MaximumTarget: sv2.TargetFromDifficulty(nd)})
		p.eventLocked(c.id, "sv2-set-target", fmt.Sprintf("channel %d difficulty %g before job seq %d", ch.id, nd, seq))
	}
}

// sv2ShareLocked validates a share with the pool's checks and answers it.
func (p *Pool) sv2ShareLocked(c *conn, chID, seq, jobID uint32, en []byte, ntime, nonce, version uint32, standard bool) {
	ch := c.sv2.channels[chID]
	if ch == nil || ch.standard != standard {
		p.dropLocked(c, fmt.Sprintf("share for unknown channel %d", chID))
		p.sv2SendLocked(c, true, &sv2.SubmitSharesError{ChannelID: chID, SequenceNumber: seq, ErrorCode: sv2.ErrInvalidChannelID})
		return
	}
	var j *job
	for i := len(p.jobs) - 1; i >= 0; i-- {
		if uint32(p.jobs[i].seq) == jobID {
			j = p.jobs[i]
			break
		}
	}
	en2 := ch.en2
	if !standard {
		en2 = en
	}
	var chk shareCheck
	switch {
	case j == nil:
		chk = rejected(codec.StatusJobNotFound)
	case len(en2) != p.cfg.EN2Size:
		chk = rejected(codec.StatusIllegalParams)
	default:
		chk = p.precheckLocked(ch.w, j, ch.en1, ch.en1b, beUint(en2), ntime, nonce, version^j.version, true, p.cfg.VersionMask)
	}
	status := p.judgeLocked(c, &chk, en2)
	p.recordLocked(c, ch.w, &chk, status)
	if status.Accepted() {
		p.sv2SendLocked(c, true, &sv2.SubmitSharesSuccess{ChannelID: chID, LastSequenceNumber: seq,
			NewSubmitsAcceptedCount: 1, NewSharesSum: uint64(max(chk.diff, 1))})
		return
	}
	p.sv2SendLocked(c, true, &sv2.SubmitSharesError{ChannelID: chID, SequenceNumber: seq, ErrorCode: sv2.ErrorCode(status)})
}

// SV2AuthorityKey is the authority key clients must configure (base58check
// via its String method); zero when SV2 mode is off.
func (p *Pool) SV2AuthorityKey() noise.AuthorityKey { return p.sv2auth }

// SV2Addr is the SV2 listener's address, "" when SV2 mode is off.
func (p *Pool) SV2Addr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sv2addr
}

// SendSV2Reconnect sends Reconnect (to host:port, empty and 0 meaning the
// same) on the SV2 connection with this Stats id; false if there is none.
func (p *Pool) SendSV2Reconnect(id uint64, host string, port uint16) bool {
	p.mu.Lock()
	c, ok := p.conns[id]
	if !ok || c.sv2 == nil || c.sv2.nc == nil {
		p.mu.Unlock()
		return false
	}
	p.sv2SendLocked(c, false, &sv2.Reconnect{NewHost: host, NewPort: port})
	p.eventLocked(id, "sv2-reconnect", fmt.Sprintf("%s:%d", host, port))
	p.signalLocked()
	p.mu.Unlock()
	c.flush()
	return true
}

// startSV2 prepares the keys and starts the listener (called by Start).
func (p *Pool) startSV2() error {
	auth, err := p.cfg.sv2Authority()
	if err != nil {
		return err
	}
	static, err := noise.GenerateKey()
	if err != nil {
		return err
	}
	p.sv2cfg = noise.ServerConfig{Static: static, Authority: auth, CertValidity: p.cfg.SV2CertValidity}
	if back := p.cfg.SV2CertBackdate; back > 0 {
		p.sv2cfg.Now = func() time.Time { return time.Now().Add(-back) }
	}
	p.sv2auth = noise.AuthorityKeyOf(auth)
	ln, err := net.Listen("tcp", p.cfg.SV2Listen)
	if err != nil {
		return fmt.Errorf("poolsim: listen for sv2 on %s: %w", p.cfg.SV2Listen, err)
	}
	p.sv2ln, p.sv2addr = ln, ln.Addr().String()
	p.wg.Add(1)
	go p.sv2AcceptLoop(ln)
	p.log.WithFields(logrus.Fields{"addr": p.sv2addr, "authority_pubkey": p.sv2auth.String()}).Info("poolsim sv2 listening")
	return nil
}
