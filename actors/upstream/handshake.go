package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
)

// The JSON handshakes (agent and plain Stratum) share one driver: the
// requests are written at once (pipelined) and the replies matched by id,
// whatever their order; the pool's notifications are collected as they
// come. A handshake is done when every awaited reply and a valid first job
// have arrived; on the deadline it fails naming the first thing missing.

// hello is what a handshake learned.
type hello struct {
	EN1      string // pool extranonce1, hex
	EN2Size  int    // pool extranonce2 size, bytes
	Mask     uint32 // granted version-rolling mask
	Diff     float64
	Subres   bool // the pool sends SUBMIT_RESPONSE (agent)
	FirstJob *codec.Notify
	// Backlog holds what followed the first job, in order: *codec.Notify
	// and diffEv values.
	Backlog []any
}

type diffEv struct{ d float64 }

// await is one thing a handshake waits for: a reply by id, or (id "") the
// first valid job. what names it in the timeout error.
type await struct {
	id   string
	what string
}

// handshake is one handshake in progress.
type handshake struct {
	pool   string
	user   string  // the authorize name, for the refusal's text
	req    []byte  // the pipelined requests
	awaits []await // in the order a timeout names them
	// reply handles the reply to request id; an error refuses the pool.
	reply func(id string, rq *codec.Request, h *hello) error
	// checkJob validates a mining.notify.
	checkJob func(rq *codec.Request) (*codec.Notify, error)
	// finish checks the whole result (nil: nothing to check).
	finish func(h *hello) error
	badJob func(pool string, err error)
}

// run writes the requests and reads until the handshake is done.
func (hs *handshake) run(conn net.Conn, r *codec.Reader) (*hello, error) {
	if _, err := conn.Write(hs.req); err != nil {
		return nil, &HandshakeError{Pool: hs.pool, Reason: "write handshake", Err: err}
	}
	h := &hello{}
	got := map[string]bool{}
	var bad skipped
	var rq codec.Request
	for !hs.done(got, h) {
		c, err := r.Next()
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				return nil, hs.missing(got, h, &bad)
			}
			return nil, &HandshakeError{Pool: hs.pool, Reason: "connection lost during handshake", Err: err}
		}
		if c.IsFrame {
			// SET_DIFF before any miner is registered carries nothing for us;
			// any other frame before authorize is a protocol oddity we skip.
			continue
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			return nil, &HandshakeError{Pool: hs.pool, Reason: "malformed JSON from pool", Err: err}
		}
		if rq.IsResponse() {
			id := strings.Trim(string(rq.ID), `"`)
			if err := hs.common(id, &rq, h); err != nil {
				return nil, &HandshakeError{Pool: hs.pool, Reason: err.Error()}
			}
			got[id] = true
			continue
		}
		switch string(rq.Method) {
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				h.Mask = v
			}
		case codec.MethodSetDifficulty:
			// Stratum's difficulty applies to the jobs that follow it.
			if d, err := strconv.ParseFloat(string(rq.Param(0).Raw), 64); err == nil && d > 0 {
				if h.FirstJob == nil {
					h.Diff = d
				} else {
					h.Backlog = append(h.Backlog, diffEv{d})
				}
			}
		case codec.MethodNotify:
			n, err := hs.checkJob(&rq)
			if err != nil {
				bad.add(hs.pool, err, hs.badJob)
				continue
			}
			if h.FirstJob == nil {
				h.FirstJob = n
			} else {
				h.Backlog = append(h.Backlog, n)
			}
		}
	}
	if hs.finish != nil {
		if err := hs.finish(h); err != nil {
			return nil, &HandshakeError{Pool: hs.pool, Reason: err.Error()}
		}
	}
	return h, nil
}

// common handles the replies every JSON handshake has (authorize with id
// "auth", configure with id "conf") and gives the rest to the protocol.
func (hs *handshake) common(id string, rq *codec.Request, h *hello) error {
	switch id {
	case "auth":
		if string(rq.Result.Raw) != "true" {
			return fmt.Errorf("authorize refused for user %q: %s", hs.user, errText(rq))
		}
		return nil
	case "conf":
		if h.Mask == 0 {
			h.Mask = parseConfigureMask(rq.Result.Raw)
		}
		return nil
	}
	return hs.reply(id, rq, h)
}

func (hs *handshake) done(got map[string]bool, h *hello) bool {
	for _, a := range hs.awaits {
		if (a.id == "" && h.FirstJob == nil) || (a.id != "" && !got[a.id]) {
			return false
		}
	}
	return true
}

func (hs *handshake) missing(got map[string]bool, h *hello, bad *skipped) error {
	for _, a := range hs.awaits {
		switch {
		case a.id == "" && h.FirstJob == nil:
			return bad.noJob(hs.pool)
		case a.id != "" && !got[a.id]:
			return &HandshakeError{Pool: hs.pool, Reason: "no " + a.what + " reply in time"}
		}
	}
	return &HandshakeError{Pool: hs.pool, Reason: "handshake timed out"}
}

// dialHandshake connects to pool p and runs hs on the new connection with
// the handshake timeout as its deadline.
func (s *Slot) dialHandshake(ctx context.Context, p msg.PoolAddr, protocol string, frames bool, hs *handshake) (*link, *hello, error) {
	conn, name, err := dialConn(ctx, p, s.env.DialTimeout, s.env.Stats)
	if err != nil {
		return nil, nil, err
	}
	hs.pool = name
	l := newLink(conn, p, name, protocol, s.env.MaxLine, frames)
	_ = conn.SetDeadline(time.Now().Add(s.env.HandshakeTimeout))
	h, err := hs.run(conn, l.reader)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	return l, h, nil
}

// errText is the pool's error of a reply, for refusals.
func errText(r *codec.Request) string {
	if r.Error.Kind == codec.KindInvalid || r.Error.Kind == codec.KindNull {
		return "no reason given"
	}
	return string(r.Error.Raw)
}

// parseSubscribe reads a subscribe reply [subscriptions, extranonce1,
// extranonce2_size]; protocols add their own rules on the sizes.
func parseSubscribe(r *codec.Request) (string, int, error) {
	if r.Result.Kind != codec.KindArray {
		return "", 0, fmt.Errorf("subscribe refused: %s", errText(r))
	}
	var res codec.Request
	if err := codec.ScanArray(r.Result.Raw, &res); err != nil {
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

// maxPoolEN2 bounds what we accept from a pool (real pools use 4..8).
const maxPoolEN2 = 32

// parseConfigureMask reads the granted mask of a mining.configure reply.
func parseConfigureMask(raw []byte) uint32 {
	i := bytes.Index(raw, []byte(`"version-rolling.mask"`))
	if i < 0 {
		return 0
	}
	rest := raw[i+len(`"version-rolling.mask"`):]
	q := bytes.IndexByte(rest, '"')
	if q < 0 || len(rest) < q+9 {
		return 0
	}
	v, _ := codec.ParseHex32(rest[q+1 : q+9])
	return v
}
