package sharecheck_test

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// Through the real agent against a validating pool: after one real share,
// crafted shares sent on the same miner connection are judged locally. A
// duplicate gets 22, a low-difficulty share 23, a share before the job's
// time 31; none of them reaches the pool, whose totals count only the two
// valid shares.
func TestRejectsLocallyBeforeThePool(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{}) // full sha256d validation
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.Listen[0].Connections = 1 // one pool link, so the test knows the upstream EN1
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("share-check", nil)}
	a := testenv.Agent(t, cfg, agent.Options{})
	ctx := testenv.Ctx(t)

	miners := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 1, Hash: true, MaxSharesPerMiner: 1})
	if err := miners.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted == 1 }); err != nil {
		t.Fatalf("the real share was not accepted: %v %+v", err, miners.Stats().SharesRejected)
	}

	// Rebuild what the miner hashes: the pool's job with the agent's
	// upstream EN1 appended to coinb1, then the miner's EN1 and our EN2.
	st := pool.Stats()
	var upstreamEN1 string
	for _, c := range st.Conns {
		if c.Agent {
			upstreamEN1 = c.EN1
		}
	}
	view := miners.Miner(0)
	job := pool.CurrentJob()
	hj, err := codec.NewHashJob(job, upstreamEN1)
	if err != nil || upstreamEN1 == "" {
		t.Fatalf("job %v, upstream EN1 %q", err, upstreamEN1)
	}
	en1, err := hex.DecodeString(view.ExtraNonce1)
	if err != nil || len(en1) != 4 || view.Difficulty <= 0 || view.JobID == "" {
		t.Fatalf("miner view %+v", view)
	}
	const en2 = 0xfeedf00d // the real miner counts its EN2 up from 0
	var en2b [4]byte
	binary.BigEndian.PutUint32(en2b[:], en2)
	tgt := codec.TargetFromDifficulty(view.Difficulty)
	valid, low, found := uint32(0), uint32(0), 0
	for nonce := uint32(0); found != 3 && nonce < 1<<26; nonce++ {
		ok := tgt.Met(hj.Hash(en1, en2b[:], hj.Version, hj.NTime, nonce))
		switch {
		case ok && found&1 == 0:
			valid, found = nonce, found|1
		case !ok && found&2 == 0:
			low, found = nonce, found|2
		}
	}
	if found != 3 {
		t.Fatalf("could not find a valid and a low share at difficulty %g", view.Difficulty)
	}

	submit := func(id int, ntime uint32, nonce uint32) (code int) {
		t.Helper()
		line := fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["john.w000","%s","%08x","%08x","%08x"]}`, id, view.JobID, en2, ntime, nonce)
		before := miners.Miner(0).RawReplies
		if err := miners.SubmitRaw(0, []byte(line)); err != nil {
			t.Fatal(err)
		}
		if err := miners.WaitFor(ctx, func(*minersim.Summary) bool { return miners.Miner(0).RawReplies > before }); err != nil {
			t.Fatalf("no reply to %s: %v", line, err)
		}
		var r struct {
			Result bool              `json:"result"`
			Error  []json.RawMessage `json:"error"`
		}
		reply := miners.Miner(0).LastRawReply
		if err := json.Unmarshal([]byte(reply), &r); err != nil {
			t.Fatalf("reply %q: %v", reply, err)
		}
		if r.Result {
			return 0
		}
		if len(r.Error) == 0 || json.Unmarshal(r.Error[0], &code) != nil {
			t.Fatalf("reply %q has neither result nor error code", reply)
		}
		return code
	}
	if c := submit(101, hj.NTime, valid); c != 0 {
		t.Fatalf("crafted valid share rejected with %d", c)
	}
	if c := submit(102, hj.NTime, valid); c != int(codec.StatusDuplicateShare) {
		t.Errorf("duplicate answered %d, want 22", c)
	}
	if c := submit(103, hj.NTime, low); c != int(codec.StatusLowDifficulty) {
		t.Errorf("low-difficulty share answered %d, want 23", c)
	}
	if c := submit(104, hj.NTime-1, valid); c != int(codec.StatusTimeTooOld) {
		t.Errorf("share before the job's time answered %d, want 31", c)
	}

	st = pool.Stats()
	if st.Totals.Accepted != 2 || len(st.Totals.Rejected) != 0 || st.Totals.Dropped != 0 {
		t.Errorf("pool totals: accepted %d (want 2), rejected %v, dropped %d: local rejects reached the pool",
			st.Totals.Accepted, st.Totals.Rejected, st.Totals.Dropped)
	}
	ls := a.Listeners()[0].Stats
	if sent, local := ls.SharesSent.Load(), ls.LocalRejected.Load(); sent != 2 || local != 3 {
		t.Errorf("agent: %d shares sent upstream (want 2), %d rejected locally (want 3)", sent, local)
	}
}
