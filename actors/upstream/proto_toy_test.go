package upstream

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
)

// toy-line is a fourth upstream protocol that exists only in tests. It
// shares nothing with the built-in ones on the wire (its own text lines,
// its own reader, no JSON), so that TestToyProtocol shows that adding a
// protocol is this one file: an init that registers a name, a dial, and a
// linkProto. Nothing else in the package knows it.
//
//	agent → pool: hello <user>
//	pool → agent: welcome <en1 hex, 4 bytes> <difficulty>
//	pool → agent: work <job id> <prevhash> <coinb1> <coinb2> <version> <nbits> <ntime> <clean 0|1>
//	agent → pool: share <request id> <job id> <worker> <en2 hex, 8 bytes> <ntime> <nonce>
//	pool → agent: ok <request id> | no <request id> <code>

const toyName = "toy-line"

func init() { register(toyName, toyProtocol{}) }

type toyProtocol struct{}

type toyLink struct {
	br      *bufio.Reader
	en1     string
	diff    float64
	first   *codec.Notify
	workers map[uint16]string
	jobs    [256]jobRec
	short   uint8
	nextID  uint64
	pend    map[uint64]wire.Pending
}

type toyVerdict struct {
	id   uint64
	code codec.Status
}

func (toyProtocol) dial(ctx context.Context, s *Slot, p msg.PoolAddr, user string) (*link, error) {
	conn, name, err := dialConn(ctx, p, s.env.DialTimeout, s.env.Stats)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(s.env.HandshakeTimeout))
	fail := func(reason string, err error) (*link, error) {
		_ = conn.Close()
		return nil, &HandshakeError{Pool: name, Reason: reason, Err: err}
	}
	if _, err := fmt.Fprintf(conn, "hello %s\n", user); err != nil {
		return fail("write hello", err)
	}
	t := &toyLink{br: bufio.NewReader(conn), workers: map[uint16]string{}, pend: map[uint64]wire.Pending{}}
	w, err := t.line()
	if err != nil || len(w) != 3 || w[0] != "welcome" {
		return fail("no welcome", err)
	}
	t.en1 = w[1]
	if t.diff, err = strconv.ParseFloat(w[2], 64); err != nil {
		return fail("bad difficulty", err)
	}
	if w, err = t.line(); err != nil || w[0] != "work" {
		return fail("no first job", err)
	}
	if t.first, err = toyJob(w); err != nil {
		return fail("bad first job", err)
	}
	_ = conn.SetDeadline(time.Time{})
	l := &link{conn: conn, pool: p, name: name, protocol: toyName, proto: t}
	return l, nil
}

func (t *toyLink) line() ([]string, error) {
	s, err := t.br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	return strings.Fields(s), nil
}

func toyJob(w []string) (*codec.Notify, error) {
	if len(w) != 9 {
		return nil, fmt.Errorf("work has %d fields, want 9", len(w))
	}
	return &codec.Notify{JobID: w[1], PrevHash: w[2], Coinb1: w[3], Coinb2: w[4], Version: w[5], NBits: w[6], NTime: w[7], Clean: w[8] == "1"}, nil
}

func (t *toyLink) read(s *Slot, l *link) {
	for {
		w, err := t.line()
		if err != nil {
			s.post(&linkDown{gen: l.gen, err: err})
			return
		}
		switch {
		case len(w) > 0 && w[0] == "work":
			if n, err := toyJob(w); err == nil {
				s.post(&poolJob{gen: l.gen, n: n, at: time.Now()})
			}
		case len(w) >= 2 && (w[0] == "ok" || w[0] == "no"):
			id, _ := strconv.ParseUint(w[1], 10, 64)
			v := toyVerdict{id: id, code: codec.StatusAccept}
			if w[0] == "no" && len(w) == 3 {
				c, _ := strconv.Atoi(w[2])
				v.code = codec.Status(c)
			}
			s.postLink(l, v)
		}
	}
}

func (t *toyLink) start(_ *Slot, l *link) { l.diff = t.diff }

func (t *toyLink) replay(s *Slot, l *link) { s.onJob(l, t.first, time.Now()) }

func (t *toyLink) attach(s *Slot, l *link, sid uint16, a *attached) {
	t.workers[sid] = a.worker
	s.serve(l, sid, a)
}

func (t *toyLink) leave(_ *Slot, _ *link, sid uint16) { delete(t.workers, sid) }

func (*toyLink) keeps(*link, *attached) bool { return false }

func (t *toyLink) job(_ *Slot, l *link, n *codec.Notify, at time.Time) *msg.Job {
	short := t.short
	t.short++
	// The miners' usual layout: EN1 "0000SSSS" and 4 bytes of EN2 fill the
	// pool's 8-byte extranonce2, as on agent links.
	t.jobs[short] = jobRec{poolID: []byte(n.JobID), m: sharedMap(t.en1, 8)}
	return minerJob(l.gen, short, n, at, t.en1, true)
}

func (t *toyLink) submit(s *Slot, l *link, m *wire.Submit) {
	rec := &t.jobs[m.Share.JobID]
	if rec.m == nil {
		answerPending(s.env.Stats, &m.Pending, codec.StatusJobNotFoundOrStale, "unknown job", true)
		return
	}
	t.nextID++
	t.pend[t.nextID] = m.Pending
	b := fmt.Appendf(nil, "share %d %s %s ", t.nextID, rec.poolID, t.workers[m.Share.SessionID])
	b = rec.m.appendEN2(b, m.Share.SessionID, m.Share.ExtraNonce2)
	b = fmt.Appendf(b, " %08x %08x\n", m.Share.NTime, m.Share.Nonce)
	l.send(b)
}

func (*toyLink) flush(*link) {}

func (t *toyLink) pending() int { return len(t.pend) }

func (t *toyLink) failAll(s *Slot, text string) {
	for id, p := range t.pend {
		answerPending(s.env.Stats, &p, codec.StatusJobNotFoundOrStale, text, true)
		delete(t.pend, id)
	}
}

func (t *toyLink) handle(s *Slot, _ *link, ev any) {
	if v, ok := ev.(toyVerdict); ok {
		if p, ok := t.pend[v.id]; ok {
			delete(t.pend, v.id)
			answerPending(s.env.Stats, &p, v.code, "", false)
		}
	}
}

func (*toyLink) reconnect(*Slot, *link) bool { return false }

func (*toyLink) welcome(*link, *wire.Attached) {}

func (t *toyLink) describe(f map[string]any) { f["en1"] = t.en1 }

func (*toyLink) stop(*Slot) {}
