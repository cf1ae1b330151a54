package agent_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// SET_DIFF frames for a subset of sessions reach exactly those miners, as a
// set_difficulty written before the next job, in the pool's order.
func TestSetDiffReachesExactlyItsMiners(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	a := testenv.Agent(t, testenv.Config(t, "farm", pool.Addr()), agent.Options{})
	const n = 6
	miners := make([]*testenv.RawMiner, n)
	for i := range miners {
		miners[i] = testenv.Dial(t, testenv.Addr(a))
		miners[i].Login("john.m"+string(rune('0'+i)), false)
	}
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.RegisteredWorkers >= n }); err != nil {
		t.Fatal(err)
	}
	// Workers m1, m3 go to 1024; m4 to 4096; the others keep the default.
	pool.SetWorkerDiff("farm.m1", 1024)
	pool.SetWorkerDiff("farm.m3", 1024)
	pool.SetWorkerDiff("farm.m4", 4096)
	pool.NewJob(false)
	want := map[int]string{1: "1024", 3: "1024", 4: "4096"}
	for i, m := range miners {
		notify, before := m.Until(wait, func(x testenv.Msg) bool { return x.Method == "mining.notify" })
		var diffs []string
		for _, x := range before {
			if x.Method == "mining.set_difficulty" {
				diffs = append(diffs, string(x.Params[0]))
			}
		}
		if exp, ok := want[i]; ok {
			if len(diffs) != 1 || diffs[0] != exp {
				t.Errorf("miner m%d: difficulties before the job %v, want [%s]", i, diffs, exp)
			}
		} else if len(diffs) != 0 {
			t.Errorf("miner m%d got difficulties %v meant for others", i, diffs)
		}
		if string(notify.Params[8]) != "false" {
			t.Errorf("miner m%d: job should keep the pool's clean=false", i)
		}
	}
}

// With subres negotiated, the pool's verdict reaches the right miner with
// the pool's code; good shares are answered true.
func TestSubmitResponseRelaysPoolVerdicts(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{FixedDiff: 1 << 20}) // nothing a random nonce can meet
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Upstream.SubmitResponse = true
	a := testenv.Agent(t, cfg, agent.Options{})
	m := testenv.Dial(t, testenv.Addr(a))
	_, notify, _ := m.Login("john.bad", false)
	job := notify.Str(0)
	ntime := notify.Str(7)
	m.Send(`{"id":"s1","method":"mining.submit","params":["john.bad","` + job + `","00000001","` + ntime + `","12345678"]}`)
	r, _ := m.Until(wait, func(x testenv.Msg) bool { return string(x.ID) == `"s1"` })
	if !strings.HasPrefix(string(r.Error), "[23,") || string(r.Result) != "null" {
		t.Fatalf("low-difficulty share: %s", r.Raw)
	}
	// Good shares in the same mode: hash-mode miners at the pool's JSON difficulty.
	pool2 := testenv.Pool(t, poolsim.Config{})
	cfg2 := testenv.Config(t, "farm", pool2.Addr())
	cfg2.Upstream.SubmitResponse = true
	a2 := testenv.Agent(t, cfg2, agent.Options{})
	var mu sync.Mutex
	var results []minersim.ShareResult
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a2), Miners: 4, Hash: true, MaxSharesPerMiner: 3,
		OnShare: func(r minersim.ShareResult) { mu.Lock(); results = append(results, r); mu.Unlock() }})
	if err := sim.WaitFor(testenv.Ctx(t), func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= 12 }); err != nil {
		t.Fatal(err)
	}
	if s := sim.Stats(); s.SharesAccepted != 12 {
		t.Fatalf("accepted %d of 12: %v", s.SharesAccepted, s.SharesRejected)
	}
	if st := pool2.Stats(); st.Totals.Accepted != 12 {
		t.Fatalf("pool accepted %d", st.Totals.Accepted)
	}
}

// An extranonce2 size other than 8 is refused with one clear log line, and
// the agent does not start serving work from that pool.
func TestRefusesPoolWithWrongExtranonce2Size(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{EN2Size: 4})
	cfg := testenv.Config(t, "farm", pool.Addr())
	var buf testenv.SyncBuffer
	log := logrus.New()
	log.SetOutput(&buf)
	log.SetLevel(logrus.WarnLevel)
	seen := make(chan string, 16)
	log.AddHook(&matchHook{substr: "extranonce2 size is 4", ch: seen})
	a, err := agent.New(cfg, log, agent.Options{Socket: testenv.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	select {
	case line := <-seen:
		if !strings.Contains(line, "btcpool sserver") {
			t.Errorf("log line should say why: %s", line)
		}
	case <-time.After(wait):
		t.Fatalf("no log line about the extranonce2 size; log:\n%s", buf.String())
	}
	snap, err := a.Listeners()[0].Snapshot(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range snap.Upstreams {
		if u.Ready {
			t.Fatalf("slot %d became ready on a pool with EN2 size 4", u.Slot)
		}
	}
}

// matchHook forwards log messages containing substr, so a test can await a log line.
type matchHook struct {
	substr string
	ch     chan string
}

func (h *matchHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *matchHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, h.substr) {
		select {
		case h.ch <- e.Message:
		default:
		}
	}
	return nil
}

var _ = json.Valid
