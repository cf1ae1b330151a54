package upstream

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/btcagent/btcagent/config"
	"github.com/sirupsen/logrus"
)

// Stratum V2 to the pool (docs/SV2.md): SV1 miners behind the agent mine
// on extended channels of one encrypted, authenticated SV2 connection per
// link.
//
//   - sv2: the link opens one extended channel, named like an aggregated
//     stratum link ("<pool user>.<listener>"), for all its miners. Each
//     miner keeps the agent layout (EN1 "0000SSSS", EN2 4 bytes), which
//     fills the last 8 bytes of the channel's extranonce (enmap.go), so
//     miners move between agent, stratum and sv2 links without noticing.
//   - sv2-per-miner: that channel becomes a control channel (it proves the
//     pool up and gives the coordinator its job template, like a
//     stratum-per-miner control connection), and every miner gets its own
//     extended channel on the same connection, opened as "<pool
//     user>.<worker>", so the pool sees each worker (proto_sv2_miner.go).
//
// Frames are sealed on the slot goroutine, in the order they are written
// (each uses the next nonce), and written with link.send; the link's reader
// is the connection's only reader. Shares are answered with the pool's own
// verdicts, never before (proto_sv2_link.go).

func init() {
	register(config.ProtocolSV2, sv2Protocol{})
	register(config.ProtocolSV2PerMiner, sv2Protocol{perMiner: true})
}

type sv2Protocol struct{ perMiner bool }

func (p sv2Protocol) name() string {
	if p.perMiner {
		return config.ProtocolSV2PerMiner
	}
	return config.ProtocolSV2
}

// sv2MinEN is the smallest channel extranonce a miner fits in: its session
// prefix "0000SSSS" and its own 4 bytes, as on agent links.
const sv2MinEN = sharedEN2

// What the channels announce as nominal hash rate: the pool derives its
// first target from it and its vardiff takes over after a few shares.
const (
	sv2LinkHashRate  = 1e15 // an aggregated channel: a rack of ASICs
	sv2MinerHashRate = 1e14 // one ASIC
)

// sv2MaxTarget leaves the choice of difficulty to the pool.
var sv2MaxTarget = func() (t sv2.U256) {
	for i := range t {
		t[i] = 0xff
	}
	return t
}()

// bip320Mask is the version-rolling mask SV2 implies when the pool does not
// require a fixed version (SV2 negotiates no mask).
const bip320Mask = 0x1fffe000

// errWireGone ends a miner's channel when its connection goes.
var errWireGone = errors.New("the SV2 connection of the miner's channel closed")

// sv2Wire is one SV2 connection: its Noise session, the frames sealed but
// not written yet and its channels. The slot actor owns it; only the main
// link's reader reads from nc.
type sv2Wire struct {
	nc       *noise.Conn
	rc       *sv2ReadConn
	main     *link
	perMiner bool
	mask     uint32
	tofu     bool
	peer     [32]byte
	chans    map[uint32]*sv2Link // open channels by id, the main one included
	opening  map[uint32]*sv2Open // per-miner channel opens awaiting the pool's answer, by request id
	nextReq  uint32
	out      []byte // sealed frames not written yet
	plain    []byte // the frame being sealed
	armed    bool   // a flush is scheduled
	closed   bool
}

// sv2Flush is the flush window's end (linkEvent of the main link).
type sv2Flush struct{}

// sv2In is a message the reader passes to the slot, with when it arrived.
type sv2In struct {
	m  sv2.Message
	at time.Time
}

// seal appends m, encrypted, to the output.
func (w *sv2Wire) seal(m sv2.Message) error {
	if w.closed {
		return errWireGone
	}
	w.plain = sv2.AppendFrame(w.plain[:0], m)
	f, err := sv2.ParseFrame(w.plain)
	if err == nil {
		w.out, err = w.nc.Seal(w.out, f)
	}
	if err != nil {
		// A frame that could not be sealed leaves a gap in the nonces: the
		// connection cannot go on. Its reader reports this as the cause.
		err = fmt.Errorf("sv2: seal %s: %w", sv2.MsgName(m.MsgType()), err)
		w.main.wErr.Store(&err)
		_ = w.main.conn.Close()
	}
	return err
}

// flush writes the sealed frames.
func (w *sv2Wire) flush() {
	if len(w.out) == 0 || w.closed {
		return
	}
	w.main.send(w.out) // copies what the socket does not take at once
	w.out = w.out[:0]
	if cap(w.out) > keepCap {
		w.out = nil
	}
}

// later flushes at the end of the flush window, so that the shares of a
// window leave in one write.
func (w *sv2Wire) later(s *Slot) {
	switch {
	case s.env.FlushInterval <= 0:
		w.flush()
	case !w.armed:
		w.armed = true
		s.after(s.env.FlushInterval, &linkEvent{gen: w.main.gen, ev: sv2Flush{}})
	}
}

// closeChannel tells the pool a channel is no longer used.
func (w *sv2Wire) closeChannel(id uint32, reason string) {
	delete(w.chans, id)
	if w.seal(&sv2.CloseChannel{ChannelID: id, ReasonCode: reason}) == nil {
		w.flush()
	}
}

// sv2ReadConn is the connection as the Noise session reads it: after the
// handshake, reads go through the link's job clock (dead_after).
type sv2ReadConn struct {
	net.Conn
	clk *jobClock // set by the reader goroutine before its first read
}

func (c *sv2ReadConn) Read(p []byte) (int, error) {
	if c.clk != nil {
		return c.clk.Read(p)
	}
	return c.Conn.Read(p)
}

// sv2ChanConn stands for the connection in a miner's channel link: closing
// the channel's link must not close the connection the others share.
type sv2ChanConn struct{ net.Conn }

func (sv2ChanConn) Close() error { return nil }

// sv2ClientConfig is the Noise client setup for pool p: its authority key,
// or trust on first use when the configuration asks for it.
func sv2ClientConfig(p msg.PoolAddr) (noise.ClientConfig, error) {
	switch {
	case p.AuthorityPubkey != "":
		k, err := noise.ParseAuthorityKey(p.AuthorityPubkey)
		if err != nil {
			return noise.ClientConfig{}, fmt.Errorf("authority_pubkey: %w", err)
		}
		return noise.ClientConfig{Authority: &k}, nil
	case p.SV2TOFU:
		return noise.ClientConfig{TOFU: true}, nil
	}
	return noise.ClientConfig{}, errors.New("no authority_pubkey and sv2_tofu is off: an SV2 pool is never used unauthenticated by default")
}

// noiseReason names a failed Noise handshake for the log; failures with the
// same reason are logged once (see onFailed).
func noiseReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, noise.ErrWrongAuthority):
		return "SV2 handshake refused: the pool's certificate is not signed by authority_pubkey"
	case errors.Is(err, noise.ErrCertExpired):
		return "SV2 handshake refused: the pool's certificate has expired"
	case errors.Is(err, noise.ErrCertNotYetValid):
		return "SV2 handshake refused: the pool's certificate is not valid yet (check the clocks)"
	case errors.Is(err, noise.ErrBadCertificate):
		return "SV2 handshake refused: malformed certificate"
	case errors.As(err, &ne) && ne.Timeout():
		return "no SV2 (Noise) handshake answer in time"
	}
	return "SV2 (Noise) handshake failed"
}

func (p sv2Protocol) dial(ctx context.Context, s *Slot, pa msg.PoolAddr, user string) (*link, error) {
	ccfg, err := sv2ClientConfig(pa)
	if err != nil {
		return nil, &HandshakeError{Pool: poolName(pa), Reason: err.Error()}
	}
	conn, name, err := dialConn(ctx, pa, s.env.DialTimeout, s.env.Stats)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(s.env.HandshakeTimeout))
	rc := &sv2ReadConn{Conn: conn}
	nc, err := noise.Client(rc, ccfg)
	if err != nil {
		_ = conn.Close()
		return nil, &HandshakeError{Pool: name, Reason: noiseReason(err), Err: err}
	}
	peer := nc.Peer()
	if ccfg.TOFU {
		// Nothing proves who answered: say so on every connect, with the key
		// an operator can compare with the one the pool publishes.
		s.log().WithFields(logrus.Fields{"pool": name, "server_key": hex.EncodeToString(peer.StaticKey[:]),
			"cert_not_valid_after": time.Unix(int64(peer.Certificate.NotValidAfter), 0).UTC().Format(time.RFC3339)}).
			Warn("SV2 pool NOT authenticated: sv2_tofu = true accepted the key it presented; set authority_pubkey to verify the pool")
	}
	h, err := s.sv2Handshake(nc, pa, name, s.linkUser(user), p.name())
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	w := &sv2Wire{nc: nc, rc: rc, perMiner: p.perMiner, tofu: ccfg.TOFU, peer: peer.StaticKey, nextReq: 1,
		chans: map[uint32]*sv2Link{}, opening: map[uint32]*sv2Open{}}
	if h.flags&sv2.FlagRequiresFixedVersion == 0 {
		w.mask = bip320Mask
	}
	t := newSV2Link(w, h.ch, h.prefix, h.size, h.group, sv2.Difficulty(h.target))
	t.control = p.perMiner
	t.backlog = h.backlog
	l := &link{conn: conn, pool: pa, name: name, protocol: p.name(), proto: t}
	w.main = l
	return l, nil
}

// sv2Hello is what an SV2 handshake learnt.
type sv2Hello struct {
	flags   uint32 // SetupConnection.Success flags
	ch      uint32
	group   uint32
	prefix  []byte
	size    int
	target  sv2.U256
	backlog []sv2.Message // what followed the channel's opening, in order; it holds a first job
}

// sv2Handshake sets the connection up for mining, opens the link's channel
// as user and reads until the channel has an active job. It runs on the
// dial goroutine.
func (s *Slot) sv2Handshake(nc *noise.Conn, pa msg.PoolAddr, pool, user, protocol string) (*sv2Hello, error) {
	fail := func(reason string, err error) (*sv2Hello, error) {
		return nil, &HandshakeError{Pool: pool, Reason: reason, Err: err}
	}
	setup := &sv2.SetupConnection{Protocol: sv2.ProtocolMining, MinVersion: sv2.Version, MaxVersion: sv2.Version,
		Flags: sv2.FlagRequiresVersionRolling, EndpointHost: pa.Host, EndpointPort: uint16(pa.Port),
		Vendor: "btcagent", Firmware: StratumUserAgent(s.env.UserAgent), DeviceID: s.env.Listener}
	if err := nc.WriteMessage(setup); err != nil {
		return fail("write SetupConnection", err)
	}
	h := &sv2Hello{}
	var jobs sv2Jobs
	var bad skipped
	stage := "SetupConnection"
	for {
		f, err := nc.ReadFrame()
		if err != nil {
			var ne net.Error
			switch {
			case !errors.As(err, &ne) || !ne.Timeout():
				return fail("connection lost during the SV2 handshake", err)
			case stage == "job":
				return nil, bad.noJob(pool)
			}
			return fail("no "+stage+" answer in time", nil)
		}
		m, err := sv2.Decode(f)
		if err != nil {
			bad.add(pool, err, s.badJob)
			continue
		}
		switch m := m.(type) {
		case *sv2.SetupConnectionSuccess:
			h.flags = m.Flags
			stage = "OpenExtendedMiningChannel"
			open := &sv2.OpenExtendedMiningChannel{RequestID: 1, UserIdentity: user, NominalHashRate: sv2LinkHashRate,
				MaxTarget: sv2MaxTarget, MinExtranonceSize: sv2MinEN}
			if err := nc.WriteMessage(open); err != nil {
				return fail("write OpenExtendedMiningChannel", err)
			}
		case *sv2.SetupConnectionError:
			return fail("SetupConnection refused: "+m.ErrorCode, nil)
		case *sv2.OpenMiningChannelError:
			return fail(fmt.Sprintf("channel refused for user %q: %s", user, m.ErrorCode), nil)
		case *sv2.OpenExtendedMiningChannelSuccess:
			if m.RequestID != 1 || stage != "OpenExtendedMiningChannel" {
				continue
			}
			if m.ExtranonceSize < sv2MinEN {
				return fail(fmt.Sprintf("channel extranonce_size is %d; protocol %q needs at least %d (4 bytes of miner session prefix + 4 for the miner)", m.ExtranonceSize, protocol, sv2MinEN), nil)
			}
			h.ch, h.group, h.prefix, h.size, h.target = m.ChannelID, m.GroupChannelID, m.ExtranoncePrefix, int(m.ExtranonceSize), m.Target
			stage = "job"
		case *sv2.CloseChannel:
			if stage == "job" && m.ChannelID == h.ch {
				return fail("the pool closed the channel at once: "+m.ReasonCode, nil)
			}
		default:
			if stage != "job" {
				continue
			}
			h.backlog = append(h.backlog, m)
			if !h.concerns(m) {
				continue
			}
			if n, _, err := jobs.add(m); err != nil {
				bad.add(pool, err, s.badJob)
			} else if n != nil {
				return h, nil
			}
		}
	}
}

// concerns reports whether a job message is for the handshake's channel.
func (h *sv2Hello) concerns(m sv2.Message) bool {
	var id uint32
	switch m := m.(type) {
	case *sv2.NewExtendedMiningJob:
		id = m.ChannelID
	case *sv2.SetNewPrevHash:
		id = m.ChannelID
	default:
		return false
	}
	return id == h.ch || (h.group != 0 && id == h.group)
}

// ---- reader side ----

// sv2Read is the connection's reader goroutine: it decrypts and decodes
// frames and hands them to the slot; jobs of the main channel keep the link
// alive (dead_after).
func (s *Slot) sv2Read(l *link, w *sv2Wire, mainCh, mainGroup uint32) {
	clk := newJobClock(l.conn, s.env.DeadAfter)
	w.rc.clk = clk
	for {
		f, err := w.nc.ReadFrame()
		if err == nil {
			err = s.sv2Frame(l, clk, f, mainCh, mainGroup)
		}
		if err != nil {
			// A failed write is what closed the socket, so it is the cause.
			if werr := l.wErr.Load(); werr != nil {
				err = *werr
			} else {
				err = clk.explain(err)
			}
			_ = l.conn.Close()
			s.post(&linkDown{gen: l.gen, err: err})
			return
		}
	}
}

// sv2Frame handles one frame on the reader; an error ends the link.
func (s *Slot) sv2Frame(l *link, clk *jobClock, f sv2.Frame, mainCh, mainGroup uint32) error {
	m, err := sv2.Decode(f)
	if err != nil {
		if f.MsgType == sv2.TypeNewExtendedMiningJob || f.MsgType == sv2.TypeSetNewPrevHash {
			clk.badJob(err)
			s.badJob(l.name, err)
			return nil
		}
		s.limited("sv2-frame", poolFields(l), "malformed SV2 message from pool; ignored: "+err.Error())
		return nil
	}
	main := func(id uint32) bool { return id == mainCh || (mainGroup != 0 && id == mainGroup) }
	switch m := m.(type) {
	case *sv2.NewExtendedMiningJob:
		if main(m.ChannelID) {
			clk.job()
		}
	case *sv2.SetNewPrevHash:
		if main(m.ChannelID) {
			clk.job()
		}
	case *sv2.Reconnect:
		// Host and port are ignored on purpose: the agent only ever
		// connects to the pools in its configuration.
		s.post(&poolReconnect{gen: l.gen})
		return nil
	case *sv2.CloseChannel:
		if m.ChannelID == mainCh {
			return fmt.Errorf("the pool closed the link's channel %d: %s", m.ChannelID, m.ReasonCode)
		}
	case *sv2.Unknown:
		return nil // extensions we did not ask for
	}
	s.postLink(l, sv2In{m: m, at: time.Now()})
	return nil
}
