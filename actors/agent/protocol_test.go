package agent_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

const wait = 10 * time.Second

// The miner-facing Stratum server, message by message: configure before
// subscribe, the subscribe reply shape, authorize followed by difficulty and
// a clean job, and an answer to every other request.
func TestMinerFacingProtocol(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	a := testenv.Agent(t, testenv.Config(t, "farm", pool.Addr()), agent.Options{})
	m := testenv.Dial(t, testenv.Addr(a))

	m.Send(`{"id":"c1","method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":2}]}`)
	conf := m.Next(wait)
	if string(conf.ID) != `"c1"` || string(conf.Result) != `{"version-rolling":true,"version-rolling.mask":"1fffe000","minimum-difficulty":false}` {
		t.Fatalf("configure reply: %s", conf.Raw)
	}
	if vm := m.Next(wait); vm.Method != "mining.set_version_mask" || vm.Str(0) != "1fffe000" {
		t.Fatalf("expected set_version_mask after configure, got %s", vm.Raw)
	}
	m.Send(`{"id":7,"method":"mining.subscribe","params":["bmminer/2.1.0"]}`)
	sub := m.Next(wait)
	var res []json.RawMessage
	if err := json.Unmarshal(sub.Result, &res); err != nil || len(res) != 3 {
		t.Fatalf("subscribe: %s", sub.Raw)
	}
	var en1 string
	_ = json.Unmarshal(res[1], &en1)
	want := fmt.Sprintf(`[[["mining.set_difficulty","%s"],["mining.notify","%s"]],"%s",4]`, en1, en1, en1)
	if string(sub.Result) != want || len(en1) != 8 || !strings.HasPrefix(en1, "0000") {
		t.Fatalf("subscribe result %s, want %s", sub.Result, want)
	}
	// Requests that are not forwarded still get an answer each.
	m.Send(`{"id":8,"method":"mining.suggest_difficulty","params":[1024]}`)
	if r := m.Next(wait); string(r.ID) != "8" || string(r.Result) != "false" {
		t.Fatalf("suggest_difficulty: %s", r.Raw)
	}
	m.Send(`{"id":9,"method":"mining.extranonce.subscribe","params":[]}`)
	if r := m.Next(wait); string(r.ID) != "9" || string(r.Result) != "true" {
		t.Fatalf("extranonce.subscribe: %s", r.Raw)
	}
	m.Send(`{"id":10,"method":"mining.frobnicate","params":[]}`)
	if r := m.Next(wait); string(r.ID) != "10" || !strings.HasPrefix(string(r.Error), "[27,") {
		t.Fatalf("unknown method: %s", r.Raw)
	}
	// A submit before authorize is refused with 24.
	m.Send(`{"id":11,"method":"mining.submit","params":["john.a001","1","00000000","00000000","00000000"]}`)
	if r := m.Next(wait); string(r.ID) != "11" || !strings.HasPrefix(string(r.Error), "[24,") {
		t.Fatalf("submit before authorize: %s", r.Raw)
	}
	m.Send(`{"id":12,"method":"mining.authorize","params":["john.a001","pw"]}`)
	if r := m.Next(wait); string(r.ID) != "12" || string(r.Result) != "true" {
		t.Fatalf("authorize: %s", r.Raw)
	}
	// Then, in this order: the default difficulty and the job with clean=true
	// (the mask already told is the pool's, so it is not repeated).
	got := []testenv.Msg{{}, m.Next(wait), m.Next(wait)}
	if got[1].Method != "mining.set_difficulty" || got[2].Method != "mining.notify" {
		t.Fatalf("after authorize: %s | %s", got[1].Raw, got[2].Raw)
	}
	if string(got[1].Params[0]) != "0.00001" {
		t.Fatalf("default difficulty %s", got[1].Params[0])
	}
	if string(got[2].Params[8]) != "true" {
		t.Fatalf("first job must be clean: %s", got[2].Raw)
	}
	// coinb1 carries the upstream EN1: the pool's coinb1 plus 8 hex digits.
	if c := got[2].Str(2); !strings.HasPrefix(c, pool.CurrentJob().Coinb1) || len(c) != len(pool.CurrentJob().Coinb1)+8 {
		t.Fatalf("coinb1 not extended by the upstream extranonce1")
	}
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { _, ok := s.Workers["farm.a001"]; return ok }); err != nil {
		t.Fatalf("pool never registered farm.a001: %v", err)
	}
	if w := pool.Stats().Workers["farm.a001"]; w.UserAgent != "bmminer/2.1.0" || !w.Agent {
		t.Fatalf("registered worker %+v", w)
	}
	// Malformed JSON gets an error with a null id; non-JSON closes the connection.
	m.Send(`{"id":13,"method":`)
	if r := m.Next(wait); string(r.ID) != "null" || !strings.HasPrefix(string(r.Error), "[27,") {
		t.Fatalf("malformed JSON: %s", r.Raw)
	}
	m2 := testenv.Dial(t, testenv.Addr(a))
	m2.Send("GET / HTTP/1.1")
	if _, err := m2.TryLine(wait); err == nil {
		t.Fatal("HTTP request got a reply instead of a close")
	}
}

// Worker naming as the legacy agent did it, with the pool user in front.
func TestWorkerNaming(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	a := testenv.Agent(t, testenv.Config(t, "farm", pool.Addr()), agent.Options{})
	names := map[string]string{
		"john.a001": "farm.a001",
		"bob":       "farm.bob",
		"":          "farm.__default__",
		"x.rig 7#b": "farm.rig7b",
		"y.r1.left": "farm.r1.left",
	}
	for user := range names {
		m := testenv.Dial(t, testenv.Addr(a))
		m.Login(user, false)
	}
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return len(s.Workers) >= len(names) }); err != nil {
		t.Fatalf("workers %v", keys(pool.Stats().Workers))
	}
	st := pool.Stats()
	for user, want := range names {
		if _, ok := st.Workers[want]; !ok {
			t.Errorf("miner %q: pool has no worker %q (has %s)", user, want, keys(st.Workers))
		}
	}
}
