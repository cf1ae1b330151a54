package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
)

// Pool protocols (config.Protocol*).
const (
	protoAgent    = config.ProtocolAgent
	protoStratum  = config.ProtocolStratum
	protoPerMiner = config.ProtocolStratumPerMiner
)

func protoOf(p msg.PoolAddr) string {
	switch p.Protocol {
	case protoStratum, protoPerMiner:
		return p.Protocol
	}
	return protoAgent
}

// sharedEN2 is the pool extranonce2 size below which miners cannot keep the
// agent layout: 4 bytes of session prefix ("0000SSSS") plus the miner's 4.
const sharedEN2 = 8

// maxPoolEN2 bounds what we accept from a pool (real pools use 4..8).
const maxPoolEN2 = 32

// stratumRing is how many recent jobs a stratum link can still take shares
// for. Miners keep 8 (miner.jobRing); per-miner links hold one ring each, so
// it stays small.
const stratumRing = 16

// stratumHS is what a plain Stratum handshake learned, and the link's
// extranonce state afterwards (set_extranonce changes it).
type stratumHS struct {
	EN1      string // pool extranonce1, hex
	EN2Size  int    // pool extranonce2 size, bytes
	Mask     uint32
	Diff     float64
	FirstJob *codec.Notify
	// Backlog holds what followed the first job during the handshake, in
	// order: *codec.Notify and stratumDiffEv values.
	Backlog []any
	User    string // the authorize name, quoted for submits
}

type stratumDiffEv struct{ d float64 }

// enMap is how miners' extranonces map onto the pool's for one job
// (docs/PROTOCOL.md §4.1, extended to plain Stratum pools in §10).
//
// Shared layout (pool EN2 size N ≥ 8), identical for agent and stratum links
// so that miners move between them without noticing:
//
//	coinb1' = coinb1 ‖ EN1_pool ‖ zeros(N−8)   EN1_miner = "0000SSSS", EN2_miner 4 bytes
//	EN2_pool = zeros(N−8) ‖ 0000SSSS ‖ EN2_miner
//
// Direct layout (stratum-per-miner, N < 8, the miner accepted
// mining.set_extranonce): the miner gets the pool's nonce space itself. Its
// EN2 is the last k = min(4, N) bytes of the pool's; X = EN1_pool ‖
// zeros(N−k); its EN1 is the last (up to 4) bytes of X and coinb1' =
// coinb1 ‖ the rest of X; EN2_pool = zeros(N−k) ‖ EN2_miner. With the usual
// 4-byte pool EN1 and N ≥ 4 the miner keeps a 4-byte EN1 and EN2, so
// plugins see the usual share fields; otherwise the hash-check copy of the
// job is left out.
type enMap struct {
	suffix   string // hex appended to coinb1 for miners
	pad      string // hex zeros at the front of EN2_pool
	withSID  bool   // EN2_pool carries the session id (shared layout)
	minerEN1 string // direct layout: the miner's EN1 ("" = its own 0000SSSS)
	minerEN2 int    // the miner's EN2 size
	noHash   bool   // plugins cannot recompute the hash (N < 4)
}

// sharedMap is the shared layout, or nil if the pool's EN2 is too small.
func sharedMap(en1 string, n int) *enMap {
	if n < sharedEN2 {
		return nil
	}
	pad := strings.Repeat("00", n-sharedEN2)
	return &enMap{suffix: en1 + pad, pad: pad, withSID: true, minerEN2: 4}
}

// directMap is the per-miner layout for small pool EN2 sizes, or nil when
// the pool leaves nothing for the miner's extranonce1 (no EN1, EN2 ≤ 4).
func directMap(en1 string, n int) *enMap {
	k := min(4, n)
	pad := strings.Repeat("00", n-k)
	x := en1 + pad
	if x == "" {
		return nil
	}
	cut := max(len(x)-8, 0)
	return &enMap{suffix: x[:cut], pad: pad, minerEN1: x[cut:], minerEN2: k, noHash: len(x)-cut != 8 || k != 4}
}

// controlMap is the layout of a per-miner control link's jobs, which never
// reach miners (the coordinator only uses them as templates).
func controlMap(en1 string, n int) *enMap {
	if m := sharedMap(en1, n); m != nil {
		return m
	}
	if m := directMap(en1, n); m != nil {
		return m
	}
	return &enMap{suffix: en1, minerEN2: 4, noHash: true}
}

// appendEN2 appends EN2_pool for a share, as hex.
func (m *enMap) appendEN2(dst []byte, sid uint16, en2 uint32) []byte {
	dst = append(dst, m.pad...)
	if m.withSID {
		dst = codec.AppendHex32(dst, uint32(sid))
	}
	if m.minerEN2 >= 4 {
		return codec.AppendHex32(dst, en2)
	}
	h := codec.AppendHex32(nil, en2)
	return append(dst, h[8-2*m.minerEN2:]...)
}

// jobRec is one job of a stratum link as the pool named it.
type jobRec struct {
	job    *msg.Job
	poolID []byte // the pool's job id as a JSON string
	m      *enMap
}

type stratumParams struct {
	Pool             msg.PoolAddr
	Stats            *stats.Listener // counts the link's bytes; nil: not counted
	User             string
	UserAgent        string
	MinEN2           int // refuse pools whose extranonce2 is smaller (aggregated links: 8)
	Proto            string
	DialTimeout      time.Duration
	HandshakeTimeout time.Duration
	MaxLine          int
	BadJob           func(pool string, err error) // a malformed job was skipped
}

// StratumUserAgent derives the user agent stratum links subscribe with from
// the agent's: it must not start with "btccom-agent/", or a btcpool sserver
// would expect the BTCAgent protocol on the link.
func StratumUserAgent(agentUA string) string {
	v := strings.TrimPrefix(agentUA, codec.AgentUserAgentPrefix)
	if v == agentUA || v == "" {
		v = "3"
	}
	return "btcagent-proxy/" + v
}

// minerUserAgent is what a per-miner link subscribes with: the miner's own
// client name, so the pool sees the real firmware, unless it would pass for
// an agent.
func minerUserAgent(ua, fallback string) string {
	if ua == "" || strings.HasPrefix(strings.ToLower(ua), codec.AgentUserAgentPrefix) {
		return fallback
	}
	return ua
}

// workerPart turns a listener name into something every pool accepts after
// the dot of "<user>.<worker>": [A-Za-z0-9_-], anything else becomes '_'.
func workerPart(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "agent"
	}
	return string(b)
}

// jsonQuote quotes s as a JSON string. Invalid UTF-8 becomes U+FFFD and
// control characters \u escapes; <, > and & stay as they are, since pools
// with hand-written parsers may not decode \u escapes in worker names.
func jsonQuote(s string) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// dialConn connects to the pool; with st set, the connection counts its
// bytes into st.
func dialConn(ctx context.Context, p msg.PoolAddr, timeout time.Duration, st *stats.Listener) (net.Conn, string, error) {
	name := poolName(p)
	if p.Proxy != nil {
		return dialViaProxy(ctx, p, name, timeout)
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 60 * time.Second}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// TCP first, then TLS: a failure is named by the stage it happened in,
	// never by the wording of the error.
	conn, err := d.DialContext(dctx, "tcp", name)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return nil, name, &HandshakeError{Pool: name, Reason: "DNS lookup failed", Err: err}
		}
		return nil, name, &HandshakeError{Pool: name, Reason: "connect failed", Err: err}
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	if st != nil {
		conn = countConn{Conn: conn, st: st}
	}
	if p.TLS {
		tc := tls.Client(conn, poolTLS(p))
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return nil, name, &HandshakeError{Pool: name, Reason: "TLS handshake failed", Err: err}
		}
		conn = tc
	}
	return conn, name, nil
}

func poolTLS(p msg.PoolAddr) *tls.Config {
	return &tls.Config{ServerName: p.Host, InsecureSkipVerify: p.TLSSkipVerify, MinVersion: tls.VersionTLS12}
}

// dialViaProxy opens the connection through the pool's proxies (TLS with
// the pool runs inside the tunnel). The failure's reason is the plan's
// summary, so that repeated failures group in the log by cause.
func dialViaProxy(ctx context.Context, p msg.PoolAddr, name string, timeout time.Duration) (net.Conn, string, error) {
	var tlsCfg *tls.Config
	if p.TLS {
		tlsCfg = poolTLS(p)
	}
	conn, err := p.Proxy.Dial(ctx, name, timeout, tlsCfg)
	if err != nil {
		reason := "proxy connect failed"
		var se interface{ Summary() string }
		if errors.As(err, &se) {
			reason = se.Summary()
		}
		return nil, name, &HandshakeError{Pool: name, Reason: reason, Err: err}
	}
	return conn, name, nil
}

// dialStratum connects and runs a plain Stratum V1 handshake: configure
// (version rolling, mask ffffffff), subscribe, extranonce.subscribe and
// authorize, pipelined and matched by id. It returns once the first job
// arrived. A pool whose extranonce2 is smaller than MinEN2 is refused.
func dialStratum(ctx context.Context, p stratumParams) (*link, error) {
	conn, name, err := dialConn(ctx, p.Pool, p.DialTimeout, p.Stats)
	if err != nil {
		return nil, err
	}
	l := &link{conn: conn, pool: p.Pool, name: name, proto: p.Proto}
	l.reader = codec.NewReader(conn, p.MaxLine, false)
	_ = conn.SetDeadline(time.Now().Add(p.HandshakeTimeout))
	hs, err := stratumHandshake(conn, l.reader, p, name)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	l.shs = hs
	return l, nil
}

func stratumHandshake(conn net.Conn, r *codec.Reader, p stratumParams, name string) (*stratumHS, error) {
	user := jsonQuote(p.User)
	var req []byte
	req = codec.AppendRequest(req, []byte(`"conf"`), codec.MethodConfigure, `[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]`)
	req = codec.AppendRequest(req, []byte(`"sub"`), codec.MethodSubscribe, `[`+string(jsonQuote(p.UserAgent))+`]`)
	req = codec.AppendRequest(req, []byte(`"xsub"`), codec.MethodExtranonceSub, `[]`)
	req = codec.AppendRequest(req, []byte(`"auth"`), codec.MethodAuthorize, `[`+string(user)+`,"x"]`)
	if _, err := conn.Write(req); err != nil {
		return nil, &HandshakeError{Pool: name, Reason: "write handshake", Err: err}
	}
	hs := &stratumHS{Diff: 1, User: string(user)} // Stratum's difficulty before any set_difficulty is 1
	var gotSub, gotAuth bool
	var bad skipped
	var rq codec.Request
	for !(gotSub && gotAuth && hs.FirstJob != nil) {
		c, err := r.Next()
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				switch {
				case !gotSub:
					return nil, &HandshakeError{Pool: name, Reason: "no subscribe reply in time"}
				case !gotAuth:
					return nil, &HandshakeError{Pool: name, Reason: "no authorize reply in time"}
				}
				return nil, bad.noJob(name)
			}
			return nil, &HandshakeError{Pool: name, Reason: "connection lost during handshake", Err: err}
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			return nil, &HandshakeError{Pool: name, Reason: "malformed JSON from pool", Err: err}
		}
		if rq.IsResponse() {
			switch string(rq.ID) {
			case `"sub"`:
				en1, size, err := parseStratumSubscribe(&rq)
				if err != nil {
					return nil, &HandshakeError{Pool: name, Reason: err.Error()}
				}
				if size < p.MinEN2 {
					return nil, &HandshakeError{Pool: name, Reason: fmt.Sprintf("extranonce2 size is %d; protocol %q needs at least %d (4 bytes of miner session prefix + 4 for the miner); use protocol %q for this pool", size, p.Proto, p.MinEN2, protoPerMiner)}
				}
				hs.EN1, hs.EN2Size, gotSub = en1, size, true
			case `"auth"`:
				if string(rq.Result.Raw) != "true" {
					return nil, &HandshakeError{Pool: name, Reason: fmt.Sprintf("authorize refused for user %q: %s", p.User, errText(&rq))}
				}
				gotAuth = true
			case `"conf"`:
				if hs.Mask == 0 {
					hs.Mask = parseConfigureMask(rq.Result.Raw)
				}
			}
			continue
		}
		switch string(rq.Method) {
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				hs.Mask = v
			}
		case codec.MethodSetDifficulty:
			if d, err := strconv.ParseFloat(string(rq.Param(0).Raw), 64); err == nil && d > 0 {
				if hs.FirstJob == nil {
					hs.Diff = d
				} else {
					hs.Backlog = append(hs.Backlog, stratumDiffEv{d})
				}
			}
		case codec.MethodNotify:
			n, err := checkJob(&rq, false)
			if err != nil {
				bad.add(name, err, p.BadJob)
				continue
			}
			if hs.FirstJob == nil {
				hs.FirstJob = n
			} else {
				hs.Backlog = append(hs.Backlog, n)
			}
		}
	}
	return hs, nil
}

// parseStratumSubscribe reads [subscriptions, extranonce1, extranonce2_size];
// unlike the agent handshake it accepts any extranonce1 length.
func parseStratumSubscribe(r *codec.Request) (string, int, error) {
	if r.Result.Kind != codec.KindArray {
		return "", 0, fmt.Errorf("subscribe refused: %s", errText(r))
	}
	var res codec.Request
	if err := codec.ScanRequest(append(append([]byte(`{"params":`), r.Result.Raw...), '}'), &res); err != nil {
		return "", 0, fmt.Errorf("subscribe reply has an unexpected shape: %w", err)
	} else if res.NParams < 3 {
		return "", 0, fmt.Errorf("subscribe reply has %d elements, want 3", res.NParams)
	}
	en1, err := res.Param(1).String()
	if err != nil || len(en1) > 32 || (en1 != "" && !codec.IsHex(en1)) {
		return "", 0, fmt.Errorf("subscribe reply: extranonce1 %q is not hex", en1)
	}
	size, err := strconv.Atoi(string(res.Param(2).Raw))
	if err != nil || size < 1 || size > maxPoolEN2 {
		return "", 0, fmt.Errorf("subscribe reply: bad extranonce2 size %s", res.Param(2).Raw)
	}
	return strings.ToLower(en1), size, nil
}

// messages from stratum reader goroutines
type (
	stratumDiff struct {
		gen uint64
		d   float64
	}
	stratumReply struct {
		gen    uint64
		id     uint64
		status codec.Status
		text   string
	}
	stratumExtranonce struct {
		gen  uint64
		en1  string
		size int
	}
	stratumReconnect struct{ gen uint64 }
)

// stratumReadLoop turns the pool's lines into actor messages.
func (s *Slot) stratumReadLoop(l *link, gen uint64) {
	root, self := s.env.Root, s.self
	r := l.reader
	clk := newJobClock(l.conn, s.env.DeadAfter)
	r.SetSource(clk)
	var rq codec.Request
	for {
		c, ok := nextChunk(r, l, clk, gen, root, self)
		if !ok {
			return
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			s.log().WithError(err).Warn("malformed JSON from pool; ignored")
			continue
		}
		if string(rq.Method) != codec.MethodNotify {
		}
		if rq.IsResponse() {
			id, err := strconv.ParseUint(string(rq.ID), 10, 64)
			if err != nil {
				continue // a late handshake reply ("xsub", "conf")
			}
			status, text := stratumVerdict(&rq)
			root.Send(self, &stratumReply{gen: gen, id: id, status: status, text: text})
			continue
		}
		switch string(rq.Method) {
		case codec.MethodNotify:
			n, err := checkJob(&rq, false)
			if err != nil {
				clk.badJob(err)
				s.badJob(l.name, err)
				continue
			}
			clk.job()
			root.Send(self, &poolJob{gen: gen, n: n, at: time.Now()})
		case codec.MethodSetDifficulty:
			if d, err := strconv.ParseFloat(string(rq.Param(0).Raw), 64); err == nil && d > 0 {
				root.Send(self, &stratumDiff{gen: gen, d: d})
			}
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				root.Send(self, &poolMask{gen: gen, mask: v})
			}
		case codec.MethodSetExtranonce:
			en1, err := rq.Param(0).String()
			size, err2 := strconv.Atoi(string(rq.Param(1).Raw))
			if err != nil || err2 != nil || (en1 != "" && !codec.IsHex(en1)) || size < 1 || size > maxPoolEN2 {
				s.log().WithField("params", string(c.Line)).Warn("bad mining.set_extranonce from pool; ignored")
				continue
			}
			root.Send(self, &stratumExtranonce{gen: gen, en1: strings.ToLower(en1), size: size})
		case codec.MethodReconnect:
			// Host and port in the params are ignored on purpose: the agent
			// only ever connects to the pools in its configuration.
			root.Send(self, &stratumReconnect{gen: gen})
		}
	}
}

// stratumVerdict reads a submit reply: result true is an accept, anything
// else a reject with the pool's code (Stratum codes 20..25 match btcpool's).
func stratumVerdict(rq *codec.Request) (codec.Status, string) {
	if string(rq.Result.Raw) == "true" {
		return codec.StatusAccept, ""
	}
	if rq.Error.Kind == codec.KindArray {
		var e []json.RawMessage
		if json.Unmarshal(rq.Error.Raw, &e) == nil && len(e) >= 1 {
			code, _ := strconv.ParseInt(string(e[0]), 10, 32)
			text := ""
			if len(e) >= 2 {
				_ = json.Unmarshal(e[1], &text)
			}
			return codec.Status(code), text
		}
	}
	if rq.Error.Kind == codec.KindObject {
		var e struct {
			Code    int32  `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(rq.Error.Raw, &e) == nil {
			return codec.Status(e.Code), e.Message
		}
	}
	return codec.StatusRejectNoReason, "rejected by pool: " + string(bytes.TrimSpace(rq.Error.Raw))
}

// appendStratumSubmit appends one mining.submit line for a share.
func appendStratumSubmit(dst []byte, id uint64, user []byte, rec *jobRec, sid uint16, en2, ntime, nonce, bits uint32, hasVer bool) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, id, 10)
	dst = append(dst, `,"method":"mining.submit","params":[`...)
	dst = append(dst, user...)
	dst = append(dst, ',')
	dst = append(dst, rec.poolID...)
	dst = append(dst, `,"`...)
	dst = rec.m.appendEN2(dst, sid, en2)
	dst = append(dst, `","`...)
	dst = codec.AppendHex32(dst, ntime)
	dst = append(dst, `","`...)
	dst = codec.AppendHex32(dst, nonce)
	dst = append(dst, '"')
	if hasVer {
		dst = append(dst, `,"`...)
		dst = codec.AppendHex32(dst, bits)
		dst = append(dst, '"')
	}
	return append(dst, "]}\n"...)
}
