package codec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhexSpaced(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad vector %q: %v", s, err)
	}
	return b
}

// The test vectors of docs/PROTOCOL.md §11, byte for byte.
func TestSpecVectorsEncode(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"TV1 register", AppendRegisterWorker(nil, 0x0001, "bmminer/2.1.0", "a001"),
			"7f 01 19 00 01 00 62 6d 6d 69 6e 65 72 2f 32 2e 31 2e 30 00 61 30 30 31 00"},
		{"TV2 register", AppendRegisterWorker(nil, 0x1122, "cgminer", "s1099"),
			"7f 01 14 00 22 11 63 67 6d 69 6e 65 72 00 73 31 30 39 39 00"},
		{"TV3 register default", AppendRegisterWorker(nil, 0x00FF, "", DefaultWorkerName),
			"7f 01 13 00 ff 00 00 5f 5f 64 65 66 61 75 6c 74 5f 5f 00"},
		{"TV4 unregister", AppendUnregisterWorker(nil, 1), "7f 04 06 00 01 00"},
		{"TV5 submit", AppendSubmitShare(nil, &Share{JobID: 5, SessionID: 1, ExtraNonce2: 2, Nonce: 0x1a2b3c4d}),
			"7f 02 0f 00 05 01 00 02 00 00 00 4d 3c 2b 1a"},
		{"TV6 submit time", AppendSubmitShare(nil, &Share{JobID: 5, SessionID: 1, ExtraNonce2: 2, Nonce: 0x1a2b3c4d, NTime: 0x5f5e0f3c, HasTime: true}),
			"7f 03 13 00 05 01 00 02 00 00 00 4d 3c 2b 1a 3c 0f 5e 5f"},
		{"TV7 submit ver", AppendSubmitShare(nil, &Share{JobID: 0xa9, SessionID: 0x1122, ExtraNonce2: 0x11223344, Nonce: 0xaabbccdd, VersionBits: 0x00120000, HasVersion: true}),
			"7f 12 13 00 a9 22 11 44 33 22 11 dd cc bb aa 00 00 12 00"},
		{"TV8 submit time ver", AppendSubmitShare(nil, &Share{JobID: 0xa9, SessionID: 0x1122, ExtraNonce2: 0x11223344, Nonce: 0xaabbccdd, NTime: 0x57bd2ad0, HasTime: true, VersionBits: 0x00120000, HasVersion: true}),
			"7f 13 17 00 a9 22 11 44 33 22 11 dd cc bb aa d0 2a bd 57 00 00 12 00"},
		{"TV9 set diff", AppendSetDiff(nil, 14, []uint16{1, 2, 0x100}), "7f 05 0d 00 0e 03 00 01 00 02 00 00 01"},
		{"AGENT.md set diff", AppendSetDiff(nil, 13, []uint16{0x1122, 0x3344}), "7f 05 0b 00 0d 02 00 22 11 44 33"},
		{"TV10 response accept", AppendSubmitResponse(nil, 7, StatusAccept), "7f 10 0a 00 07 00 87 96 2c 6b"},
		{"TV11 response duplicate", AppendSubmitResponse(nil, 0xFFFE, StatusDuplicateShare), "7f 10 0a 00 fe ff 16 00 00 00"},
	}
	for _, c := range cases {
		if want := unhexSpaced(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("%s:\n got % x\nwant % x", c.name, c.got, want)
		}
	}
}

func TestSpecVectorsDecode(t *testing.T) {
	dec := func(s string) Frame {
		f, n, err := DecodeFrame(unhexSpaced(t, s))
		if err != nil || n != len(unhexSpaced(t, s)) {
			t.Fatalf("decode %s: n=%d err=%v", s, n, err)
		}
		return f
	}
	r, err := DecodeRegisterWorker(dec("7f 01 19 00 01 00 62 6d 6d 69 6e 65 72 2f 32 2e 31 2e 30 00 61 30 30 31 00"))
	if err != nil || r != (Register{1, "bmminer/2.1.0", "a001"}) {
		t.Errorf("TV1 decode: %+v %v", r, err)
	}
	r, err = DecodeRegisterWorker(dec("7f 01 13 00 ff 00 00 5f 5f 64 65 66 61 75 6c 74 5f 5f 00"))
	if err != nil || r != (Register{0xFF, "", "__default__"}) {
		t.Errorf("TV3 decode: %+v %v", r, err)
	}
	// An empty worker string becomes __default__ as sserver does.
	r, err = DecodeRegisterWorker(Frame{Cmd: CmdRegisterWorker, Body: []byte{2, 0, 'x', 0, 0}})
	if err != nil || r.Worker != DefaultWorkerName || r.Agent != "x" {
		t.Errorf("empty worker: %+v %v", r, err)
	}
	sid, err := DecodeUnregisterWorker(dec("7f 04 06 00 01 00"))
	if err != nil || sid != 1 {
		t.Errorf("TV4: %d %v", sid, err)
	}
	shares := map[string]Share{
		"7f 02 0f 00 05 01 00 02 00 00 00 4d 3c 2b 1a":                         {JobID: 5, SessionID: 1, ExtraNonce2: 2, Nonce: 0x1a2b3c4d},
		"7f 03 13 00 05 01 00 02 00 00 00 4d 3c 2b 1a 3c 0f 5e 5f":             {JobID: 5, SessionID: 1, ExtraNonce2: 2, Nonce: 0x1a2b3c4d, NTime: 0x5f5e0f3c, HasTime: true},
		"7f 12 13 00 a9 22 11 44 33 22 11 dd cc bb aa 00 00 12 00":             {JobID: 0xa9, SessionID: 0x1122, ExtraNonce2: 0x11223344, Nonce: 0xaabbccdd, VersionBits: 0x120000, HasVersion: true},
		"7f 13 17 00 a9 22 11 44 33 22 11 dd cc bb aa d0 2a bd 57 00 00 12 00": {JobID: 0xa9, SessionID: 0x1122, ExtraNonce2: 0x11223344, Nonce: 0xaabbccdd, NTime: 0x57bd2ad0, HasTime: true, VersionBits: 0x120000, HasVersion: true},
	}
	for v, want := range shares {
		got, err := DecodeSubmitShare(dec(v))
		if err != nil || got != want {
			t.Errorf("%s: got %+v err %v, want %+v", v, got, err, want)
		}
	}
	d, err := DecodeSetDiff(dec("7f 05 0d 00 0e 03 00 01 00 02 00 00 01"))
	if err != nil || d.Exp != 14 || d.Count != 3 || d.ID(0) != 1 || d.ID(1) != 2 || d.ID(2) != 0x100 || d.Difficulty() != 16384 {
		t.Errorf("TV9: %+v %v", d, err)
	}
	idx, st, err := DecodeSubmitResponse(dec("7f 10 0a 00 07 00 87 96 2c 6b"))
	if err != nil || idx != 7 || st != StatusAccept || !st.Accepted() {
		t.Errorf("TV10: %d %d %v", idx, st, err)
	}
	idx, st, err = DecodeSubmitResponse(dec("7f 10 0a 00 fe ff 16 00 00 00"))
	if err != nil || idx != 0xFFFE || st != StatusDuplicateShare || st.Accepted() || st.Text() != "Duplicate share" {
		t.Errorf("TV11: %d %d %v", idx, st, err)
	}
}

func TestDecodeFrameErrors(t *testing.T) {
	if _, _, err := DecodeFrame([]byte{0x7f, 0x02, 0x0f}); err != ErrIncomplete {
		t.Errorf("3 bytes: %v", err)
	}
	if _, _, err := DecodeFrame(unhexSpaced(t, "7f 02 0f 00 05 01")); err != ErrIncomplete {
		t.Errorf("partial body: %v", err)
	}
	_, _, err := DecodeFrame([]byte{0x7f, 0x02, 0x03, 0x00})
	var fe *FrameError
	if !errors.As(err, &fe) || fe.Length != 3 || !strings.Contains(err.Error(), "SUBMIT_SHARE") || !strings.Contains(err.Error(), "length 3") {
		t.Errorf("length below 4: %v", err)
	}
	// A body short for its command names the command and the length.
	_, err = DecodeSubmitShare(Frame{Cmd: CmdSubmitShareWithTime, Body: make([]byte, 11)})
	if err == nil || !strings.Contains(err.Error(), "SUBMIT_SHARE_WITH_TIME") || !strings.Contains(err.Error(), "length 15") {
		t.Errorf("short submit: %v", err)
	}
	if _, err := DecodeSetDiff(Frame{Cmd: CmdMiningSetDiff, Body: []byte{14, 3, 0, 1, 0}}); err == nil || !strings.Contains(err.Error(), "MINING_SET_DIFF") {
		t.Errorf("short set diff: %v", err)
	}
	if _, _, err := DecodeSubmitResponse(Frame{Cmd: CmdSubmitResponse, Body: []byte{1, 2, 3}}); err == nil || !strings.Contains(err.Error(), "length 7") {
		t.Errorf("short response: %v", err)
	}
	if _, err := DecodeUnregisterWorker(Frame{Cmd: CmdUnregisterWorker, Body: []byte{1}}); err == nil {
		t.Error("short unregister accepted")
	}
	// sserver's REGISTER limits: 8..100 bytes, session id <= 0xFFFE.
	long := AppendRegisterWorker(nil, 1, strings.Repeat("a", 50), strings.Repeat("w", 50))
	f, _, _ := DecodeFrame(long)
	if _, err := DecodeRegisterWorker(f); !errors.Is(err, ErrIgnoredBySserver) {
		t.Errorf("101+ byte register: %v", err)
	}
	f, _, _ = DecodeFrame(AppendRegisterWorker(nil, 0xFFFF, "a", "b"))
	if _, err := DecodeRegisterWorker(f); !errors.Is(err, ErrIgnoredBySserver) {
		t.Errorf("sid 0xFFFF: %v", err)
	}
	if _, err := DecodeRegisterWorker(Frame{Cmd: CmdRegisterWorker, Body: []byte{1, 0, 0}}); !errors.Is(err, ErrIgnoredBySserver) {
		t.Errorf("7-byte register: %v", err)
	}
}

func TestSetDiffSplitsAt32764(t *testing.T) {
	ids := make([]uint16, MaxSetDiffIDs*2+5)
	for i := range ids {
		ids[i] = uint16(i)
	}
	b := AppendSetDiff(nil, 10, ids)
	var got []uint16
	frames := 0
	for len(b) > 0 {
		f, n, err := DecodeFrame(b)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeSetDiff(f)
		if err != nil {
			t.Fatal(err)
		}
		if d.Count > MaxSetDiffIDs || d.Exp != 10 {
			t.Fatalf("frame %d: count %d exp %d", frames, d.Count, d.Exp)
		}
		for i := 0; i < d.Count; i++ {
			got = append(got, d.ID(i))
		}
		frames++
		b = b[n:]
	}
	if frames != 3 || len(got) != len(ids) {
		t.Fatalf("frames %d ids %d", frames, len(got))
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("id %d: %d", i, got[i])
		}
	}
}

func TestStatusTable(t *testing.T) {
	accepted := []Status{StatusAccept, StatusAcceptStale, StatusSolved, StatusSolvedStale}
	for _, s := range accepted {
		if !s.Accepted() {
			t.Errorf("%d should be accepted", s)
		}
	}
	for _, s := range []Status{0, 21, 22, 23, 24, 25, 26, 27, 33, 36, 37, StatusSolvedPreliminary, StatusUnknown, 12345} {
		if s.Accepted() {
			t.Errorf("%d should be rejected", s)
		}
	}
	if StatusAccept != 0x6B2C9687 || StatusAcceptStale != 0x38A5E21D || StatusSolved != 0x54C96D6E || StatusSolvedStale != 0x662955AA {
		t.Error("accept magic values changed")
	}
	if StatusLowDifficulty.Text() != "Low difficulty" || StatusIllegalParams.Text() != "Illegal params" || !strings.Contains(Status(999).Text(), "999") {
		t.Error("status texts")
	}
}

func TestFitRegisterKeepsFramesWithin100Bytes(t *testing.T) {
	agent, worker := FitRegister("cgminer/4.10.0 with a very long firmware tag and spaces!", strings.Repeat("w", 200))
	if len(agent) > MaxAgentLen {
		t.Errorf("agent %q not cut", agent)
	}
	if n := RegisterLen(agent, worker); n != MaxRegisterLen {
		t.Errorf("frame length %d, want exactly %d (worker cut to fit)", n, MaxRegisterLen)
	}
	if strings.ContainsAny(agent, " !") {
		t.Errorf("agent %q not filtered", agent)
	}
	f, _, _ := DecodeFrame(AppendRegisterWorker(nil, 9, agent, worker))
	if r, err := DecodeRegisterWorker(f); err != nil || r.Worker != worker {
		t.Errorf("fitted frame refused: %v", err)
	}
}

func TestSplitWorker(t *testing.T) {
	cases := map[string]string{
		"john.a001":   "a001",
		"john.a001.x": "a001.x",
		"john":        "john",
		"":            DefaultWorkerName,
		"john.":       DefaultWorkerName,
		"j.a b#c":     "abc",
	}
	for in, want := range cases {
		if got := SplitWorker(in); got != want {
			t.Errorf("SplitWorker(%q) = %q, want %q", in, got, want)
		}
	}
}
