package noise

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec/sv2"
)

type transcript struct {
	Keys struct {
		AuthSecret string `json:"authority_secret_key_hex"`
		AuthX      string `json:"authority_public_key_x_only_hex"`
		IESecret   string `json:"initiator_ephemeral_secret_hex"`
		IEEll      string `json:"initiator_ephemeral_ellswift_hex"`
		RESecret   string `json:"responder_ephemeral_secret_hex"`
		REEll      string `json:"responder_ephemeral_ellswift_hex"`
		RSSecret   string `json:"responder_static_secret_hex"`
		RSEll      string `json:"responder_static_ellswift_hex"`
		RSX        string `json:"responder_static_x_only_hex"`
	} `json:"keys"`
	Cert struct {
		Wire string `json:"signature_noise_message_hex"`
	} `json:"certificate"`
	Act1  string            `json:"act1_hex"`
	Act2  string            `json:"act2_hex"`
	State map[string]string `json:"state"`
	Msgs  []struct {
		Direction string `json:"direction"`
		Message   string `json:"message"`
		Plain     string `json:"plaintext_frame_hex"`
		CtHeader  string `json:"ciphertext_header_hex"`
		CtPayload string `json:"ciphertext_payload_hex"`
	} `json:"transport_messages"`
	Chunking struct {
		PlainHeader string `json:"plaintext_header_hex"`
		PayloadLen  int    `json:"payload_len"`
		CtHeader    string `json:"ciphertext_header_hex"`
		Chunks      []struct {
			PlainLen int    `json:"plaintext_len"`
			CtLen    int    `json:"ciphertext_len"`
			Tag      string `json:"tag_hex"`
			CtSHA    string `json:"ciphertext_sha256"`
		} `json:"chunks"`
		TotalLen int    `json:"ciphertext_total_len"`
		AllSHA   string `json:"ciphertext_sha256_all_parts_concatenated"`
	} `json:"chunking_example"`
}

func loadTranscript(t *testing.T) *transcript {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "noise_handshake_derived.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tr transcript
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatal(err)
	}
	return &tr
}

func (tr *transcript) key(t *testing.T, secret, ell string) *Key {
	t.Helper()
	k, err := KeyFromParts(privFromHex(t, secret), b64(t, ell))
	if err != nil {
		t.Fatal(err)
	}
	return &k
}

// fixedPair builds an initiator and a responder with the transcript's keys,
// certificate and a clock inside its window.
func (tr *transcript) fixedPair(t *testing.T) (*Initiator, *Responder) {
	t.Helper()
	cert, err := ParseCertificate(unhex(t, tr.Cert.Wire))
	if err != nil {
		t.Fatal(err)
	}
	auth := AuthorityKey(b32(t, tr.Keys.AuthX))
	now := func() time.Time { return time.Unix(int64(cert.ValidFrom)+60, 0) }
	in, err := NewInitiator(ClientConfig{Authority: &auth, Now: now, Ephemeral: tr.key(t, tr.Keys.IESecret, tr.Keys.IEEll)})
	if err != nil {
		t.Fatal(err)
	}
	re, err := NewResponder(ServerConfig{Static: *tr.key(t, tr.Keys.RSSecret, tr.Keys.RSEll), Certificate: &cert,
		Ephemeral: tr.key(t, tr.Keys.RESecret, tr.Keys.REEll)})
	if err != nil {
		t.Fatal(err)
	}
	return in, re
}

// TestTranscriptDerived replays noise_handshake_derived.json (derived:
// written by the vectors' author from the spec, not by another
// implementation; the JS peer test is the independent check): acts 1 and 2,
// the handshake hash, both transport keys, four encrypted frames in both
// directions and a two-chunk frame, byte for byte.
func TestTranscriptDerived(t *testing.T) {
	tr := loadTranscript(t)
	in, re := tr.fixedPair(t)
	a1, err := in.ActOne()
	if err != nil || hex.EncodeToString(a1) != tr.Act1 {
		t.Fatalf("act 1 %x (%v)", a1, err)
	}
	if hex.EncodeToString(in.ss.h[:]) != tr.State["initiator_h_after_act1"] {
		t.Fatalf("h after act 1 %x", in.ss.h)
	}
	if err := re.ReadActOne(a1); err != nil {
		t.Fatal(err)
	}
	a2, rs, err := re.ActTwo()
	if err != nil || hex.EncodeToString(a2) != tr.Act2 {
		t.Fatalf("act 2\n got %x (%v)\nwant %s", a2, err, tr.Act2)
	}
	is, info, err := in.ReadActTwo(a2)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(info.StaticKey[:]) != tr.Keys.RSX || !info.Verified {
		t.Fatalf("peer %+v", info)
	}
	if hex.EncodeToString(in.ss.h[:]) != tr.State["h_final"] || in.ss.h != re.ss.h || in.ss.ck != re.ss.ck {
		t.Fatalf("h_final %x / %x", in.ss.h, re.ss.h)
	}
	k1, k2 := hkdf2(in.ss.ck, nil)
	if hex.EncodeToString(k1[:]) != tr.State["c1_initiator_to_responder_key"] || hex.EncodeToString(k2[:]) != tr.State["c2_responder_to_initiator_key"] {
		t.Fatalf("transport keys %x %x", k1, k2)
	}

	for _, m := range tr.Msgs {
		send, recv := is, rs
		if m.Direction == "responder->initiator" {
			send, recv = rs, is
		}
		f, err := sv2.ParseFrame(unhex(t, m.Plain))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := send.Seal(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		if want := m.CtHeader + m.CtPayload; hex.EncodeToString(ct) != want {
			t.Fatalf("%s\n got %x\nwant %s", m.Message, ct, want)
		}
		h, err := recv.OpenHeader(ct[:EncryptedHeaderSize])
		if err != nil {
			t.Fatal(err)
		}
		p, err := recv.OpenPayload(ct[EncryptedHeaderSize:], int(h.Length))
		if err != nil || !bytes.Equal(p, f.Payload) || h != f.Header {
			t.Fatalf("%s: decrypt %v", m.Message, err)
		}
		if msg, err := sv2.Decode(sv2.Frame{Header: h, Payload: p}); err != nil || sv2.MsgName(msg.MsgType()) != m.Message {
			t.Fatalf("%s: decoded %T %v", m.Message, msg, err)
		}
	}

	// Chunking: responder → initiator, nonce 4 for the header, 5 and 6 for
	// the chunks.
	c := tr.Chunking
	payload := make([]byte, c.PayloadLen)
	for i := range payload {
		payload[i] = byte(i % 251)
	}
	hdr, _ := sv2.ParseHeader(unhex(t, c.PlainHeader))
	ct, err := rs.Seal(nil, sv2.Frame{Header: hdr, Payload: payload})
	if err != nil {
		t.Fatal(err)
	}
	if len(ct) != c.TotalLen || EncryptedHeaderSize+EncryptedPayloadLen(c.PayloadLen) != c.TotalLen {
		t.Fatalf("chunked length %d, want %d", len(ct), c.TotalLen)
	}
	if hex.EncodeToString(ct[:EncryptedHeaderSize]) != c.CtHeader {
		t.Fatalf("chunked header %x", ct[:EncryptedHeaderSize])
	}
	off := EncryptedHeaderSize
	for i, ch := range c.Chunks {
		part := ct[off : off+ch.CtLen]
		sum := sha256.Sum256(part)
		if hex.EncodeToString(sum[:]) != ch.CtSHA || hex.EncodeToString(part[len(part)-TagSize:]) != ch.Tag {
			t.Fatalf("chunk %d differs", i)
		}
		off += ch.CtLen
	}
	if sum := sha256.Sum256(ct); hex.EncodeToString(sum[:]) != c.AllSHA {
		t.Fatal("chunked frame hash differs")
	}
	h, err := is.OpenHeader(ct[:EncryptedHeaderSize])
	if err != nil {
		t.Fatal(err)
	}
	p, err := is.OpenPayload(ct[EncryptedHeaderSize:], int(h.Length))
	if err != nil || !bytes.Equal(p, payload) {
		t.Fatalf("chunked decrypt: %v", err)
	}
}

// The intermediate handshake states of the derived transcript, stepped
// through with the primitives (derived, as above).
func TestTranscriptStatesDerived(t *testing.T) {
	tr := loadTranscript(t)
	s := newSymmetricState()
	if hex.EncodeToString(s.ck[:]) != tr.State["ck_init"] || hex.EncodeToString(s.h[:]) != tr.State["h_init"] {
		t.Fatalf("init %x %x", s.ck, s.h)
	}
	ie := tr.key(t, tr.Keys.IESecret, tr.Keys.IEEll)
	re := tr.key(t, tr.Keys.RESecret, tr.Keys.REEll)
	rs := tr.key(t, tr.Keys.RSSecret, tr.Keys.RSEll)
	s.mixHash(ie.EllSwift[:])
	s.mixHash(nil)
	s.mixHash(re.EllSwift[:])
	check := func(name string, got []byte) {
		t.Helper()
		if hex.EncodeToString(got) != tr.State[name] {
			t.Fatalf("%s = %x, want %s", name, got, tr.State[name])
		}
	}
	check("h_after_e_r", s.h[:])
	ee, _ := ecdh(ie.Priv, re.EllSwift, ie.EllSwift, true)
	ee2, _ := ecdh(re.Priv, ie.EllSwift, re.EllSwift, false)
	check("ecdh_ee", ee)
	check("ecdh_ee", ee2)
	ck, k := hkdf2(s.ck, ee)
	check("ck_after_ee", ck[:])
	check("k_after_ee", k[:])
	es, _ := ecdh(ie.Priv, rs.EllSwift, ie.EllSwift, true)
	check("ecdh_es", es)
	_, _ = s.mixKey(ee), 0
	if _, err := s.encryptAndHash(rs.EllSwift[:]); err != nil {
		t.Fatal(err)
	}
	check("h_after_s", s.h[:])
	ck, k = hkdf2(s.ck, es)
	check("ck_after_es", ck[:])
	check("k_after_es", k[:])
}
