package agent_test

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// 200 hash-mode miners (half of them rolling version bits) through the
// agent: 200 workers at the pool named <pool user>.<worker>, every share
// validated for real and accepted, none lost.
func TestTwoHundredHashMiners(t *testing.T) {
	const n, per = 200, 2
	pool := testenv.Pool(t, poolsim.Config{})
	a := testenv.Agent(t, testenv.Config(t, "farm", pool.Addr()), agent.Options{})
	rolling := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n / 2, User: "john", WorkerPrefix: "r", Hash: true, HashThreads: 2, VersionRolling: true, MaxSharesPerMiner: per})
	plain := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n / 2, User: "john", WorkerPrefix: "p", Hash: true, HashThreads: 2, MaxSharesPerMiner: per})
	ctx := testenv.Ctx(t)
	for _, sim := range []*minersim.Sim{rolling, plain} {
		if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= n/2*per }); err != nil {
			t.Fatalf("miners: %v %+v", err, sim.Stats())
		}
		if s := sim.Stats(); s.SharesAccepted != n/2*per || s.SharesUnanswered != 0 {
			t.Fatalf("accepted %d, rejected %v, unanswered %d", s.SharesAccepted, s.SharesRejected, s.SharesUnanswered)
		}
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= n*per }); err != nil {
		t.Fatal(err)
	}
	st := pool.Stats()
	if st.Totals.Accepted != n*per || len(st.Totals.Rejected) != 0 || st.Totals.Dropped != 0 {
		t.Fatalf("pool totals %+v", st.Totals)
	}
	for _, prefix := range []string{"r", "p"} {
		for i := 0; i < n/2; i++ {
			name := "farm." + strings.TrimPrefix(minersim.WorkerName("john", prefix, n/2, i), "john.")
			if w, ok := st.Workers[name]; !ok || w.Accepted != per {
				t.Fatalf("worker %s: %+v", name, w)
			}
		}
	}
	// Shares of rolling miners used 0x12/0x13, the others 0x02/0x03 only.
	var withVer, without uint64
	for _, c := range st.Conns {
		withVer += c.FramesIn[codec.CmdName(codec.CmdSubmitShareWithVer)] + c.FramesIn[codec.CmdName(codec.CmdSubmitShareWithTimeVer)]
		without += c.FramesIn[codec.CmdName(codec.CmdSubmitShare)] + c.FramesIn[codec.CmdName(codec.CmdSubmitShareWithTime)]
	}
	if withVer < uint64(n/2*per)-uint64(n/2) || without < uint64(n/2*per) {
		// A rolling miner may pick all-zero bits for a share; it is then sent without version.
		t.Fatalf("submit variants: with version %d, without %d", withVer, without)
	}
}

// Byte-level check of what the pool receives: REGISTER with the cut user
// agent and worker, a 15-byte 0x02 when nTime equals the job's, 0x12 with
// the version bits, 0x03 with a different nTime, and UNREGISTER on close.
func TestFramesOnTheWire(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{JSONDiff: 1e-12}) // every share is good enough
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Listen[0].Connections = 1
	a := testenv.Agent(t, cfg, agent.Options{})
	m := testenv.Dial(t, testenv.Addr(a))
	m.Send(`{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000"}]}`)
	m.Send(`{"id":2,"method":"mining.subscribe","params":["cgminer/4.10.0 (a very long firmware string)"]}`)
	sub, _ := m.Until(wait, func(x testenv.Msg) bool { return string(x.ID) == "2" })
	en1 := sub.Raw[strings.Index(sub.Raw, `]],"`)+4 : strings.Index(sub.Raw, `]],"`)+12]
	var sid uint16
	fmt.Sscanf(en1, "%08x", &sid)
	m.Send(`{"id":3,"method":"mining.authorize","params":["john.a001","x"]}`)
	notify, _ := m.Until(wait, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
	job, ntime := notify.Str(0), notify.Str(7)
	var nt uint32
	fmt.Sscanf(ntime, "%08x", &nt)
	later := fmt.Sprintf("%08x", nt+1)
	m.Send(`{"id":4,"method":"mining.submit","params":["john.a001","` + job + `","0a0b0c0d","` + ntime + `","11223344"]}`)
	m.Send(`{"id":5,"method":"mining.submit","params":["john.a001","` + job + `","0a0b0c0e","` + ntime + `","11223345","00002000"]}`)
	m.Send(`{"id":6,"method":"mining.submit","params":["john.a001","` + job + `","0a0b0c0f","` + later + `","11223346"]}`)
	for i := 0; i < 3; i++ {
		r := m.Next(wait)
		if string(r.Result) != "true" {
			t.Fatalf("share answer %s", r.Raw)
		}
	}
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 3 }); err != nil {
		t.Fatal(err)
	}
	m.Conn().Close()
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers == 0 }); err != nil {
		t.Fatalf("no UNREGISTER: %+v", pool.Stats().Totals)
	}
	st := pool.Stats()
	var frames []string
	for _, c := range st.Conns {
		if c.Agent {
			frames = append(frames, c.RecentFrames...)
		}
	}
	short := uint8(0)
	fmt.Sscanf(pool.CurrentJob().JobID, "%d", &short)
	lo, hi := byte(sid), byte(sid>>8)
	agentStr := hex.EncodeToString([]byte("cgminer/4.10.0averylongfirmwar")) // filtered, cut to 30
	want := []string{
		"7f01" + fmt.Sprintf("%02x00%02x%02x", 6+len("cgminer/4.10.0averylongfirmwar")+1+5, lo, hi) + agentStr + "00" + hex.EncodeToString([]byte("a001")) + "00",
		fmt.Sprintf("7f020f00%02x%02x%02x0d0c0b0a44332211", short, lo, hi),
		fmt.Sprintf("7f121300%02x%02x%02x0e0c0b0a4533221100200000", short, lo, hi),
		fmt.Sprintf("7f031300%02x%02x%02x0f0c0b0a46332211%02x%02x%02x%02x", short, lo, hi, byte(nt+1), byte((nt+1)>>8), byte((nt+1)>>16), byte((nt+1)>>24)),
		fmt.Sprintf("7f040600%02x%02x", lo, hi),
	}
	got := strings.Join(frames, " ")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("pool never received frame %s\nreceived: %s", w, got)
		}
	}
}

// One of several links dies: its miners move to the other link without
// reconnecting and keep getting shares accepted.
func TestKillOneLinkMovesMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Listen[0].Connections = 3
	// Keep the killed link down for the whole test: under load the moved
	// miners may need longer than any few seconds to get 3n shares in, and
	// a link back early makes "two links left" false for good.
	cfg.Upstream.ReconnectMin = time.Hour
	cfg.Upstream.ReconnectMax = time.Hour
	a := testenv.Agent(t, cfg, agent.Options{})
	ctx := testenv.Ctx(t)
	if err := a.WaitReady(ctx, 3); err != nil {
		t.Fatal(err)
	}
	const n = 12
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, Hash: true})
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 2*n && s.Totals.RegisteredWorkers == n }); err != nil {
		t.Fatal(err)
	}
	st := pool.Stats()
	victim := st.Conns[0]
	for _, c := range st.Conns {
		if c.Agent && len(c.FramesIn) > 0 {
			victim = c
			break
		}
	}
	before := st.Totals.Accepted
	pool.CloseConn(victim.ID)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.RegisteredWorkers == n && s.Totals.Accepted >= before+3*n && len(s.Conns) == 2
	}); err != nil {
		t.Fatalf("after killing one link: %+v", pool.Stats().Totals)
	}
	if s := sim.Stats(); s.Reconnects != 0 || s.Disconnects != 0 {
		t.Fatalf("miners reconnected: %+v", s)
	}
	if pool.Stats().Totals.Dropped != 0 {
		t.Fatal("pool dropped shares without a verdict")
	}
}
