package poolsim

import (
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

func TestDropAll(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	a.ping("registered")
	m := connectMiner(t, p, "demo.rig")
	p.DropAll()
	a.expectEOF()
	m.expectEOF()
	st := p.Stats()
	if st.Totals.Connections != 0 || st.Totals.ConnsClosed != 2 || st.Totals.RegisteredWorkers != 0 {
		t.Fatalf("after DropAll: %+v", st.Totals)
	}
	if w := st.Workers["demo.w1"]; w.Online || w.Sessions != 0 {
		t.Fatalf("worker still online: %+v", w)
	}
	if len(st.Closed) != 2 || st.Closed[0].CloseReason != "closed by pool" {
		t.Fatalf("closed connections %+v", st.Closed)
	}
	// The listener keeps running.
	connectMiner(t, p, "demo.rig")
}

func TestSetSilent(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	p.SetSilent(true)
	a.send(`{"id":"lost","method":"agent.get_capabilities","params":[["verrol"]]}`)
	waitFor(t, p, "the request to be processed", func(s *Stats) bool { return s.Conns[0].LinesIn == 7 })
	p.NewJob(true)
	p.SetSilent(false)
	// The first thing to arrive is the answer to a request made now:
	// neither the reply nor the job from the silent period was sent.
	if before := a.ping("after"); len(before) != 0 {
		t.Fatalf("sent while silent: %v", before)
	}
	st := p.Stats()
	if st.Totals.Connections != 1 || st.Conns[0].Suppressed == 0 {
		t.Fatalf("want the connection open with suppressed output, got %+v", st.Conns[0])
	}
}

func TestSetRefuse(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	m := connectMiner(t, p, "demo.old")
	p.SetRefuse(true)
	c := dial(t, p)
	c.expectEOF()
	waitFor(t, p, "the refusal to be counted", func(s *Stats) bool { return s.Totals.ConnsRefused == 1 })
	// Existing connections are unaffected.
	m.send(`{"id":9,"method":"mining.suggest_difficulty","params":[1]}`)
	m.expect(`{"id":9,"result":true,"error":null}`)
	p.SetRefuse(false)
	connectMiner(t, p, "demo.new")
}

// Replies wait for the delay, and output queued behind a delayed reply
// (here a job) keeps its place.
func TestSetReplyDelay(t *testing.T) {
	const d = 150 * time.Millisecond
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	p.SetReplyDelay(d)
	start := time.Now()
	a.send(`{"id":"slow","method":"agent.get_capabilities","params":[["verrol"]]}`)
	waitFor(t, p, "the request to be processed", func(s *Stats) bool { return s.Conns[0].LinesIn == 7 })
	p.NewJob(false)
	a.expect(`{"id":"slow","result":{"capabilities":["verrol","subres"]}}`)
	if el := time.Since(start); el < d {
		t.Fatalf("reply after %v, want at least %v", el, d)
	}
	a.expect(notifyLine(p.CurrentJob(), false))
	p.SetReplyDelay(0)
	a.ping("fast")
}

func TestCloseAfterShares(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	p.CloseAfterShares(2)
	n := p.CurrentJob()
	for i := range 2 {
		a.submit(codec.Share{JobID: jobID(t, n), SessionID: 1, Nonce: uint32(i), NTime: n.NTimeValue(), HasTime: true})
	}
	a.expectVerdict(0, codec.StatusAccept)
	a.expectVerdict(1, codec.StatusAccept)
	a.expectEOF()
	st := waitFor(t, p, "the close", func(s *Stats) bool { return len(s.Closed) == 1 })
	if !strings.Contains(st.Closed[0].CloseReason, "CloseAfterShares") || st.Closed[0].Accepted != 2 {
		t.Fatalf("closed connection %+v", st.Closed[0])
	}
	// New connections get the same budget.
	b := connectAgent(t, p, "demo", true)
	b.register(1, "w1")
	b.submit(codec.Share{JobID: jobID(t, n), SessionID: 1, Nonce: 7, NTime: n.NTimeValue(), HasTime: true})
	b.expectVerdict(0, codec.StatusAccept)
	p.CloseAfterShares(0)
	b.submit(codec.Share{JobID: jobID(t, n), SessionID: 1, Nonce: 8, NTime: n.NTimeValue(), HasTime: true})
	b.expectVerdict(1, codec.StatusAccept)
	b.ping("still open")
}

func TestRestart(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	addr := p.Addr()
	a := connectAgent(t, p, "demo", true)
	oldJob := p.CurrentJob()
	if err := p.Restart(); err != nil {
		t.Fatal(err)
	}
	a.expectEOF()
	if p.Addr() != addr {
		t.Fatalf("address changed from %s to %s", addr, p.Addr())
	}
	b := connectAgent(t, p, "demo", true)
	if b.en1 == a.en1 {
		t.Fatalf("EN1 %s reused after restart", b.en1)
	}
	if cur := p.CurrentJob(); cur.PrevHash == oldJob.PrevHash {
		t.Fatal("restart must start a new block")
	}
	b.register(1, "w1")
	b.submit(codec.Share{JobID: jobID(t, oldJob), SessionID: 1, Nonce: 1, NTime: oldJob.NTimeValue(), HasTime: true})
	b.expectVerdict(0, codec.StatusJobNotFoundOrStale)
	if st := p.Stats(); st.Totals.Restarts != 1 || st.Totals.Connections != 1 {
		t.Fatalf("totals %+v", st.Totals)
	}
}

func TestSetAuthorizeResult(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	p.SetAuthorizeResult(false)
	c := dial(t, p)
	c.send(`{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`,
		`{"id":"auth","method":"mining.authorize","params":["demo",""]}`)
	c.line()
	c.expect(`{"id":"auth","result":false,"error":[29,"Invalid username",null]}`)
	if before := c.ping("p"); len(before) != 0 {
		t.Fatalf("sent after a refused authorize: %v", before)
	}
	if cs := p.Stats().Conns[0]; cs.Authorized {
		t.Fatal("connection marked authorized")
	}
	p.SetAuthorizeResult(true)
	c.send(`{"id":"auth2","method":"mining.authorize","params":["demo",""]}`)
	c.expect(`{"id":"auth2","result":true,"error":null}`)
}

func TestCloseConnClosesOnlyThatConnection(t *testing.T) {
	p := startPool(t, Config{})
	a, b := dial(t, p), dial(t, p)
	a.send(`{"id":1,"method":"mining.subscribe","params":["x"]}`)
	b.send(`{"id":1,"method":"mining.subscribe","params":["x"]}`)
	a.line()
	b.line()
	st := p.Stats()
	if len(st.Conns) != 2 {
		t.Fatalf("conns %d", len(st.Conns))
	}
	victim := st.Conns[0].ID
	if !p.CloseConn(victim) {
		t.Fatal("CloseConn returned false")
	}
	st = p.Stats()
	if len(st.Conns) != 1 || st.Conns[0].ID == victim {
		t.Fatalf("after close: %+v", st.Conns)
	}
	if p.CloseConn(victim) {
		t.Fatal("closing a gone connection reported true")
	}
}
