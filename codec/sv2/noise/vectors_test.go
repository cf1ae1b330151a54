package noise

import (
	"bytes"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ellswift"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// vectorDir is the repository's copy of the SV2 vectors (testdata/sv2/README.md).
var vectorDir = filepath.Join("..", "..", "..", "testdata", "sv2")

func readCSV(t *testing.T, name string) []map[string]string {
	t.Helper()
	f, err := os.Open(filepath.Join(vectorDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, k := range recs[0] {
			m[k] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

func b64(t *testing.T, s string) (a [64]byte) {
	t.Helper()
	copy(a[:], unhex(t, s))
	return a
}

func b32(t *testing.T, s string) (a [32]byte) {
	t.Helper()
	copy(a[:], unhex(t, s))
	return a
}

func privFromHex(t *testing.T, s string) *btcec.PrivateKey {
	t.Helper()
	p, err := ParseSecretKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBIP324ECDH: BIP324's packet-encoding rows (source) give SV2's ECDH():
// the x-only product and the tagged hash with the initiator's encoding first.
func TestBIP324ECDH(t *testing.T) {
	rows := readCSV(t, "bip324_packet_encoding.csv")
	if len(rows) != 7 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		t.Run("row"+r["in_idx"], func(t *testing.T) {
			priv := privFromHex(t, r["in_priv_ours"])
			ours, theirs := b64(t, r["in_ellswift_ours"]), b64(t, r["in_ellswift_theirs"])
			x, err := ellswift.EllswiftECDHXOnly(theirs, priv)
			if err != nil || hex.EncodeToString(x[:]) != r["mid_x_shared"] {
				t.Fatalf("x-only ECDH %x (%v), want %s", x, err, r["mid_x_shared"])
			}
			got, err := ecdh(priv, theirs, ours, r["in_initiating"] == "1")
			if err != nil || hex.EncodeToString(got) != r["mid_shared_secret"] {
				t.Fatalf("ECDH %x (%v), want %s", got, err, r["mid_shared_secret"])
			}
			// The argument-order pitfall: swapping ours and theirs changes the hash.
			if swapped, _ := ecdh(priv, ours, theirs, r["in_initiating"] == "1"); bytes.Equal(swapped, got) {
				t.Fatal("swapped encodings gave the same secret")
			}
		})
	}
}

// TestXSwiftEC: BIP324's decoding rows (source).
func TestXSwiftEC(t *testing.T) {
	rows := readCSV(t, "bip324_xswiftec.csv")
	if len(rows) != 76 {
		t.Fatalf("%d rows", len(rows))
	}
	for i, r := range rows {
		x, err := DecodeEllSwift(b64(t, r["ellswift"]))
		if err != nil || hex.EncodeToString(x[:]) != r["x"] {
			t.Errorf("row %d (%s): x %x (%v), want %s", i, r["comment"], x, err, r["x"])
		}
	}
}

// TestXSwiftECInv: BIP324's inverse rows (source): every case gives the
// listed t or none, and every t decodes back to x.
func TestXSwiftECInv(t *testing.T) {
	rows := readCSV(t, "bip324_xswiftec_inv.csv")
	if len(rows) != 32 {
		t.Fatalf("%d rows", len(rows))
	}
	for i, r := range rows {
		var u, x btcec.FieldVal
		u.SetByteSlice(unhex(t, r["u"]))
		x.SetByteSlice(unhex(t, r["x"]))
		for c := 0; c < 8; c++ {
			want := r["case"+string(rune('0'+c))+"_t"]
			tv := ellswift.XSwiftECInv(&u, &x, c)
			got := ""
			if tv != nil {
				b := tv.Bytes()
				got = hex.EncodeToString(b[:])
			}
			if got != want {
				t.Errorf("row %d case %d: t %q, want %q", i, c, got, want)
				continue
			}
			if tv != nil {
				dec, err := DecodeEllSwift(b64(t, r["u"]+want))
				if err != nil || hex.EncodeToString(dec[:]) != r["x"] {
					t.Errorf("row %d case %d: u‖t decodes to %x", i, c, dec)
				}
			}
		}
	}
}

// TestBIP340: every verification row, and signing (with aux_rand, as
// SignCertificate does) where a secret key is given. btcd signs and
// verifies 32-byte messages only, which is all SV2 needs (the certificate
// signs a SHA-256); the four variable-length rows must be refused, not
// misjudged.
func TestBIP340(t *testing.T) {
	rows := readCSV(t, "bip340.csv")
	if len(rows) != 19 {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		t.Run("index"+r["index"], func(t *testing.T) {
			msg := unhex(t, r["message"])
			sigB := unhex(t, r["signature"])
			want := r["verification result"] == "TRUE"
			ok := false
			pub, perr := schnorr.ParsePubKey(unhex(t, r["public key"]))
			sig, serr := schnorr.ParseSignature(sigB)
			if perr == nil && serr == nil {
				ok = sig.Verify(msg, pub)
			}
			if len(msg) != 32 {
				if ok {
					t.Fatalf("%d-byte message verified; btcd should refuse it", len(msg))
				}
				return
			}
			if ok != want {
				t.Fatalf("verify %t, want %t (%s)", ok, want, r["comment"])
			}
			if r["secret key"] == "" {
				return
			}
			priv := privFromHex(t, r["secret key"])
			aux := b32(t, r["aux_rand"])
			s, err := schnorr.Sign(priv, msg, schnorr.CustomNonce(aux))
			if err != nil || !bytes.Equal(s.Serialize(), sigB) {
				t.Fatalf("sign %x (%v), want %x", s.Serialize(), err, sigB)
			}
		})
	}
}

type authorityFile struct {
	Keys []struct {
		Name         string  `json:"name"`
		Public       string  `json:"public_key_base58check"`
		XOnly        string  `json:"x_only_public_key_hex"`
		SecretBase58 *string `json:"secret_key_base58check"`
		SecretHex    *string `json:"secret_key_hex"`
	} `json:"keys"`
	MustReject []struct {
		Name   string `json:"name"`
		String string `json:"string"`
	} `json:"must_reject"`
	Cert struct {
		Authority     string `json:"authority_x_only_hex"`
		Static        string `json:"server_static_x_only_hex"`
		ValidFrom     uint32 `json:"valid_from"`
		NotValidAfter uint32 `json:"not_valid_after"`
		MessageHash   string `json:"message_hash_hex"`
		Aux           string `json:"bip340_aux_rand_hex"`
		Signature     string `json:"signature_hex"`
		Wire          string `json:"signature_noise_message_hex"`
	} `json:"certificate_example_derived"`
}

func loadAuthority(t *testing.T) authorityFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorDir, "authority_keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var a authorityFile
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAuthorityKeys: published keys (source) parse, re-encode and match
// their secrets; the must-reject strings fail with the reason in the error.
func TestAuthorityKeys(t *testing.T) {
	a := loadAuthority(t)
	if len(a.Keys) != 4 || len(a.MustReject) != 4 {
		t.Fatalf("%d keys, %d rejects", len(a.Keys), len(a.MustReject))
	}
	for _, k := range a.Keys {
		t.Run(k.Name, func(t *testing.T) {
			ak, err := ParseAuthorityKey(k.Public)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(ak[:]) != k.XOnly || ak.String() != k.Public {
				t.Fatalf("key %x / %s", ak, ak)
			}
			if k.SecretBase58 == nil {
				return
			}
			priv, err := ParseSecretKey(*k.SecretBase58)
			if err != nil {
				t.Fatal(err)
			}
			if b := priv.Key.Bytes(); hex.EncodeToString(b[:]) != *k.SecretHex || EncodeSecretKey(priv) != *k.SecretBase58 {
				t.Fatal("secret key does not round-trip")
			}
			if AuthorityKeyOf(priv) != ak {
				t.Fatal("secret does not derive the public key")
			}
		})
	}
	why := map[string]string{"bad_checksum": "checksum", "bad_version": "version 12", "bad_length": "33 bytes", "legacy_unprefixed": "32 bytes"}
	for _, r := range a.MustReject {
		_, err := ParseAuthorityKey(r.String)
		if err == nil || !strings.Contains(err.Error(), why[r.Name]) {
			t.Errorf("%s: err %v, want one mentioning %q", r.Name, err, why[r.Name])
		}
	}
}

// TestCertificateDerived: the derived certificate (not independent) is
// reproduced by SignCertificate, verifies, and fails the negative checks.
func TestCertificateDerived(t *testing.T) {
	c := loadAuthority(t).Cert
	auth := privFromHex(t, "65995eb19631f478a46ffa5cf1e545091efe950eaeac7482ffdc06eb6a89f697")
	if ax := XOnly(auth.PubKey()); hex.EncodeToString(ax[:]) != c.Authority {
		t.Fatal("authority secret does not match")
	}
	static := b32(t, c.Static)
	aux := b32(t, c.Aux)
	cert, err := SignCertificate(auth, static, time.Unix(int64(c.ValidFrom), 0), time.Unix(int64(c.NotValidAfter), 0), &aux)
	if err != nil {
		t.Fatal(err)
	}
	if h := cert.SignedHash(static); hex.EncodeToString(h[:]) != c.MessageHash {
		t.Fatalf("hash %x", h)
	}
	if hex.EncodeToString(cert.Signature[:]) != c.Signature || hex.EncodeToString(cert.Marshal()) != c.Wire {
		t.Fatalf("certificate %x", cert.Marshal())
	}
	parsed, err := ParseCertificate(unhex(t, c.Wire))
	if err != nil || parsed != cert {
		t.Fatalf("parse: %+v %v", parsed, err)
	}
	if err := cert.Verify(AuthorityKey(b32(t, c.Authority)), static); err != nil {
		t.Fatal(err)
	}
	other, _ := ParseAuthorityKey("9bDuixKmZqAJnrmP746n8zU1wyAQRrus7th9dxnkPg6RzQvCnan")
	if err := cert.Verify(other, static); err != ErrWrongAuthority {
		t.Fatalf("foreign authority: %v", err)
	}
	tampered := cert
	tampered.NotValidAfter++
	if err := tampered.Verify(AuthorityKey(b32(t, c.Authority)), static); err != ErrWrongAuthority {
		t.Fatalf("extended window: %v", err)
	}
	// Window: inside, before, after, with and without leeway.
	from := time.Unix(int64(c.ValidFrom), 0)
	until := time.Unix(int64(c.NotValidAfter), 0)
	for _, tc := range []struct {
		now    time.Time
		leeway time.Duration
		want   error
	}{
		{from, 0, nil}, {until, 0, nil},
		{from.Add(-time.Second), 0, ErrCertNotYetValid}, {from.Add(-5 * time.Second), DefaultLeeway, nil},
		{until.Add(time.Second), 0, ErrCertExpired}, {until.Add(11 * time.Second), DefaultLeeway, ErrCertExpired},
	} {
		err := cert.CheckValidity(tc.now, tc.leeway)
		if (err == nil) != (tc.want == nil) || (tc.want != nil && !strings.HasPrefix(err.Error(), tc.want.Error())) {
			t.Errorf("now %v leeway %v: %v, want %v", tc.now.Unix(), tc.leeway, err, tc.want)
		}
	}
}
