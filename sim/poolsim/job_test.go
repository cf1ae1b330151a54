package poolsim

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// Jobs look like sserver's: realistic coinbase halves that form a valid
// transaction once EN1/EN2 are filled in, 12 branches (~1.4 KB notify),
// version 20000000, ntime now, and the send time stamped in coinb1.
func TestJobShapeAndTimestamp(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	m := connectMiner(t, p, "demo.rig")
	before := time.Now()
	p.NewJob(false)
	after := time.Now()
	line := m.line()
	n := p.CurrentJob()
	if line != notifyLine(n, false) {
		t.Fatalf("notify %s", line)
	}
	if l := len(line); l < 1300 || l > 1600 {
		t.Errorf("notify line is %d bytes, want ~1.4 KB", l)
	}
	if n.JobID != "1" || len(n.Branches) != 12 || n.Version != "20000000" || n.NBits != "1703a30c" {
		t.Errorf("job %+v", n)
	}
	if nt := int64(n.NTimeValue()); nt < before.Unix()-1 || nt > after.Unix()+1 {
		t.Errorf("ntime %d not now (%d)", nt, before.Unix())
	}
	stamp, ok := JobTimestamp(n.Coinb1)
	if !ok || stamp.Before(before) || stamp.After(after) {
		t.Fatalf("stamp %v (found %t), want within [%v, %v]", stamp, ok, before, after)
	}
	if s2, ok := JobTimestamp(n.Coinb1 + "01000a2b"); !ok || !s2.Equal(stamp) {
		t.Fatalf("stamp with the agent's EN1 appended: %v %t", s2, ok)
	}
	if st := p.Stats(); !st.Job.Stamp.Equal(stamp) || st.Job.ID != "1" {
		t.Errorf("stats job %+v", st.Job)
	}

	cb1, _ := hex.DecodeString(n.Coinb1)
	cb2, _ := hex.DecodeString(n.Coinb2)
	if len(cb1) < 50 || len(cb1) > 100 || len(cb2) < 100 || len(cb2) > 150 {
		t.Errorf("coinb1 %d bytes, coinb2 %d bytes", len(cb1), len(cb2))
	}
	tx := append(append(append([]byte{}, cb1...), make([]byte, 4+8)...), cb2...)
	checkCoinbase(t, tx)
}

// checkCoinbase parses a coinbase transaction far enough to prove that the
// scriptSig length covers the extranonces and that outputs and locktime
// end exactly at the end.
func checkCoinbase(t *testing.T, tx []byte) {
	t.Helper()
	fail := func(msg string) { t.Fatalf("coinbase %x: %s", tx, msg) }
	if len(tx) < 42 || tx[4] != 1 {
		fail("want one input")
	}
	off := 4 + 1 + 32 + 4
	sl := int(tx[off])
	off += 1 + sl
	if off+4 > len(tx) || binary.LittleEndian.Uint32(tx[off:]) != 0xffffffff {
		fail("no sequence after the scriptSig")
	}
	off += 4
	outs := int(tx[off])
	off++
	for range outs {
		if off+9 > len(tx) {
			fail("truncated output")
		}
		off += 8
		off += 1 + int(tx[off])
	}
	if off+4 != len(tx) {
		fail(fmt.Sprintf("%d bytes after the outputs, want the 4-byte locktime", len(tx)-off))
	}
}

func TestJobTimestampRejectsJunk(t *testing.T) {
	tag := hex.EncodeToString([]byte("/ps:0123456789abcdef/"))
	for _, s := range []string{
		"",
		"00" + hex.EncodeToString([]byte("/ps:")) + "zz",
		"0" + tag + "0", // odd offset: not on a byte boundary
		hex.EncodeToString([]byte("/ps:0123456789abcdeX/")) + "00", // not hex digits
		hex.EncodeToString([]byte("/ps:0123/")),                    // too short
	} {
		if ts, ok := JobTimestamp(s); ok {
			t.Errorf("JobTimestamp(%q) = %v, want not found", s, ts)
		}
	}
	if ts, ok := JobTimestamp("aa" + tag + "bb"); !ok || ts.UnixNano() != 0x0123456789abcdef {
		t.Errorf("valid tag: %v %t", ts, ok)
	}
}

// The job timer publishes jobs on its own; every BlockEvery-th is a new
// block. Waiting is on the pool's job counter, not on a clock.
func TestJobTimerAndBlocks(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, NotifyInterval: 5 * time.Millisecond, BlockEvery: 3})
	st := waitFor(t, p, "7 jobs", func(s *Stats) bool { return s.Totals.JobsSent >= 7 })
	seen := 0
	for _, e := range st.EventsOf("job") {
		var id string
		var seq uint64
		var clean bool
		var conns int
		if _, err := fmt.Sscanf(e.Detail, "id %s seq %d clean %t to %d connections", &id, &seq, &clean, &conns); err != nil {
			t.Fatalf("job event %q: %v", e.Detail, err)
		}
		if want := (seq-1)%3 == 0; clean != want {
			t.Errorf("job seq %d clean=%t, want %t", seq, clean, want)
		}
		if id != fmt.Sprint((seq-1)%256) {
			t.Errorf("job seq %d has id %s", seq, id)
		}
		seen++
	}
	if seen < 7 {
		t.Fatalf("%d job events", seen)
	}
}

func TestShortJobIDsWrap(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural, Branches: -1})
	for range 255 {
		p.NewJob(false)
	}
	if id := p.CurrentJob().JobID; id != "255" {
		t.Fatalf("job id %s after 256 jobs", id)
	}
	p.NewJob(false)
	n := p.CurrentJob()
	if n.JobID != "0" || len(n.Branches) != 0 {
		t.Fatalf("job %+v", n)
	}
	// The reused id refers to the new job, not the expired one.
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	a.submit(codec.Share{JobID: 0, SessionID: 1, Nonce: 1, NTime: n.NTimeValue(), HasTime: true})
	a.expectVerdict(0, codec.StatusAccept)
}

func TestCompactTarget(t *testing.T) {
	tgt := compactTarget(0x1d00ffff)
	if got := hex.EncodeToString(tgt[:]); got != "00000000ffff"+strings.Repeat("0", 52) {
		t.Fatalf("1d00ffff -> %s", got)
	}
	tgt = compactTarget(0x1703a30c)
	if got := hex.EncodeToString(tgt[:]); got != strings.Repeat("0", 18)+"03a30c"+strings.Repeat("0", 40) {
		t.Fatalf("1703a30c -> %s", got)
	}
}
