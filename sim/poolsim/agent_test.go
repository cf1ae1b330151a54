package poolsim

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// Every verdict path of a binary submit, with subres on: each validated
// share takes the next index, dropped frames take none (docs/PROTOCOL.md §5.3, §9.3).
func TestAgentShareVerdicts(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	n := p.CurrentJob()
	id, nt := jobID(t, n), n.NTimeValue()
	base := codec.Share{JobID: id, SessionID: 1, ExtraNonce2: 0xdeadbeef, Nonce: 100, NTime: nt, HasTime: true}

	steps := []struct {
		name  string
		share codec.Share
		want  codec.Status
	}{
		{"accepted with version bits", with(base, func(s *codec.Share) { s.HasVersion, s.VersionBits = true, 0x00002000 }), codec.StatusAccept},
		{"same share again", with(base, func(s *codec.Share) { s.HasVersion, s.VersionBits = true, 0x00002000 }), codec.StatusDuplicateShare},
		{"same nonce, other version bits", with(base, func(s *codec.Share) { s.HasVersion, s.VersionBits = true, 0x00004000 }), codec.StatusAccept},
		{"bits outside the mask", with(base, func(s *codec.Share) { s.Nonce, s.HasVersion, s.VersionBits = 101, true, 0x80000000 }), codec.StatusIllegalVersionMask},
		{"ntime below the job's", with(base, func(s *codec.Share) { s.Nonce, s.NTime = 102, nt-1 }), codec.StatusTimeTooOld},
		{"ntime 7201 s ahead", with(base, func(s *codec.Share) { s.Nonce, s.NTime = 103, nt+7201 }), codec.StatusTimeTooNew},
		{"ntime 7200 s ahead", with(base, func(s *codec.Share) { s.Nonce, s.NTime = 104, nt+7200 }), codec.StatusAccept},
		{"job id never issued", with(base, func(s *codec.Share) { s.Nonce, s.JobID = 105, id+100 }), codec.StatusJobNotFoundOrStale},
		{"no nTime means the job's", with(base, func(s *codec.Share) { s.Nonce, s.HasTime, s.NTime = 106, false, 0 }), codec.StatusAccept},
		{"0x02 duplicate of 0x03 with the job's nTime", with(base, func(s *codec.Share) { s.Nonce = 106 }), codec.StatusDuplicateShare},
		{"other session, same EN2 and nonce", with(base, func(s *codec.Share) { s.SessionID = 2 }), codec.StatusAccept},
	}
	a.register(2, "w2")
	for i, s := range steps {
		a.submit(s.share)
		idx, st := a.verdict()
		if idx != uint16(i) || st != s.want {
			t.Fatalf("%s: got index %d status %d (%s), want index %d status %d", s.name, idx, st, st.Text(), i, s.want)
		}
	}

	// A submit frame of the wrong size is dropped without using an index.
	short := codec.AppendSubmitShare(nil, &base)
	short = short[:len(short)-1]
	short[2] = byte(len(short))
	a.write(short)
	// So is a share for a session that never registered.
	a.submit(with(base, func(s *codec.Share) { s.SessionID = 9 }))
	a.submit(with(base, func(s *codec.Share) { s.Nonce = 200 }))
	a.expectVerdict(uint16(len(steps)), codec.StatusAccept)

	st := p.Stats()
	cs := st.Conns[0]
	if cs.Validated != uint64(len(steps)+1) || cs.SubmitIndex != uint16(len(steps)+1) || cs.Dropped != 2 {
		t.Errorf("validated %d, next index %d, dropped %d", cs.Validated, cs.SubmitIndex, cs.Dropped)
	}
	wantRej := map[codec.Status]uint64{22: 2, 33: 1, 31: 1, 32: 1, 21: 1}
	if !maps.Equal(cs.Rejected, wantRej) || cs.Accepted != 6 {
		t.Errorf("accepted %d rejected %v, want 6 and %v", cs.Accepted, cs.Rejected, wantRej)
	}
	w1 := st.Workers["demo.w1"]
	if w1.Accepted != 5 || w1.Rejected[codec.StatusDuplicateShare] != 2 || !w1.Agent || w1.SessionID != 1 || w1.UserAgent != "bmminer/2.1.0" {
		t.Errorf("worker demo.w1 %+v", w1)
	}
	if !maps.Equal(st.Totals.Rejected, wantRej) || st.Totals.Dropped != 2 {
		t.Errorf("totals %+v", st.Totals)
	}
	if got := cs.FramesIn["SUBMIT_SHARE_WITH_TIME_VER"]; got != 4 {
		t.Errorf("0x13 frames in: %d", got)
	}
	if got := cs.FramesOut["SUBMIT_RESPONSE"]; got != uint64(len(steps)+1) {
		t.Errorf("verdict frames out: %d", got)
	}
	if len(cs.RecentFrames) == 0 || !strings.HasPrefix(cs.RecentFrames[len(cs.RecentFrames)-1], "7f0313") {
		t.Errorf("recent frames %v", cs.RecentFrames)
	}
}

func with(s codec.Share, f func(*codec.Share)) codec.Share {
	f(&s)
	return s
}

// REGISTER/UNREGISTER follow sserver's rules (docs/PROTOCOL.md §5.1, §5.2): too long or
// sid 0xFFFF ignored, re-register a no-op, UNREGISTER exactly 6 bytes, and
// ex-messages before authorize ignored. Shares for sessions that are not
// registered get no verdict.
func TestRegisterRules(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	a := &agentLink{client: c}
	c.send(`{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`)
	c.line()
	// Before authorize: sserver's null dispatcher discards it.
	a.register(5, "early")
	c.send(`{"id":"auth","method":"mining.authorize","params":["demo",""]}`,
		`{"id":"caps","method":"agent.get_capabilities","params":[["verrol","subres"]]}`)
	for range 4 {
		c.line()
	}

	long := strings.Repeat("x", codec.MaxRegisterLen-6-len("bmminer/2.1.0")-2+1) // one byte over 100
	if l := codec.RegisterLen("bmminer/2.1.0", long); l != 101 {
		t.Fatalf("test frame is %d bytes", l)
	}
	a.register(6, long)
	a.register(0xFFFF, "reserved")
	a.register(1, "first")
	a.register(1, "second") // emplace: the first one stays
	unreg7 := append(codec.AppendUnregisterWorker(nil, 1), 0)
	unreg7[2] = 7
	a.write(unreg7) // wrong size: ignored, w1 stays registered

	n := p.CurrentJob()
	share := func(sid uint16, nonce uint32) codec.Share {
		return codec.Share{JobID: jobID(t, n), SessionID: sid, ExtraNonce2: 1, Nonce: nonce, NTime: n.NTimeValue(), HasTime: true}
	}
	for _, sid := range []uint16{5, 6, 0xFFFF} {
		a.submit(share(sid, 1))
	}
	if before := c.ping("p1"); len(before) != 0 {
		t.Fatalf("shares of unregistered sessions were answered: %v", before)
	}
	a.submit(share(1, 2))
	a.expectVerdict(0, codec.StatusAccept)

	st := p.Stats()
	if _, ok := st.Workers["demo.first"]; !ok || len(st.Workers) != 1 {
		t.Fatalf("workers %v, want only demo.first", keys(st.Workers))
	}
	if st.Totals.RegisteredWorkers != 1 || st.Conns[0].Dropped != 3 || st.Conns[0].Ignored != 5 {
		t.Fatalf("registered %d dropped %d ignored %d", st.Totals.RegisteredWorkers, st.Conns[0].Dropped, st.Conns[0].Ignored)
	}

	// A proper UNREGISTER removes the session: its shares are dropped again.
	a.write(codec.AppendUnregisterWorker(nil, 1))
	a.submit(share(1, 3))
	if before := c.ping("p2"); len(before) != 0 {
		t.Fatalf("share after unregister answered: %v", before)
	}
	st = p.Stats()
	if w := st.Workers["demo.first"]; w.Online || st.Totals.RegisteredWorkers != 0 {
		t.Fatalf("after unregister: worker %+v, registered %d", w, st.Totals.RegisteredWorkers)
	}
	// The name is free for a new registration, which starts a new session.
	a.register(1, "second")
	a.submit(share(1, 4))
	a.expectVerdict(1, codec.StatusAccept)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Job window and blocks: the last 16 jobs accept shares, older ids and
// every job before the latest new block get 21.
func TestStaleAndExpiredJobs(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	var jobs []*codec.Notify
	jobs = append(jobs, p.CurrentJob())
	for range LiveJobs {
		p.NewJob(false)
		a.line() // the notify
		jobs = append(jobs, p.CurrentJob())
	}
	share := func(n *codec.Notify, nonce uint32) codec.Share {
		return codec.Share{JobID: jobID(t, n), SessionID: 1, Nonce: nonce, NTime: n.NTimeValue(), HasTime: true}
	}
	a.submit(share(jobs[0], 1)) // 17 jobs old: gone
	a.expectVerdict(0, codec.StatusJobNotFoundOrStale)
	a.submit(share(jobs[1], 2)) // the oldest live job
	a.expectVerdict(1, codec.StatusAccept)

	p.NewJob(true)
	if line := a.line(); !strings.HasSuffix(line, ",true]}") {
		t.Fatalf("a new block must have clean_jobs true: %s", line)
	}
	a.submit(share(jobs[LiveJobs], 3)) // the previous block's newest job
	a.expectVerdict(2, codec.StatusJobNotFoundOrStale)
	a.submit(share(p.CurrentJob(), 4))
	a.expectVerdict(3, codec.StatusAccept)
	if line := p.CurrentJob(); line.PrevHash == jobs[LiveJobs].PrevHash {
		t.Fatal("new block kept the prevhash")
	}
	if jobs[1].PrevHash != jobs[LiveJobs].PrevHash {
		t.Fatal("jobs of one block must share the prevhash")
	}
}

// Full validation at the default difficulty: a random share misses the
// target and is rejected with 23.
func TestLowDifficulty(t *testing.T) {
	p := startPool(t, Config{})
	a := connectAgent(t, p, "demo", true)
	a.register(3, "w3")
	n := p.CurrentJob()
	a.submit(codec.Share{JobID: jobID(t, n), SessionID: 3, ExtraNonce2: 7, Nonce: 12345, NTime: n.NTimeValue(), HasTime: true})
	a.expectVerdict(0, codec.StatusLowDifficulty)
	if w := p.Stats().Workers["demo.w3"]; w.Rejected[codec.StatusLowDifficulty] != 1 || w.LastStatus != codec.StatusLowDifficulty {
		t.Fatalf("worker %+v", w)
	}
}

// A real share, mined here over the agent path (EN2_pool = sid<<32|en2),
// is accepted; the same share with one nonce bit flipped is rejected 23.
func TestRealShareOverAgent(t *testing.T) {
	const diff = 0.0001
	p := startPool(t, Config{JSONDiff: diff})
	a := connectAgent(t, p, "demo", true)
	a.register(0x0102, "rig")
	n := p.CurrentJob()
	const en2 = 0xcafe0001
	nonce := mine(t, n, a.en1Bytes(), poolEN2(0x0102, en2), diff, 0)
	share := codec.Share{JobID: jobID(t, n), SessionID: 0x0102, ExtraNonce2: en2, Nonce: nonce, NTime: n.NTimeValue(), HasTime: true}
	a.submit(share)
	a.expectVerdict(0, codec.StatusAccept)

	hj, err := codec.NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	tgt := codec.TargetFromDifficulty(diff)
	flipped := nonce
	for bit := 0; bit < 32; bit++ {
		flipped = nonce ^ 1<<bit
		if !tgt.Met(hj.Hash(a.en1Bytes(), poolEN2(0x0102, en2), hj.Version, hj.NTime, flipped)) {
			break
		}
	}
	share.Nonce = flipped
	a.submit(share)
	a.expectVerdict(1, codec.StatusLowDifficulty)
	w := p.Stats().Workers["demo.rig"]
	if w.Accepted != 1 || w.Rejected[codec.StatusLowDifficulty] != 1 {
		t.Fatalf("worker %+v", w)
	}
}

// The acceptance shape other suites rely on: 200 agent workers each with
// a share, all seen by name and all accepted.
func TestManyWorkersByName(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	n := p.CurrentJob()
	var batch []byte
	for i := range 200 {
		batch = codec.AppendRegisterWorker(batch, uint16(i), "cgminer/4.11.1", fmt.Sprintf("w%03d", i))
	}
	for i := range 200 {
		batch = codec.AppendSubmitShare(batch, &codec.Share{JobID: jobID(t, n), SessionID: uint16(i), ExtraNonce2: 1, Nonce: 1, NTime: n.NTimeValue(), HasTime: true})
	}
	a.write(batch)
	st := waitFor(t, p, "200 accepted shares", func(s *Stats) bool { return s.Totals.Accepted == 200 })
	if len(st.Workers) != 200 || st.Totals.RegisteredWorkers != 200 {
		t.Fatalf("%d workers, %d registered", len(st.Workers), st.Totals.RegisteredWorkers)
	}
	for i := range 200 {
		name := fmt.Sprintf("demo.w%03d", i)
		w, ok := st.Workers[name]
		if !ok || w.Accepted != 1 || len(w.Rejected) != 0 || !w.Online || w.SessionID != uint16(i) {
			t.Fatalf("worker %s: %+v", name, w)
		}
	}
	for i := range 200 {
		a.expectVerdict(uint16(i), codec.StatusAccept)
	}
}
