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
type harness struct {
	sys      *actor.ActorSystem
	pid      *actor.PID
	conn     *fakeConn
	mu       sync.Mutex
	submits  []*wire.Submit
	authedAt int // number of submits seen when MinerAuthorized arrived (-1: never)
	authed   bool
	gone     chan struct{} // closed when the session actor has terminated
	attached chan struct{} // closed once the coordinator has sent the attach and the job
}

var testJob = func() *msg.Job {
	n := &codec.Notify{JobID: "7", PrevHash: strings.Repeat("ab", 32), Coinb1: "0100", Coinb2: "ffff", Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e", Clean: true}
	line := n.AppendLine(nil, "01000a2b", true)
	return &msg.Job{ID: "1.7", PoolID: "7", ShortID: 7, Gen: 1, Notify: n, Line: line, CleanLine: line, NTime: 0x6b07071e, Version: 0x20000000, Clean: true}
}()

func newHarness(t testing.TB) *harness {
	h := &harness{sys: actor.NewActorSystem(), conn: &fakeConn{}, authedAt: -1, attached: make(chan struct{})}
	up := h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if s, ok := ctx.Message().(*wire.Submit); ok {
			h.mu.Lock()
			h.submits = append(h.submits, s)
			h.mu.Unlock()
			ctx.Send(s.Miner, &msg.ShareAnswered{ReqID: s.ReqID, Status: codec.StatusAccept})
		}
	}))
	var coord *actor.PID
	coord = h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*msg.MinerAuthorized); ok {
			h.mu.Lock()
			h.authed, h.authedAt = true, len(h.submits)
			h.mu.Unlock()
			ctx.Send(h.pid, &wire.Attached{Upstream: up, Gen: 1, Pool: "test"})
			ctx.Send(h.pid, &msg.DifficultySet{Difficulty: 1024})
			ctx.Send(h.pid, &msg.JobNotified{Job: testJob, Clean: true})
			close(h.attached)
		}
	}))
	env := &miner.Env{Listener: "t", Port: 3333, PoolUser: "farm", Coordinator: coord, Stats: stats.NewListener("t", 3333),
		Log: logrus.NewEntry(logrus.New()), Limiter: nopLimiter{}}
	h.pid = h.sys.Root.Spawn(actor.PropsFromProducer(miner.New(env)))
	h.gone = make(chan struct{})
	watching := make(chan struct{})
	h.sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		switch ctx.Message().(type) {
		case *actor.Started:
			ctx.Watch(h.pid)
			close(watching)
		case *actor.Terminated:
			close(h.gone)
		}
	}))
	<-watching
	h.sys.Root.Send(h.pid, &miner.Start{Conn: h.conn, SessionID: 0x0102, Stats: &stats.Miner{SessionID: 0x0102}})
	t.Cleanup(func() { h.sys.Root.Stop(coord); h.sys.Root.Stop(up) })
	return h
}

// sync waits until the session handled everything sent so far (including
// the coordinator's attach round trip, which a second ping covers).
func (h *harness) sync(t testing.TB) {
	for i := 0; i < 2; i++ {
		f := h.sys.Root.RequestFuture(h.pid, &miner.Ping{}, 5*time.Second)
		done := make(chan error, 1)
		go func() { _, err := f.Result(); done <- err }()
		select {
		case err := <-done:
			if err != nil {
				return
			}
		case <-h.gone:
			return // the session closed itself: nothing more will happen
		}
	}
}

func (h *harness) send(lines ...string) {
	for _, l := range lines {
		h.sys.Root.Send(h.pid, &miner.Line{B: []byte(l)})
	}
}

func TestSessionAnswersEveryRequestAndForwardsOnlyAuthorizedShares(t *testing.T) {
	h := newHarness(t)
	h.send(
		`{"id":1,"method":"mining.submit","params":["w","1.7","00000001","6b07071e","00000001"]}`,
		`{"id":2,"method":"mining.subscribe","params":["ua"]}`,
		`{"id":3,"method":"mining.authorize","params":["john.a1","x"]}`,
	)
	// The coordinator attaches asynchronously; once it has sent the attach,
	// a ping queued after it proves the session has handled it.
	select {
	case <-h.attached:
	case <-time.After(5 * time.Second):
		t.Fatal("the coordinator never attached the miner")
	}
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
	s0, s1 := h.submits[0].Share, h.submits[1].Share
	if s0.SessionID != 0x0102 || s0.ShortJobID != 7 || s0.NTime != s0.JobNTime || s0.HasVersion {
		t.Errorf("first share %+v", s0)
	}
	if s1.NTime == s1.JobNTime || !s1.HasVersion || s1.VersionBits != 0x2000 || s1.Nonce != 2 {
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
