package upstream_test

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcagent/btcagent/codec/sv2/noise"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/jspeer"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcsuite/btcd/btcec/v2"
)

// Shares travel from a miner through the agent's sv2 link to the JS pool
// of testdata/sv2js, an SV2 implementation that shares no code with ours:
// the agent authenticates the JS pool's certificate, sets up the connection
// with version rolling and opens an extended channel; the miner gets the
// JS pool's job as mining.notify and submits shares with rolled version
// bits; the JS pool recomputes each header hash from its own coinbase,
// extranonce prefix and the SubmitSharesExtended fields. It acknowledges
// accepted shares two at a time (one batched SubmitShares.Success) and
// rejects a share above the target at once: the miner sees that rejection
// first and each accepted share answered true only after the pool's batch.
func TestSV2AgentToJSPool(t *testing.T) {
	auth, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := auth.Key.Bytes()
	var target sv2.U256 // 0x00ff..ff: one hash in 256 meets it
	for i := 0; i < 31; i++ {
		target[i] = 0xff
	}
	js := jspeer.Start(t, filepath.Join("..", "..", "testdata", "sv2js"), "pool", hex.EncodeToString(secret[:]), "new", hex.EncodeToString(target[:]), "2")
	first := jspeer.Next(t, js)
	port, ok := first["listening"].(float64)
	if !ok {
		t.Fatalf("JS pool: %v", first)
	}
	cfg := sv2Config(t, config.Pool{Host: "127.0.0.1", Port: int(port), Protocol: config.ProtocolSV2,
		AuthorityPubkey: noise.AuthorityKeyOf(auth).String()})
	cfg.Listen[0].Connections = 1 // the JS pool serves one connection
	cfg.Listen[0].Name = "js-rack"
	a, _ := startAgent(t, cfg)
	if e := jspeer.NextEvent(t, js, "setup"); e["proto"] != 0.0 || e["minV"] != 2.0 || e["maxV"] != 2.0 || e["flags"] != float64(sv2.FlagRequiresVersionRolling) {
		t.Fatalf("SetupConnection as the JS pool read it: %v", e)
	}
	if e := jspeer.NextEvent(t, js, "open"); e["user"] != "farm.js-rack" {
		t.Fatalf("channel opened as %v", e)
	}

	m := testenv.Dial(t, testenv.Addr(a))
	en1, notify, _ := m.Login("john.rig1", true)
	var rq codec.Request
	if err := codec.ScanRequest([]byte(notify.Raw), &rq); err != nil {
		t.Fatal(err)
	}
	n, err := codec.ParseNotify(&rq)
	if err != nil {
		t.Fatal(err)
	}
	hj, err := codec.NewHashJob(n, "") // the miner's coinb1 already ends with the channel's prefix
	if err != nil {
		t.Fatal(err)
	}
	en1b, _ := hex.DecodeString(en1)
	en2 := []byte{0, 0, 0, 1}
	const bits = 0x00004000
	version := n.VersionValue() ^ bits
	want := sv2.TargetToCodec(target)
	var good []int
	var goodHash [][32]byte
	bad := -1
	for nonce := 0; nonce < 1<<16 && (len(good) < 2 || bad < 0); nonce++ {
		h := hj.Hash(en1b, en2, version, n.NTimeValue(), uint32(nonce))
		switch {
		case want.Met(h) && len(good) < 2:
			good, goodHash = append(good, nonce), append(goodHash, h)
		case !want.Met(h) && bad < 0:
			bad = nonce
		}
	}
	if len(good) < 2 || bad < 0 {
		t.Fatal("no shares found in 65536 nonces")
	}
	submit := func(id, nonce int) {
		m.Send(fmt.Sprintf(`{"id":%d,"method":"mining.submit","params":["john.rig1",%q,"00000001",%q,"%08x","%08x"]}`, id, n.JobID, n.NTime, nonce, bits))
	}
	submit(10, good[0])
	submit(11, bad)
	submit(12, good[1])
	// The rejection comes first: the first good share waits for the batch.
	r, before := m.Until(jspeer.Wait, func(x testenv.Msg) bool { return string(x.ID) == "11" })
	if string(r.Result) == "true" || !strings.HasPrefix(string(r.Error), fmt.Sprintf("[%d,", codec.StatusLowDifficulty)) || !strings.Contains(string(r.Error), sv2.ErrDifficultyTooLow) {
		t.Fatalf("weak share answered %s", r.Raw)
	}
	for _, x := range before {
		if x.ID != nil && string(x.ID) != "null" {
			t.Fatalf("answered before the pool's verdict: %s", x.Raw)
		}
	}
	for _, id := range []string{"10", "12"} {
		if r, _ := m.Until(jspeer.Wait, func(x testenv.Msg) bool { return string(x.ID) == id }); string(r.Result) != "true" {
			t.Fatalf("good share %s answered %s", id, r.Raw)
		}
	}
	for i, want := range []string{"accepted", sv2.ErrDifficultyTooLow, "accepted"} {
		e := jspeer.NextEvent(t, js, "share")
		if e["verdict"] != want || e["seq"] != float64(i+1) {
			t.Fatalf("JS pool share %d: %v, want %s", i+1, e, want)
		}
		if want == "accepted" && e["hash"] != codec.DisplayHex(goodHash[i/2]) {
			t.Fatalf("JS pool hashed %v, we %s", e["hash"], codec.DisplayHex(goodHash[i/2]))
		}
	}
	if e := jspeer.NextEvent(t, js, "success"); e["last"] != 3.0 || e["count"] != 2.0 {
		t.Fatalf("JS pool acknowledged %v", e)
	}
}
