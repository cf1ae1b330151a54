package miner_test

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/miner"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/sirupsen/logrus"
)

// fakeConn records what the session writes.
type fakeConn struct {
	mu     sync.Mutex
	out    bytes.Buffer
	closed bool
}

func (c *fakeConn) Write(b []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	c.out.Write(b)
	return nil
}
func (c *fakeConn) Close() error           { c.mu.Lock(); c.closed = true; c.mu.Unlock(); return nil }
func (c *fakeConn) CloseAfter(b []byte)    { _ = c.Write(b); _ = c.Close() }
func (c *fakeConn) Remote() netip.AddrPort { return netip.MustParseAddrPort("192.0.2.7:4028") }
func (c *fakeConn) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimRight(c.out.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

type errString string

func (e errString) Error() string { return string(e) }

const errClosed = errString("closed")

type nopLimiter struct{}

func (nopLimiter) Warn(string, logrus.Fields, string) {}

// harness runs one session with a recording coordinator and upstream: the
// coordinator attaches every authorized miner at once and hands it a job.
// The upstream is either a sink (the hot path: shares are encoded on the
// session's goroutine) or a link actor (shares as messages).
type harness struct {
	sys      *actor.ActorSystem
	up       *actor.PID
	s        *miner.Session
	conn     *fakeConn
	mu       sync.Mutex
	submits  []codec.Share
	authedAt int // number of submits seen when MinerAuthorized arrived (-1: never)
	authed   bool
	attached chan struct{} // closed once the coordinator has sent the attach and the job
}

// recSink is a wire.Sink that accepts every share at once, answering from
// inside Submit: the session is still running then, so this also checks
// that a re-entrant answer is queued and delivered, not deadlocked.
type recSink struct{ h *harness }

func (r recSink) Gen() uint64 { return 1 }
func (r recSink) Submit(sh codec.Share, p wire.Pending, _ bool) codec.Status {
	r.h.mu.Lock()
	r.h.submits = append(r.h.submits, sh)
	r.h.mu.Unlock()
	p.Miner.AnswerShare(p.ReqID.Bytes(), codec.StatusAccept, "")
	return 0
}

var testJob = func() *msg.Job {
	n := &codec.Notify{JobID: "7", PrevHash: strings.Repeat("ab", 32), Coinb1: "0100", Coinb2: "ffff", Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e", Clean: true}
	line := n.AppendLine(nil, "01000a2b", true)
	return &msg.Job{ID: "1.7", PoolID: "7", ShortID: 7, Gen: 1, Notify: n, Line: line, CleanLine: line, NTime: 0x6b07071e, Version: 0x20000000, Clean: true}
}()

func newHarness(t testing.TB) *harness { return newHarnessWith(t, true) }

func newHarnessWith(t testing.TB, withSink bool) *harness {
	h := &harness{sys: actor.NewActorSystem(), conn: &fakeConn{}, authedAt: -1, attached: make(chan struct{})}
	up := h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch m := ctx.Message().(type) {
		case *wire.Submit:
			h.mu.Lock()
			h.submits = append(h.submits, m.Share)
			h.mu.Unlock()
			m.Pending.Miner.AnswerShare(m.Pending.ReqID.Bytes(), codec.StatusAccept, "")
		case *miner.Ping:
			ctx.Respond(true)
		}
	}))
	h.up = up
	var sink wire.Sink
	if withSink {
		sink = recSink{h}
	}
	coord := h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*wire.MinerAuthorized); ok {
			h.mu.Lock()
			h.authed, h.authedAt = true, len(h.submits)
			h.mu.Unlock()
			h.s.Tell(&wire.Attached{Upstream: up, Gen: 1, Pool: "test", Sink: sink})
			h.s.Tell(&wire.DifficultySet{Difficulty: 1024})
			h.s.Tell(&wire.JobNotified{Job: testJob, Clean: true})
			close(h.attached)
		}
	}))
	env := &miner.Env{Listener: "t", Port: 3333, PoolUser: "farm", Root: h.sys.Root, Coordinator: coord, Stats: stats.NewListener("t", 3333),
		Log: logrus.NewEntry(logrus.New()), Limiter: nopLimiter{}}
	h.s = miner.New(env, 0x0102, &stats.Miner{SessionID: 0x0102})
	h.s.Tell(&miner.Start{Conn: h.conn})
	t.Cleanup(func() { h.sys.Root.Stop(coord); h.sys.Root.Stop(up) })
	return h
}

// sync waits until the session handled everything delivered so far (a Ping
// is answered only after the messages queued before it), including the
// answers of the link actor, which a request to it flushes first.
func (h *harness) sync(t testing.TB) {
	t.Helper()
	if _, err := h.sys.Root.RequestFuture(h.up, &miner.Ping{}, 5*time.Second).Result(); err != nil {
		t.Fatalf("link actor did not answer: %v", err)
	}
	reply := make(chan miner.Pong, 1)
	h.s.Tell(&miner.Ping{Reply: reply})
	select {
	case <-reply:
	case <-time.After(5 * time.Second):
		t.Fatal("session did not answer a ping within 5 s")
	}
}

func (h *harness) send(lines ...string) {
	for _, l := range lines {
		h.s.Tell(&miner.Data{B: []byte(l + "\n")})
	}
}

func (h *harness) waitAttached(t testing.TB) {
	t.Helper()
	select {
	case <-h.attached:
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator never attached the miner")
	}
}

func TestSessionAnswersEveryRequestAndForwardsOnlyAuthorizedShares(t *testing.T) {
	for _, withSink := range []bool{true, false} {
		name := "actor"
		if withSink {
			name = "sink"
		}
		t.Run(name, func(t *testing.T) { testSessionAnswers(t, withSink) })
	}
}

func testSessionAnswers(t *testing.T, withSink bool) {
	h := newHarnessWith(t, withSink)
	h.send(
		`{"id":1,"method":"mining.submit","params":["w","1.7","00000001","6b07071e","00000001"]}`,
		`{"id":2,"method":"mining.subscribe","params":["ua"]}`,
		`{"id":3,"method":"mining.authorize","params":["john.a1","x"]}`,
	)
	// The coordinator attaches asynchronously; once it has sent the attach,
	// a ping queued after it proves the session has handled it.
	h.waitAttached(t)
	h.sync(t)
	h.send(
		`{"id":4,"method":"mining.submit","params":["john.a1","1.7","00000001","6b07071e","00000001"]}`,
		`{"id":5,"method":"mining.submit","params":["john.a1","1.7","00000001","6b07071f","00000002","00002000"]}`,
		`{"id":6,"method":"mining.submit","params":["john.a1","9.9","00000001","6b07071e","00000003"]}`,
		`{"id":7,"method":"mining.submit","params":["john.a1","1.7","0001","6b07071e","00000003"]}`,
	)
	h.sync(t)
	replies := map[string]string{}
	for _, l := range h.conn.lines() {
		var m struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("bad line %q", l)
		}
		if m.Method == "" {
			replies[string(m.ID)] = string(m.Error)
		}
	}
	want := map[string]string{"1": "[25,", "2": "null", "3": "null", "4": "null", "5": "null", "6": "[21,", "7": "[27,"}
	for id, prefix := range want {
		got, ok := replies[id]
		if !ok || !strings.HasPrefix(got, prefix) {
			t.Errorf("request %s: error %q, want prefix %q", id, got, prefix)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.submits) != 2 || h.authedAt != 0 {
		t.Fatalf("upstream got %d submits (authorized after %d)", len(h.submits), h.authedAt)
	}
	s0, s1 := h.submits[0], h.submits[1]
	if s0.SessionID != 0x0102 || s0.JobID != 7 || s0.HasTime || s0.HasVersion {
		t.Errorf("first share %+v", s0)
	}
	if !s1.HasTime || s1.NTime != 0x6b07071f || !s1.HasVersion || s1.VersionBits != 0x2000 || s1.Nonce != 2 {
		t.Errorf("second share %+v", s1)
	}
}

// FuzzSession drives one session with arbitrary request sequences and checks
// the invariants: no panic, every request with an id is answered (unless the
// session closed the connection), and no share reaches the upstream before
// the miner was authorized.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"{\"id\":2,\"method\":\"mining.subscribe\",\"params\":[\"ua\"]}\n{\"id\":3,\"method\":\"mining.authorize\",\"params\":[\"a.b\",\"x\"]}\n{\"id\":4,\"method\":\"mining.submit\",\"params\":[\"a.b\",\"1.7\",\"00000001\",\"6b07071e\",\"00000001\"]}",
		"{\"id\":1,\"method\":\"mining.configure\",\"params\":[[\"version-rolling\"],{\"version-rolling.mask\":\"ffffffff\"}]}\n{\"id\":null,\"method\":\"x\"}",
		"{\"id\":1,\"method\":\"mining.submit\",\"params\":[]}\n{\"id\":\"q\",\"method\":\"mining.authorize\",\"params\":[5]}",
		"GET / HTTP/1.1", "{\"id\":1,\"method\":", "{}\n{\"id\":9}",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		if len(input) > 4096 {
			return
		}
		h := newHarness(t)
		lines := strings.Split(input, "\n")
		var ids []string
		for _, l := range lines {
			var r codec.Request
			if codec.ScanRequest(bytes.TrimSpace([]byte(l)), &r) == nil && !r.IsResponse() && len(r.ID) > 0 && string(r.ID) != "null" {
				ids = append(ids, string(r.ID))
			}
		}
		h.send(lines...)
		// An authorize is placed asynchronously: wait for the attach so a
		// share after it is judged on the job, then let the session drain.
		if h.authedNow() {
			h.waitAttached(t)
		}
		h.sync(t)
		h.conn.mu.Lock()
		closed := h.conn.closed
		h.conn.mu.Unlock()
		h.mu.Lock()
		if len(h.submits) > 0 && (!h.authed || h.authedAt != 0) {
			t.Fatalf("a share reached the upstream before authorize (%d, authorized after %d)", len(h.submits), h.authedAt)
		}
		h.mu.Unlock()
		if closed {
			return
		}
		out := strings.Join(h.conn.lines(), "\n")
		for _, id := range ids {
			if !strings.Contains(out, `{"id":`+id+`,"result"`) {
				t.Fatalf("request id %s unanswered; output:\n%s", id, out)
			}
		}
	})
}

func (h *harness) authedNow() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.authed
}
