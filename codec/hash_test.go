package codec

import (
	"encoding/hex"
	"testing"
)

// The worked example of docs/SHARES.md: a real share must come
// out with the documented intermediate values and final hash.
const exampleNotify = `{"id":null,"method":"mining.notify","params":["job2","1cda83a5689bf23f73ff4872cef822783a032748000320280000000000000000",` +
	`"01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff180341d10c",` +
	`"0b2f737475622d706f6f6c2fffffffff01205fa012000000001976a91489abcdefabbaabbaabbaabbaabbaabbaabbaabba88ac00000000",` +
	`["c274d3bfdf81b006fd5cde9817ea7d9e72d7f39457b1c99bfd49b34b94430678","5dd04923048d8b362264fedd346c51f9f7ac0c23f5603399d7f4bf3c61d362dc","b83b91374da7b5eff6bf7b4d78f84a73ef446fdab144bf112806be3133fff915"],` +
	`"20000000","1d00ffff","6b07071e",true]}`

func parseExample(t testing.TB) *Notify {
	var r Request
	if err := ScanRequest([]byte(exampleNotify), &r); err != nil {
		t.Fatal(err)
	}
	n, err := ParseNotify(&r)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestWorkedExample(t *testing.T) {
	n := parseExample(t)
	j, err := NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	en1, _ := hex.DecodeString("f000000f")
	en2, _ := hex.DecodeString("00000000")
	root := j.MerkleRoot(en1, en2)
	if got := hex.EncodeToString(root[:]); got != "d21d98d3d3c08c8b0c549e1447c75c5bc715bb96247060a9c7d5013ffd37628e" {
		t.Errorf("merkle root %s", got)
	}
	h := j.Header(en1, en2, j.Version, 0x6b07071e, 0xc3335d00)
	want := "00000020a583da1c3ff29b687248ff737822f8ce4827033a282003000000000000000000" +
		"d21d98d3d3c08c8b0c549e1447c75c5bc715bb96247060a9c7d5013ffd37628e" + "1e07076bffff001d005d33c3"
	if got := hex.EncodeToString(h[:]); got != want {
		t.Errorf("header\n got %s\nwant %s", got, want)
	}
	hash := j.Hash(en1, en2, j.Version, 0x6b07071e, 0xc3335d00)
	if got := DisplayHex(hash); got != "0000033cbf676ef96a2eb5fef559278fcf22e3f6a348079e0ce122c4e2f6a280" {
		t.Errorf("hash %s", got)
	}
	tgt := TargetFromDifficulty(0.001)
	if got := hex.EncodeToString(tgt[:6]); got != "000003e7fc18" {
		t.Errorf("target prefix %s", got)
	}
	if !tgt.Met(hash) {
		t.Error("example share must meet difficulty 0.001")
	}
	// One flipped nonce bit makes it fail.
	bad := j.Hash(en1, en2, j.Version, 0x6b07071e, 0xc3335d01)
	if tgt.Met(bad) {
		t.Error("flipped nonce still meets 0.001")
	}
	// Intermediate value after the first branch, from the document.
	cb, _ := hex.DecodeString(n.Coinb1 + "f000000f" + "00000000" + n.Coinb2)
	r0 := DoubleSHA256(cb)
	if hex.EncodeToString(r0[:]) != "997311eb8e7de08609e221b21b3ab597f1febd1b22824b59e3030a62048e7112" {
		t.Errorf("coinbase hash %x", r0)
	}
}

func TestWorkedExampleNoBranches(t *testing.T) {
	n := parseExample(t)
	n.Branches = nil
	j, err := NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	en1, _ := hex.DecodeString("f000000f")
	en2 := []byte{0, 0, 0, 0}
	hash := j.Hash(en1, en2, j.Version, 0x6b07071c, 0x8a601400)
	if got := DisplayHex(hash); got != "000002e61f868f88805a8e65555d1fd9758f55c8d049d0b4a539db7cc4b4dce2" {
		t.Errorf("hash %s", got)
	}
	tgt := TargetFromDifficulty(0.001)
	if !tgt.Met(hash) {
		t.Error("must meet 0.001")
	}
	if d := HashDifficulty(hash); d < 0.001 || d > 0.01 {
		t.Errorf("hash difficulty %f", d)
	}
}

// The agent's EN1 split (docs/PROTOCOL.md §4.1, TV13) must give the pool's coinbase exactly.
func TestAgentExtranonceSplitMatchesPool(t *testing.T) {
	n := parseExample(t)
	poolJob, _ := NewHashJob(n, "")
	minerJob, _ := NewHashJob(n, "01000a2b") // coinb1' = coinb1 ‖ upstream EN1
	poolEN1, _ := hex.DecodeString("01000a2b")
	poolEN2, _ := hex.DecodeString("00000001deadbeef")
	minerEN1, _ := hex.DecodeString("00000001")
	minerEN2, _ := hex.DecodeString("deadbeef")
	a := poolJob.Hash(poolEN1, poolEN2, 0x20000000, 1, 2)
	b := minerJob.Hash(minerEN1, minerEN2, 0x20000000, 1, 2)
	if a != b {
		t.Error("agent-side and pool-side coinbases differ")
	}
}

func TestRolledVersionAndTargets(t *testing.T) {
	if v, ok := RolledVersion(0x20000000, 0x00120000, 0x1fffe000); !ok || v != 0x20120000 {
		t.Errorf("rolled %x %v", v, ok)
	}
	if _, ok := RolledVersion(0x20000000, 0x40000000, 0x1fffe000); ok {
		t.Error("bit outside mask accepted")
	}
	t1 := TargetFromDifficulty(1)
	if hex.EncodeToString(t1[:8]) != "00000000ffff0000" {
		t.Errorf("diff 1 target %x", t1)
	}
	easy := TargetFromDifficulty(0)
	var h [32]byte
	for i := range h {
		h[i] = 0xFF
	}
	if !easy.Met(h) {
		t.Error("diff 0 must accept anything")
	}
	hard := TargetFromDifficulty(1 << 40)
	h[31] = 0
	if hard.Met(h) {
		t.Error("hard target met by a weak hash")
	}
}

func TestNotifyRoundTrip(t *testing.T) {
	n := parseExample(t)
	line := n.AppendLine(nil, "01000a2b", false)
	var r Request
	if err := ScanRequest(line[:len(line)-1], &r); err != nil {
		t.Fatalf("rebuilt line invalid: %v\n%s", err, line)
	}
	m, err := ParseNotify(&r)
	if err != nil {
		t.Fatal(err)
	}
	if m.Coinb1 != n.Coinb1+"01000a2b" || m.Clean || len(m.Branches) != 3 || m.JobID != "job2" || m.NTime != "6b07071e" {
		t.Errorf("round trip: %+v", m)
	}
	// Without a suffix and with the same clean flag, the line is the pool's line.
	if got := string(n.AppendLine(nil, "", true)); got != exampleNotify+"\n" {
		t.Errorf("rebuilt line differs:\n%s\n%s", got, exampleNotify)
	}
	// Many branches (more than MaxParams) survive.
	n.Branches = append(n.Branches, n.Branches...)
	n.Branches = append(n.Branches, n.Branches...)
	line = n.AppendLine(nil, "", true)
	_ = ScanRequest(line[:len(line)-1], &r)
	if m, err = ParseNotify(&r); err != nil || len(m.Branches) != 12 {
		t.Errorf("12 branches: %v %d", err, len(m.Branches))
	}
}

func TestParseNotifyRejectsBadShapes(t *testing.T) {
	bad := []string{
		`["1","zz","a","b",[],"20000000","1d00ffff","6b07071e",true]`,
		`["1","` + repeat64("a") + `","a","b",[],"20000000","1d00ffff","6b07071e",true]`, // odd coinb1
		`["1","` + repeat64("a") + `","aa","bb",["abc"],"20000000","1d00ffff","6b07071e",true]`,
		`["1","` + repeat64("a") + `","aa","bb",[],"2000000","1d00ffff","6b07071e",true]`,
		`["1","` + repeat64("a") + `","aa","bb",[],"20000000","1d00ffff","6b07071e","true"]`,
		`["","` + repeat64("a") + `","aa","bb",[],"20000000","1d00ffff","6b07071e",true]`,
		`["1","` + repeat64("a") + `","aa","bb",[],"20000000","1d00ffff"]`,
	}
	for _, p := range bad {
		var r Request
		if err := ScanRequest([]byte(`{"id":null,"method":"mining.notify","params":`+p+`}`), &r); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseNotify(&r); err == nil {
			t.Errorf("accepted %s", p)
		}
	}
}

func repeat64(s string) string {
	out := ""
	for len(out) < 64 {
		out += s
	}
	return out
}

func TestTargetFromBits(t *testing.T) {
	hexT := func(s string) Target {
		var tg Target
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			t.Fatalf("bad hex %q", s)
		}
		copy(tg[:], b)
		return tg
	}
	cases := []struct {
		bits uint32
		want string
	}{
		// The genesis block's nBits, difficulty 1.
		{0x1d00ffff, "00000000ffff0000000000000000000000000000000000000000000000000000"},
		// Block 800,000's nBits.
		{0x17053894, "0000000000000000000538940000000000000000000000000000000000000000"},
		// Small exponents shift the mantissa right (regtest's 0x207fffff).
		{0x207fffff, "7fffff0000000000000000000000000000000000000000000000000000000000"},
		{0x03123456, "0000000000000000000000000000000000000000000000000000000000123456"},
		{0x02123456, "0000000000000000000000000000000000000000000000000000000000001234"},
		// Negative and zero mantissas give the zero target.
		{0x1d80ffff, "0000000000000000000000000000000000000000000000000000000000000000"},
		{0x1d000000, "0000000000000000000000000000000000000000000000000000000000000000"},
	}
	for _, c := range cases {
		if got := TargetFromBits(c.bits); got != hexT(c.want) {
			t.Errorf("TargetFromBits(%08x) = %x, want %s", c.bits, got, c.want)
		}
	}
	// Difficulty 1 from nBits equals difficulty 1 as a share target.
	if TargetFromBits(0x1d00ffff) != TargetFromDifficulty(1) {
		t.Error("nBits 1d00ffff is not difficulty 1")
	}
}
