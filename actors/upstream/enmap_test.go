package upstream

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// The extranonce layouts rebuild the pool's coinbase byte for byte:
// coinb1' ‖ EN1_miner ‖ EN2_miner == coinb1 ‖ EN1_pool ‖ EN2_pool.
func TestExtranonceLayouts(t *testing.T) {
	const sid, en2 = uint16(0x1a2b), uint32(0xdeadbeef)
	for _, tc := range []struct {
		en1     string
		n       int
		wantNil bool
	}{
		{"01000005", 8, false}, {"01000005", 10, false}, {"0100", 12, false}, {"01000005", 7, true}, {"01000005", 4, true},
	} {
		m := sharedMap(tc.en1, tc.n)
		if (m == nil) != tc.wantNil {
			t.Fatalf("sharedMap(%s, %d) = %v", tc.en1, tc.n, m)
		}
		if m == nil {
			continue
		}
		pool := string(m.appendEN2(nil, sid, en2))
		if len(pool) != 2*tc.n {
			t.Fatalf("EN2_pool %s is not %d bytes", pool, tc.n)
		}
		miner := m.suffix + fmt.Sprintf("%08x%08x", sid, en2)
		if miner != tc.en1+pool {
			t.Fatalf("shared N=%d: miner side %s, pool side %s", tc.n, miner, tc.en1+pool)
		}
		if !strings.HasSuffix(pool, "00001a2bdeadbeef") {
			t.Fatalf("EN2_pool %s does not end with 0000SSSS ‖ EN2_miner", pool)
		}
	}
	for _, tc := range []struct {
		en1 string
		n   int
	}{
		{"01000005", 4}, {"01000005", 5}, {"01000005", 7}, {"01000005", 3}, {"01000005", 1}, {"ab", 4}, {"ab", 6}, {"0102030405060708", 6}, {"0102030405060708", 2}, {"", 7},
	} {
		m := directMap(tc.en1, tc.n)
		if m == nil {
			t.Fatalf("directMap(%q, %d) = nil", tc.en1, tc.n)
		}
		pool := string(m.appendEN2(nil, sid, en2))
		if len(pool) != 2*tc.n {
			t.Fatalf("direct N=%d: EN2_pool %s", tc.n, pool)
		}
		minerEN2 := fmt.Sprintf("%08x", en2)[8-2*m.minerEN2:]
		if miner := m.suffix + m.minerEN1 + minerEN2; miner != tc.en1+pool {
			t.Fatalf("direct %s/%d: miner side %s, pool side %s", tc.en1, tc.n, miner, tc.en1+pool)
		}
		if m.minerEN1 == "" {
			t.Fatalf("direct %s/%d: empty miner extranonce1", tc.en1, tc.n)
		}
		if hb, _ := hex.DecodeString(m.minerEN1); !m.noHash && (len(hb) != 4 || m.minerEN2 != 4) {
			t.Fatalf("direct %s/%d: hash check on with EN1 %s / EN2 %d", tc.en1, tc.n, m.minerEN1, m.minerEN2)
		}
		if len(m.minerEN1) > 8 {
			t.Fatalf("direct %s/%d: miner EN1 %s longer than 4 bytes", tc.en1, tc.n, m.minerEN1)
		}
	}
	if directMap("", 4) != nil || directMap("", 3) != nil {
		t.Fatal("no extranonce1 space: directMap must refuse")
	}
}

// A share becomes exactly the mining.submit line a plain Stratum pool expects.
func TestStratumSubmitLine(t *testing.T) {
	rec := &jobRec{poolID: codec.AppendJSONString(nil, "6a1f"), m: sharedMap("f000000f", 8)}
	sh := &codec.Share{SessionID: 7, ExtraNonce2: 0x01020304, NTime: 0x6b07071e, Nonce: 0xc3335d00, VersionBits: 0x00002000, HasVersion: true}
	got := string(appendSubmit(nil, 42, codec.AppendJSONString(nil, "farm.rack"), rec, sh))
	want := `{"id":42,"method":"mining.submit","params":["farm.rack","6a1f","0000000701020304","6b07071e","c3335d00","00002000"]}` + "\n"
	if got != want {
		t.Fatalf("submit line\n got %s\nwant %s", got, want)
	}
	var rq codec.Request
	if err := codec.ScanRequest([]byte(got[:len(got)-1]), &rq); err != nil {
		t.Fatal(err)
	}
	sub, err := codec.ParseSubmit(&rq, 8)
	if err != nil || string(sub.EN2Hex) != "0000000701020304" || !sub.HasVersion {
		t.Fatalf("pool-side parse: %+v %v", sub, err)
	}
}

// Pool verdicts: true, Stratum error arrays, error objects, and a bare false.
func TestStratumVerdicts(t *testing.T) {
	for line, want := range map[string]codec.Status{
		`{"id":1,"result":true,"error":null}`:                             codec.StatusAccept,
		`{"id":1,"result":null,"error":[23,"Low difficulty share",null]}`: codec.StatusLowDifficulty,
		`{"id":1,"result":false,"error":{"code":21,"message":"Stale"}}`:   codec.StatusJobNotFoundOrStale,
		`{"id":1,"result":false,"error":null}`:                            codec.StatusRejectNoReason,
	} {
		var rq codec.Request
		if err := codec.ScanRequest([]byte(line), &rq); err != nil {
			t.Fatal(err)
		}
		if got, _ := parseVerdict(&rq); got != want {
			t.Errorf("%s: %d, want %d", line, got, want)
		}
	}
	if StratumUserAgent("btccom-agent/3.0.0-ga") != "btcagent-proxy/3.0.0-ga" || strings.HasPrefix(minerUserAgent("BTCCOM-AGENT/1", "x"), "BTCCOM") {
		t.Fatal("stratum links must never subscribe as btccom-agent/")
	}
	if workerPart("0.0.0.0:3333") != "0_0_0_0_3333" {
		t.Fatal(workerPart("0.0.0.0:3333"))
	}
}
