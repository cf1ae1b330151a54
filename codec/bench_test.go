package codec

import "testing"

var submitLine = []byte(`{"id":4242,"method":"mining.submit","params":["farm1.a001","17","0000a3f1","6b07071e","c3335d00","00120000"]}`)

// BenchmarkSubmitParse is the per-share receive path: scan + parse.
func BenchmarkSubmitParse(b *testing.B) {
	b.ReportAllocs()
	var r Request
	for i := 0; i < b.N; i++ {
		if err := ScanRequest(submitLine, &r); err != nil {
			b.Fatal(err)
		}
		if _, err := ParseSubmit(&r, 4); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSubmitEncode is the per-share upstream path: frame + the true reply.
func BenchmarkSubmitEncode(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	reply := make([]byte, 0, 64)
	s := Share{JobID: 17, SessionID: 9, ExtraNonce2: 0xa3f1, Nonce: 0xc3335d00, VersionBits: 0x120000, HasVersion: true}
	for i := 0; i < b.N; i++ {
		buf = AppendSubmitShare(buf[:0], &s)
		reply = AppendTrue(reply[:0], submitLine[6:10])
	}
}

// BenchmarkNotifyRewrite builds the miner-facing notify (coinb1 + upstream EN1)
// with 12 branches; the agent does it once per job per upstream.
func BenchmarkNotifyRewrite(b *testing.B) {
	n := parseExample(b)
	for len(n.Branches) < 12 {
		n.Branches = append(n.Branches, n.Branches[0])
	}
	b.ReportAllocs()
	buf := make([]byte, 0, 4096)
	for i := 0; i < b.N; i++ {
		buf = n.AppendLine(buf[:0], "01000a2b", true)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkShareHash is the cost of validating one share locally (12 branches).
func BenchmarkShareHash(b *testing.B) {
	n := parseExample(b)
	for len(n.Branches) < 12 {
		n.Branches = append(n.Branches, n.Branches[0])
	}
	j, _ := NewHashJob(n, "01000a2b")
	en1 := []byte{0, 0, 0, 1}
	en2 := []byte{0, 0, 0xa3, 0xf1}
	tgt := TargetFromDifficulty(65536)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h := j.Hash(en1, en2, 0x20120000, 0x6b07071e, uint32(i))
		_ = tgt.Met(h)
	}
}

// BenchmarkSetDiffFanout decodes a SET_DIFF for 10,000 sessions and builds
// each miner's set_difficulty line.
func BenchmarkSetDiffFanout(b *testing.B) {
	ids := make([]uint16, 10000)
	for i := range ids {
		ids[i] = uint16(i)
	}
	frame := AppendSetDiff(nil, 14, ids)
	line := make([]byte, 0, 128)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f, _, err := DecodeFrame(frame)
		if err != nil {
			b.Fatal(err)
		}
		d, _ := DecodeSetDiff(f)
		for k := 0; k < d.Count; k++ {
			_ = d.ID(k)
			line = AppendSetDifficulty(line[:0], float64(d.Difficulty()))
		}
	}
}

// BenchmarkNotifyScan is what a miner (or the simulator standing in for
// 10,000 of them) spends reading one 12-branch notify line.
func BenchmarkNotifyScan(b *testing.B) {
	n := parseExample(b)
	for len(n.Branches) < 12 {
		n.Branches = append(n.Branches, n.Branches[0])
	}
	line := n.AppendLine(nil, "01000a2b", true)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	var r Request
	for i := 0; i < b.N; i++ {
		if err := ScanRequest(line, &r); err != nil {
			b.Fatal(err)
		}
	}
}
