package sharecheck_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/plugins/plugintest"
	"github.com/btcagent/btcagent/plugins/sharecheck"
)

// The worked example of docs/SHARES.md, through the plugin: its
// share hashes to 0000033cbf67…, difficulty 0.0012066.
func TestWorkedExample(t *testing.T) {
	n := workedNotify()
	hj, err := codec.NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	h := hj.Hash([]byte{0xf0, 0, 0, 0x0f}, []byte{0, 0, 0, 0}, 0x20000000, 0x6b07071e, 0xc3335d00)
	if got := codec.DisplayHex(h); got != "0000033cbf676ef96a2eb5fef559278fcf22e3f6a348079e0ce122c4e2f6a280" {
		t.Fatalf("hash %s", got)
	}
	job := &msg.Job{ID: "j2", NTime: hj.NTime, Version: hj.Version, Hash: hj}
	for _, tc := range []struct {
		diff float64
		want codec.Status
	}{{0.001, 0}, {0.0012066, 0}, {0.0012067, codec.StatusLowDifficulty}, {1, codec.StatusLowDifficulty}} {
		c := plugintest.Build(t, plugintest.Spec(sharecheck.Name, false, nil))
		m := &msg.ShareSubmitted{Job: job, Difficulty: tc.diff, MinerEN1: [4]byte{0xf0, 0, 0, 0x0f}, NTime: 0x6b07071e, Nonce: 0xc3335d00, Latest: true, Scratch: &msg.Scratch{}}
		v := c.OnSubmit(m)
		if (v == msg.Continue) != (tc.want == 0) || m.Code != tc.want {
			t.Errorf("difficulty %g: verdict %v code %d, want code %d", tc.diff, v, m.Code, tc.want)
		}
	}
}

func workedNotify() *codec.Notify {
	return &codec.Notify{
		JobID:    "job2",
		PrevHash: "1cda83a5689bf23f73ff4872cef822783a032748000320280000000000000000",
		Coinb1:   "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff180341d10c",
		Coinb2:   "0b2f737475622d706f6f6c2fffffffff01205fa012000000001976a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac00000000",
		Branches: []string{
			"c274d3bfdf81b006fd5cde9817ea7d9e72d7f39457b1c99bfd49b34b94430678",
			"5dd04923048d8b362264fedd346c51f9f7ac0c23f5603399d7f4bf3c61d362dc",
			"b83b91374da7b5eff6bf7b4d78f84a73ef446fdab144bf112806be3133fff915",
		},
		Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e", Clean: true,
	}
}

// Memory is bounded: past max_shares_per_job a job's keys are no longer
// recorded (the pool still catches those duplicates), and a job evicted
// from the ring takes its keys with it.
func TestBounds(t *testing.T) {
	c := plugintest.Build(t, plugintest.Spec(sharecheck.Name, false, map[string]any{"jobs": 2, "max_shares_per_job": 3, "skip_hash": true}))
	var scratch msg.Scratch
	at := time.Unix(1700000000, 0)
	jobs := []*msg.Job{}
	for i := range 3 {
		jobs = append(jobs, &msg.Job{ID: fmt.Sprint("j", i), NTime: 100, Received: at.Add(time.Duration(i) * time.Second)})
	}
	submit := func(j *msg.Job, nonce uint32, latest bool) codec.Status {
		m := &msg.ShareSubmitted{Job: j, NTime: 100, Nonce: nonce, Latest: latest, Scratch: &scratch}
		c.OnSubmit(m)
		return m.Code
	}
	for nonce := uint32(1); nonce <= 4; nonce++ {
		if code := submit(jobs[0], nonce, true); code != 0 {
			t.Fatalf("nonce %d: %d", nonce, code)
		}
	}
	if code := submit(jobs[0], 3, true); code != codec.StatusDuplicateShare {
		t.Errorf("third share resent: %d, want 22", code)
	}
	if code := submit(jobs[0], 4, true); code != 0 {
		t.Errorf("fourth share (past the cap) resent: %d, want it passed to the pool", code)
	}
	submit(jobs[1], 1, false)
	submit(jobs[2], 1, true) // evicts j0, the oldest
	if code := submit(jobs[0], 1, false); code != codec.StatusJobNotFoundOrStale {
		t.Errorf("share on an evicted job: %d, want 21", code)
	}
	if code := submit(jobs[1], 1, false); code != codec.StatusDuplicateShare {
		t.Errorf("j1 is still in the ring: %d, want 22", code)
	}
}

func TestProvisionErrors(t *testing.T) {
	for want, opts := range map[string]map[string]any{
		"jobs = 300: want 1..256":                   {"jobs": 300},
		"max_shares_per_job = -1: must be positive": {"max_shares_per_job": -1},
		`unknown key "skiphash"`:                    {"skiphash": true},
		`wrong type for "jobs"`:                     {"jobs": "8"},
	} {
		_, err := plugintest.BuildErr(plugintest.Spec(sharecheck.Name, false, opts))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v, want %q", opts, err, want)
		}
	}
}

// benchJob is a job shaped like a real pool's: 12 merkle branches and a
// coinbase of about 250 bytes (poolsim's defaults).
func benchJob(b *testing.B, id int) *msg.Job {
	b.Helper()
	hexOf := func(n int, seed byte) string {
		buf := make([]byte, n)
		for i := range buf {
			buf[i] = seed + byte(i*7)
		}
		return fmt.Sprintf("%x", buf)
	}
	n := &codec.Notify{JobID: fmt.Sprint(id), PrevHash: hexOf(32, 1), Coinb1: hexOf(60, 2), Coinb2: hexOf(180, 3), Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e"}
	for i := range 12 {
		n.Branches = append(n.Branches, hexOf(32, byte(10+i)))
	}
	hj, err := codec.NewHashJob(n, "0a0b0c0d")
	if err != nil {
		b.Fatal(err)
	}
	return &msg.Job{ID: n.JobID, NTime: hj.NTime, Version: hj.Version, Hash: hj, Received: time.Unix(int64(1700000000+id), 0)}
}

// BenchmarkOnSubmit is the plugin's cost per share on the miner's actor, as
// a miner submits it: a new job every 16 shares, version rolling on,
// difficulty fixed (the target is cached). Most shares of a random nonce are
// low difficulty, which costs the same hash as a valid one.
//
//	go test -run '^$' -bench OnSubmit -benchmem ./plugins/sharecheck
func BenchmarkOnSubmit(b *testing.B) {
	for _, bc := range []struct {
		name string
		opts map[string]any
	}{{"hash", nil}, {"skip_hash", map[string]any{"skip_hash": true}}} {
		b.Run(bc.name, func(b *testing.B) {
			c := plugintest.Build(b, plugintest.Spec(sharecheck.Name, false, bc.opts))
			jobs := make([]*msg.Job, 64)
			for i := range jobs {
				jobs[i] = benchJob(b, i)
			}
			var scratch msg.Scratch
			info := &msg.MinerInfo{Worker: "rig1"}
			// One message reused, so that allocations reported are the
			// plugin's own (the core allocates the message per share anyway).
			m := new(msg.ShareSubmitted)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := jobs[(i/16)%len(jobs)]
				*m = msg.ShareSubmitted{Info: info, Job: j, Difficulty: 65536, MinerEN1: [4]byte{0, 0, 1, 2},
					ExtraNonce2: uint32(i), NTime: j.NTime, Nonce: uint32(i * 2654435761), VersionBits: 0x2000, HasVersion: true,
					VersionMask: 0x1fffe000, Latest: true, Scratch: &scratch}
				if c.OnSubmit(m) == msg.Reject && m.Code != codec.StatusLowDifficulty {
					b.Fatalf("unexpected reject %d", m.Code)
				}
			}
		})
	}
}

// BenchmarkChainOverhead is the same share through an empty chain, for
// comparison: what the core pays with no submit hook at all.
func BenchmarkChainOverhead(b *testing.B) {
	c := plugins.NewChain(nil)
	m := &msg.ShareSubmitted{Scratch: &msg.Scratch{}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		c.OnSubmit(m)
	}
}
