package poolsim

import (
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// The C++ agent's handshake (docs/PROTOCOL.md §3.4): subscribe first, then configure,
// get_capabilities, authorize, get_capabilities, with id 1 reused. Every
// reply is compared byte for byte, in order.
func TestAgentHandshakeCppStyle(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	c.send(`{"id":1,"method":"mining.subscribe","params":["btccom-agent/1.0.0-su"]}`)
	sub := c.line()
	st := waitFor(t, p, "one connection", func(s *Stats) bool { return len(s.Conns) == 1 })
	en1 := st.Conns[0].EN1
	if len(en1) != 8 {
		t.Fatalf("EN1 %q is not 8 hex digits", en1)
	}
	if want := `{"id":1,"result":[[["mining.set_difficulty","` + en1 + `"],["mining.notify","` + en1 + `"]],"` + en1 + `",8],"error":null}`; sub != want {
		t.Fatalf("subscribe reply\n got %s\nwant %s", sub, want)
	}

	c.send(
		`{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]}`,
		`{"id":"agent.caps","method":"agent.get_capabilities","params":[["verrol","subres"]]}`,
		`{"id":1,"method":"mining.authorize","params":["demo",""]}`,
		`{"id":"agent.caps","method":"agent.get_capabilities","params":[["verrol","subres"]]}`,
	)
	c.expect(`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`)
	c.expect(`{"id":"agent.caps","result":{"capabilities":["verrol","subres"]}}`)
	c.expect(`{"id":1,"result":true,"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_difficulty","params":[16384]}`)
	c.expect(notifyLine(p.CurrentJob(), true))
	c.expect(`{"id":"agent.caps","result":{"capabilities":["verrol","subres"]}}`)

	st = p.Stats()
	cs := st.Conns[0]
	if !cs.Agent || !cs.Authorized || cs.User != "demo" || cs.UserAgent != "btccom-agent/1.0.0-su" || !cs.Subres {
		t.Fatalf("connection stats %+v", cs)
	}
	if cs.VersionMask != "1fffe000" {
		t.Errorf("granted mask %q", cs.VersionMask)
	}
	if cs.LinesIn != 5 || cs.LinesOut != 8 {
		t.Errorf("lines in/out %d/%d, want 5/8", cs.LinesIn, cs.LinesOut)
	}
}

// The Go agent's handshake (docs/PROTOCOL.md §3.4, TV14): a conn_test probe before anything,
// then five pipelined requests with string ids.
func TestAgentHandshakeGoStyle(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, JSONDiff: 0.001})
	c := dial(t, p)
	c.send(`{"id":"conn_test","method":"agent.get_capabilities","params":[["verrol","subres"]]}`)
	c.expect(`{"id":"conn_test","result":{"capabilities":["verrol","subres"]}}`)
	c.send(
		`{"id":"caps","method":"agent.get_capabilities","params":[["verrol","subres"]]}`,
		`{"id":"conf","method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]}`,
		`{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`,
		`{"id":"auth","method":"mining.authorize","params":["mysubaccount",""]}`,
		`{"id":"caps_again","method":"agent.get_capabilities","params":[["verrol","subres"]]}`,
	)
	c.expect(`{"id":"caps","result":{"capabilities":["verrol","subres"]}}`)
	c.expect(`{"id":"conf","result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_version_mask","params":["1fffe000"]}`)
	en1 := p.Stats().Conns[0].EN1
	c.expect(`{"id":"sub","result":[[["mining.set_difficulty","` + en1 + `"],["mining.notify","` + en1 + `"]],"` + en1 + `",8],"error":null}`)
	c.expect(`{"id":"auth","result":true,"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_difficulty","params":[0.001]}`)
	c.expect(notifyLine(p.CurrentJob(), true))
	c.expect(`{"id":"caps_again","result":{"capabilities":["verrol","subres"]}}`)
	if cs := p.Stats().Conns[0]; !cs.Agent || !cs.Subres || cs.User != "mysubaccount" {
		t.Fatalf("connection stats %+v", cs)
	}
}

// Each connection gets its own EN1, the configured EN2 size is announced,
// and the agent test follows sserver: cut to 30, filter, then the prefix.
func TestSubscribeEN1AndAgentDetection(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, EN2Size: 4})
	cases := []struct {
		ua    string
		agent bool
	}{
		{"btccom-agent/2.0.0-mu", true},
		{"btccom agent/1.0", false},
		{"BTCCOM-AGENT/1.0", false}, // case-sensitive
		{"btccom-agent", false},     // prefix needs the slash
		{" btccom-agent/x y", true}, // filtered before the test
		{"cgminer/4.10.0", false},
		{strings.Repeat("x", 20) + "btccom-agent/1", false}, // cut first
		{"btccom-agent/" + strings.Repeat("9", 40), true},
	}
	seen := map[string]bool{}
	for i, tc := range cases {
		c := dial(t, p)
		c.send(`{"id":7,"method":"mining.subscribe","params":["` + tc.ua + `"]}`)
		line := c.line()
		en1 := subscribeEN1(t, line)
		if seen[en1] {
			t.Fatalf("EN1 %s handed out twice", en1)
		}
		seen[en1] = true
		if want := `{"id":7,"result":[[["mining.set_difficulty","` + en1 + `"],["mining.notify","` + en1 + `"]],"` + en1 + `",4],"error":null}`; line != want {
			t.Fatalf("case %d: subscribe reply %s", i, line)
		}
		st := waitFor(t, p, "subscription", func(s *Stats) bool {
			cs, ok := s.ConnByEN1(en1)
			return ok && cs.Subscribed
		})
		cs, _ := st.ConnByEN1(en1)
		if cs.Agent != tc.agent {
			t.Errorf("user agent %q: agent=%t, want %t (kept as %q)", tc.ua, cs.Agent, tc.agent, cs.UserAgent)
		}
		if len(cs.UserAgent) > codec.MaxAgentLen {
			t.Errorf("user agent kept as %q, longer than 30", cs.UserAgent)
		}
	}
}

// subres is turned on only by a get_capabilities that arrives after the
// authorize (docs/PROTOCOL.md §3.2); without the second request shares get no verdicts.
func TestSubresOnlyAfterAuthorize(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	caps := `[["verrol","subres"]]`
	c.send(
		`{"id":"conn_test","method":"agent.get_capabilities","params":`+caps+`}`,
		`{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`,
		`{"id":"caps","method":"agent.get_capabilities","params":`+caps+`}`,
		`{"id":"auth","method":"mining.authorize","params":["demo",""]}`,
	)
	for range 5 { // conn_test, sub, caps, auth, set_difficulty
		c.line()
	}
	c.line() // notify
	a := &agentLink{client: c}
	a.register(1, "w1")
	n := p.CurrentJob()
	a.submit(codec.Share{JobID: jobID(t, n), SessionID: 1, ExtraNonce2: 1, Nonce: 1, NTime: n.NTimeValue(), HasTime: true})
	if before := c.ping("p1"); len(before) != 0 {
		t.Fatalf("got %v without subres", before)
	}
	st := p.Stats()
	if cs := st.Conns[0]; cs.Subres || cs.Validated != 1 || cs.Accepted != 1 {
		t.Fatalf("want subres off and one accepted share, got %+v", cs)
	}

	// The same request after authorize turns it on.
	c.send(`{"id":"caps_again","method":"agent.get_capabilities","params":` + caps + `}`)
	c.line()
	a.submit(codec.Share{JobID: jobID(t, n), SessionID: 1, ExtraNonce2: 2, Nonce: 1, NTime: n.NTimeValue(), HasTime: true})
	c.expectVerdict(1, codec.StatusAccept) // index 0 went to the unanswered share
}

// With NoSubres the pool advertises only verrol and never enables subres.
func TestNoSubres(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, NoSubres: true})
	c := dial(t, p)
	c.send(`{"id":"x","method":"agent.get_capabilities","params":[["verrol","subres"]]}`)
	c.expect(`{"id":"x","result":{"capabilities":["verrol"]}}`)
}

// Authorize before subscribe is refused; a plain miner gets the job right
// after the difficulty.
func TestAuthorizeNeedsSubscribe(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	c.send(`{"id":3,"method":"mining.authorize","params":["demo.rig",""]}`)
	c.expect(`{"id":3,"result":null,"error":[25,"Not subscribed",null]}`)
}
