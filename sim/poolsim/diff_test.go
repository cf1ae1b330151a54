package poolsim

import (
	"slices"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// Forced difficulty changes reach the agent as SET_DIFF frames grouped by
// exponent (ascending, ids ascending), all before the next notify (docs/PROTOCOL.md §6.2).
// Unchanged workers are left out.
func TestSetDiffGroupedBeforeNotify(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	for sid, name := range map[uint16]string{1: "w1", 2: "w2", 3: "w3", 4: "w4", 5: "w5", 6: "w6"} {
		a.register(sid, name)
	}
	a.ping("registered")
	p.SetWorkerDiff("demo.w5", 1024)
	p.SetWorkerDiff("demo.w1", 1024)
	p.SetWorkerDiff("demo.w2", 1000) // rounded up to 1024
	p.SetWorkerDiff("demo.w4", 65536)
	p.SetWorkerDiff("demo.w6", 16384) // the default already: no frame
	p.SetWorkerDiff("demo.nobody", 8) // unknown: ignored
	p.NewJob(false)

	type group struct {
		exp uint8
		ids []uint16
	}
	var got []group
	for {
		it, err := a.next()
		if err != nil {
			t.Fatal(err)
		}
		if it.frame == nil {
			if want := notifyLine(p.CurrentJob(), false); it.line != want {
				t.Fatalf("after the SET_DIFF frames: %s", it.line)
			}
			break
		}
		sd, err := codec.DecodeSetDiff(*it.frame)
		if err != nil {
			t.Fatal(err)
		}
		g := group{exp: sd.Exp}
		for i := range sd.Count {
			g.ids = append(g.ids, sd.ID(i))
		}
		got = append(got, g)
	}
	want := []group{{10, []uint16{1, 2, 5}}, {16, []uint16{4}}}
	if len(got) != len(want) {
		t.Fatalf("SET_DIFF frames %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].exp != want[i].exp || !slices.Equal(got[i].ids, want[i].ids) {
			t.Fatalf("SET_DIFF frames %+v, want %+v", got, want)
		}
	}
	st := p.Stats()
	for name, d := range map[string]float64{"demo.w1": 1024, "demo.w2": 1024, "demo.w3": 16384, "demo.w4": 65536, "demo.w6": 16384} {
		if st.Workers[name].Difficulty != d {
			t.Errorf("%s at %g, want %g", name, st.Workers[name].Difficulty, d)
		}
	}
	if st.Conns[0].FramesOut["MINING_SET_DIFF"] != 2 || st.Totals.SetDiffFrames != 2 {
		t.Errorf("SET_DIFF counters %v / %d", st.Conns[0].FramesOut, st.Totals.SetDiffFrames)
	}
	if len(st.EventsOf("set-worker-diff-ignored")) != 1 {
		t.Errorf("unknown worker not reported: %v", st.EventsOf("set-worker-diff-ignored"))
	}

	// Nothing pending any more: the next job comes alone.
	p.NewJob(false)
	a.expect(notifyLine(p.CurrentJob(), false))
}

// Difficulty is bound to jobs: after a SET_DIFF sent before job J1, a share
// on the older job J0 is judged at the old difficulty and one on J1 at the
// new one. Both shares are mined here at the old difficulty.
func TestDifficultyBoundToJobs(t *testing.T) {
	const low = 0.0001
	p := startPool(t, Config{JSONDiff: low})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	a.ping("registered") // SetWorkerDiff needs the worker to exist
	j0 := p.CurrentJob()
	p.SetWorkerDiff("demo.w1", 2)
	p.NewJob(false)
	f := a.frame()
	sd, err := codec.DecodeSetDiff(f)
	if err != nil || sd.Exp != 1 || sd.Count != 1 || sd.ID(0) != 1 {
		t.Fatalf("SET_DIFF %+v %v", sd, err)
	}
	j1 := p.CurrentJob()
	a.expect(notifyLine(j1, false))

	en2 := poolEN2(1, 5)
	n0 := mine(t, j0, a.en1Bytes(), en2, low, 0)
	a.submit(codec.Share{JobID: jobID(t, j0), SessionID: 1, ExtraNonce2: 5, Nonce: n0, NTime: j0.NTimeValue(), HasTime: true})
	a.expectVerdict(0, codec.StatusAccept)

	// A share good enough for the old difficulty and, as checked here, not
	// for the new one.
	hj, err := codec.NewHashJob(j1, "")
	if err != nil {
		t.Fatal(err)
	}
	tgt2 := codec.TargetFromDifficulty(2)
	n1 := mine(t, j1, a.en1Bytes(), en2, low, 0)
	for tgt2.Met(hj.Hash(a.en1Bytes(), en2, hj.Version, hj.NTime, n1)) {
		n1 = mine(t, j1, a.en1Bytes(), en2, low, n1+1)
	}
	a.submit(codec.Share{JobID: jobID(t, j1), SessionID: 1, ExtraNonce2: 5, Nonce: n1, NTime: j1.NTimeValue(), HasTime: true})
	a.expectVerdict(1, codec.StatusLowDifficulty)
}

// A plain miner gets a forced difficulty as JSON set_difficulty right
// before the next notify.
func TestPlainMinerSetWorkerDiff(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	m := connectMiner(t, p, "demo.rig7")
	p.SetWorkerDiff("demo.rig7", 3000)
	p.NewJob(false)
	m.expect(`{"id":null,"method":"mining.set_difficulty","params":[4096]}`)
	m.expect(notifyLine(p.CurrentJob(), false))
}

func TestVardiffRule(t *testing.T) {
	const tgt = 10 * time.Second
	cases := []struct {
		name      string
		cur       float64
		n         int
		sum       float64
		elapsed   time.Duration
		want      float64
		evaluated bool
	}{
		{"too early", 1024, 3, 3 * 1024, 5 * time.Second, 1024, false},
		{"on target", 1024, 6, 6 * 1024, 60 * time.Second, 1024, true},
		{"4x too fast", 1024, 24, 24 * 1024, 60 * time.Second, 4096, true},
		{"flood reacts within a second", 1024, 64, 64 * 1024, 2 * time.Second, 262144, true},
		{"2.5x too slow rounds to 1/2", 1024, 4, 4 * 1024, 100 * time.Second, 512, true},
		{"silence halves or more", 1024, 0, 0, 40 * time.Second, 256, true},
		{"short silence waits", 1024, 0, 0, 20 * time.Second, 1024, false},
		{"few shares wait longer", 1024, 2, 2 * 1024, 30 * time.Second, 1024, false},
		{"floor at 1", 2, 0, 0, 300 * time.Second, 1, true},
		{"fractional start kept", 0.001, 6, 0.006, 60 * time.Second, 0.001, true},
		{"fractional start raised when fast", 0.001, 1000, 1.0, 10 * time.Second, 1, true},
	}
	for _, tc := range cases {
		got, ev := vardiffNext(tc.cur, tc.n, tc.sum, tc.elapsed, tgt)
		if got != tc.want || ev != tc.evaluated {
			t.Errorf("%s: got %g (evaluated %t), want %g (%t)", tc.name, got, ev, tc.want, tc.evaluated)
		}
	}
}

// With Vardiff on, a worker that floods shares is moved up by SET_DIFF
// before the next job.
func TestVardiffRaisesFloodingWorker(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, Vardiff: true, DefaultDiff: 64, ShareTarget: time.Hour})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	n := p.CurrentJob()
	var batch []byte
	for i := range 40 {
		batch = codec.AppendSubmitShare(batch, &codec.Share{JobID: jobID(t, n), SessionID: 1, Nonce: uint32(i), NTime: n.NTimeValue(), HasTime: true})
	}
	a.write(batch)
	for i := range 40 {
		a.expectVerdict(uint16(i), codec.StatusAccept)
	}
	// The flood rule wants a second of history: move the pool's clock on.
	p.mu.Lock()
	p.clock = func() time.Time { return time.Now().Add(2 * time.Second) }
	p.mu.Unlock()
	p.NewJob(false)
	sd, err := codec.DecodeSetDiff(a.frame())
	if err != nil || sd.Count != 1 || sd.ID(0) != 1 || sd.Difficulty() <= 64 {
		t.Fatalf("want a higher difficulty for sid 1, got %+v (%v)", sd, err)
	}
	a.expect(notifyLine(p.CurrentJob(), false))
}
