package noise

import (
	"encoding/hex"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcagent/btcagent/internal/jspeer"
)

// The JS peer (testdata/sv2js, on @scure/btc-signer and @noble/*) is the
// independent implementation these tests check the Go code against.
var jsDir = filepath.Join("..", "..", "..", "testdata", "sv2js")

func nodePeer(t *testing.T, args ...string) <-chan map[string]any {
	t.Helper()
	return jspeer.Start(t, jsDir, args...)
}

func nextLine(t *testing.T, lines <-chan map[string]any) map[string]any {
	t.Helper()
	return jspeer.Next(t, lines)
}

// TestJSTranscript: with the same fixed keys, the JS peer's handshake and
// transport bytes equal ours byte for byte (the independent counterpart of
// TestTranscriptDerived). The JS side signs its own certificate.
func TestJSTranscript(t *testing.T) {
	js := nextLine(t, nodePeer(t, "transcript", filepath.Join("..", "sv2", "noise_handshake_derived.json")))
	tr := loadTranscript(t)
	in, re := tr.fixedPair(t)
	a1, _ := in.ActOne()
	if err := re.ReadActOne(a1); err != nil {
		t.Fatal(err)
	}
	a2, rs, err := re.ActTwo()
	if err != nil {
		t.Fatal(err)
	}
	is, info, err := in.ReadActTwo(a2)
	if err != nil {
		t.Fatal(err)
	}
	eq := func(what, got string) {
		t.Helper()
		if js[what] != got {
			t.Fatalf("%s: JS %v, Go %s", what, js[what], got)
		}
	}
	eq("act1", hex.EncodeToString(a1))
	eq("act2", hex.EncodeToString(a2))
	eq("h_final", hex.EncodeToString(in.ss.h[:]))
	eq("static_x", hex.EncodeToString(info.StaticKey[:]))
	frames, _ := js["frames"].([]any)
	if len(frames) != len(tr.Msgs) {
		t.Fatalf("JS sent %d frames", len(frames))
	}
	for i, m := range tr.Msgs {
		s := is
		if m.Direction == "responder->initiator" {
			s = rs
		}
		f, _ := sv2.ParseFrame(unhex(t, m.Plain))
		ct, _ := s.Seal(nil, f)
		if frames[i] != hex.EncodeToString(ct) {
			t.Fatalf("%s: JS %v, Go %x", m.Message, frames[i], ct)
		}
	}
}

// TestJSClientToGoServer: the JS initiator completes a handshake with our
// responder, verifies our certificate and gets SetupConnection.Success.
func TestJSClientToGoServer(t *testing.T) {
	authPriv, auth := newAuthority(t)
	scfg := serverConfig(t, authPriv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
		c, err := Server(nc, scfg)
		if err != nil {
			got <- err
			return
		}
		m, err := c.ReadMessage()
		if err != nil {
			got <- err
			return
		}
		setup, ok := m.(*sv2.SetupConnection)
		if !ok || setup.Vendor != "sv2js" || setup.Flags != sv2.FlagRequiresVersionRolling {
			got <- fmt.Errorf("server read %T %+v", m, m)
			return
		}
		got <- c.WriteMessage(&sv2.SetupConnectionSuccess{UsedVersion: 2, Flags: 0})
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	res := nextLine(t, nodePeer(t, "client", port, hex.EncodeToString(auth[:])))
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	static := XOnly(scfg.Static.Priv.PubKey())
	if res["ok"] != true || res["static_x"] != hex.EncodeToString(static[:]) || res["used_version"] != 2.0 {
		t.Fatalf("JS client: %v", res)
	}
}

// TestJSPoolShare: our client handshakes with the JS pool, opens an
// extended channel (both Success layouts), turns the job into an SV1
// notify, finds a share with the repository's share hashing and submits
// it: the JS pool recomputes the header hash itself and accepts it; a
// share above the target is rejected with difficulty-too-low.
func TestJSPoolShare(t *testing.T) {
	for _, layout := range []string{"new", "old"} {
		t.Run(layout, func(t *testing.T) { jsPoolShare(t, layout) })
	}
}

func jsPoolShare(t *testing.T, layout string) {
	authPriv, auth := newAuthority(t)
	secret := authPriv.Key.Bytes()
	// 0x00ff..ff: one hash in 256 meets it.
	var target sv2.U256
	for i := 0; i < 31; i++ {
		target[i] = 0xff
	}
	lines := nodePeer(t, "pool", hex.EncodeToString(secret[:]), layout, hex.EncodeToString(target[:]))
	first := nextLine(t, lines)
	port, ok := first["listening"].(float64)
	if !ok {
		t.Fatalf("JS pool: %v", first)
	}
	c, err := dial(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port))), ClientConfig{Authority: &auth})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.NetConn().SetDeadline(time.Now().Add(30 * time.Second))
	if sk := c.Peer().StaticKey; hex.EncodeToString(sk[:]) != first["static_x"] {
		t.Fatalf("static key %x, JS %v", c.Peer().StaticKey, first["static_x"])
	}
	must := func(m sv2.Message) {
		t.Helper()
		if err := c.WriteMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	read := func() sv2.Message {
		t.Helper()
		m, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	must(&sv2.SetupConnection{MinVersion: 2, MaxVersion: 2, Flags: sv2.FlagRequiresVersionRolling, EndpointHost: "127.0.0.1"})
	if m, ok := read().(*sv2.SetupConnectionSuccess); !ok || m.UsedVersion != 2 {
		t.Fatalf("setup answer %+v", m)
	}
	must(&sv2.OpenExtendedMiningChannel{RequestID: 5, UserIdentity: "user.rig1", NominalHashRate: 1e12, MaxTarget: target, MinExtranonceSize: 8})
	open, ok := read().(*sv2.OpenExtendedMiningChannelSuccess)
	if !ok || open.RequestID != 5 || open.ExtranonceSize != 8 || open.HasGroupChannelID != (layout == "new") {
		t.Fatalf("open answer %+v", open)
	}
	job, ok := read().(*sv2.NewExtendedMiningJob)
	if !ok || job.MinNTime != nil {
		t.Fatalf("job %+v", job)
	}
	prev, ok := read().(*sv2.SetNewPrevHash)
	if !ok || prev.JobID != job.JobID {
		t.Fatalf("prevhash %+v", prev)
	}
	n, err := sv2.Notify(job, prev, "j1", true)
	if err != nil {
		t.Fatal(err)
	}
	hj, err := codec.NewHashJob(n, hex.EncodeToString(open.ExtranoncePrefix))
	if err != nil {
		t.Fatal(err)
	}
	minerEN1, en2 := []byte{0, 0, 0, 9}, []byte{0, 0, 0, 1}
	want := sv2.TargetToCodec(open.Target)
	good, bad := -1, -1
	var goodHash [32]byte
	for nonce := 0; nonce < 1<<16 && (good < 0 || bad < 0); nonce++ {
		h := hj.Hash(minerEN1, en2, job.Version, prev.MinNTime, uint32(nonce))
		if want.Met(h) {
			if good < 0 {
				good, goodHash = nonce, h
			}
		} else if bad < 0 {
			bad = nonce
		}
	}
	if good < 0 || bad < 0 {
		t.Fatal("no share found in 65536 nonces")
	}
	event := func() map[string]any {
		for {
			m := nextLine(t, lines)
			if m["event"] == "share" {
				return m
			}
		}
	}
	must(sv2.ExtendedShare(open.ChannelID, 1, job.JobID, minerEN1, en2, prev.MinNTime, uint32(good), job.Version))
	if m, ok := read().(*sv2.SubmitSharesSuccess); !ok || m.LastSequenceNumber != 1 || m.ChannelID != open.ChannelID {
		t.Fatalf("verdict %+v", m)
	}
	if e := event(); e["verdict"] != "accepted" || e["hash"] != codec.DisplayHex(goodHash) {
		t.Fatalf("JS pool: %v (Go hash %s)", e, codec.DisplayHex(goodHash))
	}
	must(sv2.ExtendedShare(open.ChannelID, 2, job.JobID, minerEN1, en2, prev.MinNTime, uint32(bad), job.Version))
	if m, ok := read().(*sv2.SubmitSharesError); !ok || m.SequenceNumber != 2 || m.ErrorCode != sv2.ErrDifficultyTooLow {
		t.Fatalf("verdict %+v", m)
	}
	if e := event(); e["verdict"] != sv2.ErrDifficultyTooLow {
		t.Fatalf("JS pool: %v", e)
	}
}
