package noise

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ellswift"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// Key is a secp256k1 key pair with the 64-byte ElligatorSwift encoding of
// its public key, which is what the handshake sends. An encoding is one of
// many for the same key; it enters the transcript hash verbatim.
type Key struct {
	Priv     *btcec.PrivateKey
	EllSwift [64]byte
}

// GenerateKey makes a random key with a random encoding.
func GenerateKey() (Key, error) {
	priv, ell, err := ellswift.EllswiftCreate()
	if err != nil {
		return Key{}, fmt.Errorf("sv2 noise: generate key: %w", err)
	}
	return Key{Priv: priv, EllSwift: ell}, nil
}

// NewKey encodes priv's public key with a random ElligatorSwift encoding
// (a pool's configured static key, for instance).
func NewKey(priv *btcec.PrivateKey) (Key, error) {
	x := new(btcec.FieldVal)
	pubX := priv.PubKey().X().FillBytes(make([]byte, 32))
	x.SetByteSlice(pubX)
	u, t, err := ellswift.XElligatorSwift(x)
	if err != nil {
		return Key{}, fmt.Errorf("sv2 noise: encode key: %w", err)
	}
	k := Key{Priv: priv}
	ub, tb := u.Bytes(), t.Bytes()
	copy(k.EllSwift[:32], ub[:])
	copy(k.EllSwift[32:], tb[:])
	return k, nil
}

// KeyFromParts pairs a private key with a given encoding, checking that the
// encoding decodes to the key's x coordinate (fixed test transcripts).
func KeyFromParts(priv *btcec.PrivateKey, ell [64]byte) (Key, error) {
	x, err := DecodeEllSwift(ell)
	if err != nil {
		return Key{}, err
	}
	if want := XOnly(priv.PubKey()); x != want {
		return Key{}, fmt.Errorf("sv2 noise: encoding %x decodes to x %x, not the key's %x", ell[:8], x, want)
	}
	return Key{Priv: priv, EllSwift: ell}, nil
}

// XOnly is a public key's 32-byte x coordinate.
func XOnly(pub *btcec.PublicKey) (x [32]byte) {
	pub.X().FillBytes(x[:])
	return x
}

// DecodeEllSwift is BIP324's XSwiftEC: the x coordinate a 64-byte
// encoding stands for. Every 64-byte string decodes.
func DecodeEllSwift(ell [64]byte) ([32]byte, error) {
	var u, t btcec.FieldVal
	if u.SetByteSlice(ell[:32]) {
		u.Normalize()
	}
	if t.SetByteSlice(ell[32:]) {
		t.Normalize()
	}
	x, err := ellswift.XSwiftEC(&u, &t)
	if err != nil {
		return [32]byte{}, fmt.Errorf("sv2 noise: decode ellswift: %w", err)
	}
	return *x.Bytes(), nil
}

// ecdh is SV2's ECDH: BIP324's v2_ecdh, whose tagged hash covers the
// initiator's encoding first. btcd's V2Ecdh takes (priv, theirs, ours,
// initiating), not the spec's (k, ours, theirs) order.
func ecdh(priv *btcec.PrivateKey, theirs, ours [64]byte, initiator bool) ([]byte, error) {
	h, err := ellswift.V2Ecdh(priv, theirs, ours, initiator)
	if err != nil {
		return nil, fmt.Errorf("sv2 noise: ecdh: %w", err)
	}
	return h[:], nil
}

// ---- authority keys: base58check text as SV2 pools publish them ----

// AuthorityKey is a pool authority's x-only public key.
type AuthorityKey [32]byte

// authorityKeyVersion is the U16 LE prefix of the encoded form.
const authorityKeyVersion = 1

// ParseAuthorityKey reads base58check([01 00] ‖ x-only key). The older
// unprefixed 32-byte form and any other version are refused: accepting them
// would silently trust a string the operator may have mistyped or copied
// from an outdated example.
func ParseAuthorityKey(s string) (AuthorityKey, error) {
	var k AuthorityKey
	b, err := base58CheckDecode(s)
	if err != nil {
		return k, fmt.Errorf("sv2 noise: authority key %q: %w", s, err)
	}
	if len(b) != 34 {
		return k, fmt.Errorf("sv2 noise: authority key %q: %d bytes, want 34 (version 01 00 + 32-byte key)", s, len(b))
	}
	if v := int(b[0]) | int(b[1])<<8; v != authorityKeyVersion {
		return k, fmt.Errorf("sv2 noise: authority key %q: version %d, want %d", s, v, authorityKeyVersion)
	}
	copy(k[:], b[2:])
	if _, err := schnorr.ParsePubKey(k[:]); err != nil {
		return k, fmt.Errorf("sv2 noise: authority key %q: not a curve point: %w", s, err)
	}
	return k, nil
}

// String is the base58check form.
func (k AuthorityKey) String() string {
	return base58CheckEncode(append([]byte{authorityKeyVersion, 0}, k[:]...))
}

// AuthorityKeyOf is the authority key of a secret key.
func AuthorityKeyOf(priv *btcec.PrivateKey) AuthorityKey { return AuthorityKey(XOnly(priv.PubKey())) }

// ParseSecretKey reads a secret key as SRI configs write it: base58check of
// the 32 raw bytes, or 64 hex digits.
func ParseSecretKey(s string) (*btcec.PrivateKey, error) {
	b, err := base58CheckDecode(s)
	if err != nil {
		var herr error
		if b, herr = hex.DecodeString(s); herr != nil {
			return nil, fmt.Errorf("sv2 noise: secret key: neither base58check (%v) nor hex", err)
		}
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("sv2 noise: secret key: %d bytes, want 32", len(b))
	}
	var n btcec.ModNScalar
	if n.SetByteSlice(b) || n.IsZero() {
		return nil, errors.New("sv2 noise: secret key: out of range 1..n-1")
	}
	return btcec.PrivKeyFromScalar(&n), nil
}

// EncodeSecretKey is the base58check form ParseSecretKey reads.
func EncodeSecretKey(priv *btcec.PrivateKey) string {
	b := priv.Key.Bytes()
	return base58CheckEncode(b[:])
}

const b58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

func base58CheckEncode(payload []byte) string {
	sum := sha256.Sum256(payload)
	sum = sha256.Sum256(sum[:])
	b := append(append([]byte{}, payload...), sum[:4]...)
	n := new(big.Int).SetBytes(b)
	var out []byte
	mod, base := new(big.Int), big.NewInt(58)
	for n.Sign() > 0 {
		n.QuoRem(n, base, mod)
		out = append(out, b58Alphabet[mod.Int64()])
	}
	for _, c := range b {
		if c != 0 {
			break
		}
		out = append(out, '1')
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return string(out)
}

func base58CheckDecode(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	n := new(big.Int)
	base := big.NewInt(58)
	zeros := 0
	for i := 0; i < len(s) && s[i] == '1'; i++ {
		zeros++
	}
	for i := 0; i < len(s); i++ {
		d := bytes.IndexByte([]byte(b58Alphabet), s[i])
		if d < 0 {
			return nil, fmt.Errorf("character %q is not base58", s[i])
		}
		n.Mul(n, base).Add(n, big.NewInt(int64(d)))
	}
	b := append(make([]byte, zeros), n.Bytes()...)
	if len(b) < 5 {
		return nil, errors.New("too short for a checksum")
	}
	payload, check := b[:len(b)-4], b[len(b)-4:]
	sum := sha256.Sum256(payload)
	sum = sha256.Sum256(sum[:])
	if !bytes.Equal(sum[:4], check) {
		return nil, errors.New("base58check checksum mismatch")
	}
	return payload, nil
}
