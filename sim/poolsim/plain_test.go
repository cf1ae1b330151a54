package poolsim

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// minerLink is a subscribed and authorized plain Stratum miner.
type minerLink struct {
	*client
	en1 string
}

func connectMiner(t *testing.T, p *Pool, user string) *minerLink {
	t.Helper()
	c := dial(t, p)
	c.send(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1"]}`,
		`{"id":2,"method":"mining.authorize","params":["`+user+`","x"]}`)
	en1 := subscribeEN1(t, c.line())
	c.expect(`{"id":2,"result":true,"error":null}`)
	c.line() // set_difficulty
	c.line() // notify
	return &minerLink{client: c, en1: en1}
}

func (m *minerLink) submit(id string, params ...string) {
	m.t.Helper()
	q := make([]string, len(params))
	for i, s := range params {
		q[i] = `"` + s + `"`
	}
	m.send(fmt.Sprintf(`{"id":"%s","method":"mining.submit","params":[%s]}`, id, strings.Join(q, ",")))
}

func errLine(id string, code codec.Status, text string) string {
	return fmt.Sprintf(`{"id":"%s","result":null,"error":[%d,"%s",null]}`, id, code, text)
}

// A plain miner end to end: handshake replies, the side methods every
// firmware sends, and each submit verdict as JSON.
func TestPlainMinerEndToEnd(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	c.send(`{"id":1,"method":"mining.configure","params":[["version-rolling","minimum-difficulty"],{"version-rolling.mask":"00ffe000","minimum-difficulty.value":64}]}`)
	c.expect(`{"id":1,"result":{"version-rolling":true,"version-rolling.mask":"00ffe000","minimum-difficulty":false},"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_version_mask","params":["00ffe000"]}`)
	c.send(`{"id":2,"method":"mining.subscribe","params":["bmminer/2.1.0"]}`)
	en1 := subscribeEN1(t, c.line())
	c.send(`{"id":3,"method":"mining.submit","params":["demo.rig1","0","0000000000000000","00000000","00000000"]}`)
	c.expect(`{"id":3,"result":null,"error":[24,"Unauthorized worker",null]}`)
	c.send(`{"id":4,"method":"mining.authorize","params":["demo.rig1","x"]}`)
	c.expect(`{"id":4,"result":true,"error":null}`)
	c.expect(`{"id":null,"method":"mining.set_difficulty","params":[16384]}`)
	n := p.CurrentJob()
	c.expect(notifyLine(n, true))
	c.send(`{"id":5,"method":"mining.suggest_difficulty","params":[512]}`,
		`{"id":6,"method":"mining.extranonce.subscribe","params":[]}`,
		`{"id":7,"method":"mining.bogus","params":[]}`)
	c.expect(`{"id":5,"result":true,"error":null}`)
	c.expect(`{"id":6,"result":true,"error":null}`)
	c.expect(`{"id":7,"result":null,"error":[20,"Unknown method \"mining.bogus\"",null]}`)

	m := &minerLink{client: c, en1: en1}
	nt := n.NTime
	m.submit("a", "demo.rig1", n.JobID, "0000000100000002", nt, "00000001")
	m.expect(`{"id":"a","result":true,"error":null}`)
	m.submit("b", "demo.rig1", n.JobID, "0000000100000002", nt, "00000001")
	m.expect(errLine("b", codec.StatusDuplicateShare, "Duplicate share"))
	m.submit("c", "demo.rig1", n.JobID, "00000001", nt, "00000001")
	m.expect(errLine("c", codec.StatusIllegalParams, "extranonce2 must be 16 hex digits, got 8"))
	m.submit("d", "demo.rig1", "999", "0000000100000002", nt, "00000002")
	m.expect(errLine("d", codec.StatusJobNotFoundOrStale, "Job not found (=stale)"))
	m.submit("e", "demo.rig1", n.JobID, "0000000100000002", nt, "00000003", "00002000")
	m.expect(`{"id":"e","result":true,"error":null}`)
	m.submit("f", "demo.rig1", n.JobID, "0000000100000002", nt, "00000004", "10000000") // inside the pool's mask, outside the granted one
	m.expect(errLine("f", codec.StatusIllegalVersionMask, "Invalid version mask"))
	m.submit("g", "demo.rig1", n.JobID, "0000000100000002", codec.Hex32(n.NTimeValue()-1), "00000005")
	m.expect(errLine("g", codec.StatusTimeTooOld, "Time too old"))

	st := p.Stats()
	w, ok := st.Workers["demo.rig1"]
	if !ok || w.Agent || w.Accepted != 2 || w.Rejected[codec.StatusDuplicateShare] != 1 || w.UserAgent != "bmminer/2.1.0" {
		t.Fatalf("worker %+v", w)
	}
	cs := st.Conns[0]
	if cs.Agent || cs.User != "demo.rig1" || cs.Accepted != 2 || cs.Rejected[codec.StatusIllegalParams] != 1 || cs.Rejected[codec.StatusUnauthorized] != 1 {
		t.Fatalf("connection %+v", cs)
	}
}

// A real share mined over the plain path is accepted; one nonce bit
// flipped gives 23.
func TestPlainMinerRealShare(t *testing.T) {
	const diff = 0.0001
	p := startPool(t, Config{JSONDiff: diff})
	m := connectMiner(t, p, "demo.cpu")
	n := p.CurrentJob()
	en1, _ := hex.DecodeString(m.en1)
	en2, _ := hex.DecodeString("00000000000000ab")
	nonce := mine(t, n, en1, en2, diff, 0)
	m.submit("1", "demo.cpu", n.JobID, "00000000000000ab", n.NTime, codec.Hex32(nonce))
	m.expect(`{"id":"1","result":true,"error":null}`)

	hj, err := codec.NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	tgt := codec.TargetFromDifficulty(diff)
	bad := nonce ^ 1
	for bit := 1; tgt.Met(hj.Hash(en1, en2, hj.Version, hj.NTime, bad)); bit++ {
		bad = nonce ^ 1<<bit
	}
	m.submit("2", "demo.cpu", n.JobID, "00000000000000ab", n.NTime, codec.Hex32(bad))
	m.expect(errLine("2", codec.StatusLowDifficulty, "Low difficulty"))
	if w := p.Stats().Workers["demo.cpu"]; w.Accepted != 1 || w.Rejected[codec.StatusLowDifficulty] != 1 || w.Difficulty != diff {
		t.Fatalf("worker %+v", w)
	}
}

// The worked examples of docs/SHARES.md, replayed through the
// pool's plain-miner path: EN1 f000000f, EN2 size 4, difficulty 0.001.
func TestWorkedExample(t *testing.T) {
	p := startPool(t, Config{EN2Size: 4, JSONDiff: 0.001})
	p.mu.Lock()
	p.serverID, p.en1Next = 0xf0, 0x00000f // the next connection gets EN1 f000000f
	p.mu.Unlock()
	m := connectMiner(t, p, "worker1")
	if m.en1 != "f000000f" {
		t.Fatalf("EN1 %s", m.en1)
	}
	job2 := &codec.Notify{
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
	if err := p.publishJob(job2, true); err != nil {
		t.Fatal(err)
	}
	m.expect(notifyLine(job2, true))
	m.submit("1", "worker1", "job2", "00000000", "6b07071e", "c3335d00")
	m.expect(`{"id":"1","result":true,"error":null}`)
	m.submit("2", "worker1", "job2", "00000000", "6b07071e", "c3335d01")
	m.expect(errLine("2", codec.StatusLowDifficulty, "Low difficulty"))

	// The second example: same block, no branches, the share's own nTime.
	job1 := *job2
	job1.JobID, job1.Branches, job1.NTime, job1.Clean = "job1", nil, "6b07071c", false
	if err := p.publishJob(&job1, false); err != nil {
		t.Fatal(err)
	}
	m.expect(notifyLine(&job1, false))
	m.submit("3", "worker1", "job1", "00000000", "6b07071c", "8a601400")
	m.expect(`{"id":"3","result":true,"error":null}`)
	if w := p.Stats().Workers["worker1"]; w.Accepted != 2 {
		t.Fatalf("worker %+v", w)
	}
}
