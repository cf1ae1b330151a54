package noise

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// ProtocolName is hashed into the initial chaining key.
const ProtocolName = "Noise_NX_Secp256k1+EllSwift_ChaChaPoly_SHA256"

// TagSize is the Poly1305 tag appended to every encrypted piece.
const TagSize = chacha20poly1305.Overhead

// errNonceExhausted guards the one nonce sv2-tp refuses; unreachable in
// practice (2^64 frames), but cheaper to check than to reason about.
var errNonceExhausted = errors.New("sv2 noise: nonce space exhausted")

// cipherState is a Noise CipherState: a key and a counter nonce.
type cipherState struct {
	aead cipher.AEAD
	n    uint64
}

func newCipherState(k [32]byte) (*cipherState, error) {
	a, err := chacha20poly1305.New(k[:])
	if err != nil {
		return nil, fmt.Errorf("sv2 noise: chacha20poly1305: %w", err)
	}
	return &cipherState{aead: a}, nil
}

// nonce is 4 zero bytes ‖ the counter as U64 LE (SV2 4.3.3).
func (c *cipherState) nonce() (nc [12]byte, err error) {
	if c.n == ^uint64(0) {
		return nc, errNonceExhausted
	}
	binary.LittleEndian.PutUint64(nc[4:], c.n)
	return nc, nil
}

func (c *cipherState) seal(dst, ad, pt []byte) ([]byte, error) {
	nc, err := c.nonce()
	if err != nil {
		return nil, err
	}
	c.n++
	return c.aead.Seal(dst, nc[:], pt, ad), nil
}

func (c *cipherState) open(dst, ad, ct []byte) ([]byte, error) {
	nc, err := c.nonce()
	if err != nil {
		return nil, err
	}
	c.n++
	out, err := c.aead.Open(dst, nc[:], ct, ad)
	if err != nil {
		return nil, ErrTampered
	}
	return out, nil
}

// symmetricState is Noise's SymmetricState with SV2's initialisation:
// ck = SHA256(name), h = SHA256(ck) (there is no prologue).
type symmetricState struct {
	ck, h [32]byte
	cs    *cipherState // nil until the first MixKey
}

func newSymmetricState() *symmetricState {
	s := &symmetricState{ck: sha256.Sum256([]byte(ProtocolName))}
	s.h = sha256.Sum256(s.ck[:])
	return s
}

func (s *symmetricState) mixHash(data []byte) {
	h := sha256.New()
	h.Write(s.h[:])
	h.Write(data)
	h.Sum(s.h[:0])
}

func hmacSHA256(key []byte, parts ...[]byte) (out [32]byte) {
	m := hmac.New(sha256.New, key)
	for _, p := range parts {
		m.Write(p)
	}
	m.Sum(out[:0])
	return out
}

// hkdf2 is Noise's HKDF with two outputs.
func hkdf2(ck [32]byte, ikm []byte) (o1, o2 [32]byte) {
	tmp := hmacSHA256(ck[:], ikm)
	o1 = hmacSHA256(tmp[:], []byte{0x01})
	o2 = hmacSHA256(tmp[:], o1[:], []byte{0x02})
	return o1, o2
}

func (s *symmetricState) mixKey(ikm []byte) error {
	var k [32]byte
	s.ck, k = hkdf2(s.ck, ikm)
	cs, err := newCipherState(k)
	if err != nil {
		return err
	}
	s.cs = cs
	return nil
}

func (s *symmetricState) encryptAndHash(pt []byte) ([]byte, error) {
	c := pt
	if s.cs != nil {
		var err error
		if c, err = s.cs.seal(nil, s.h[:], pt); err != nil {
			return nil, err
		}
	}
	s.mixHash(c)
	return c, nil
}

func (s *symmetricState) decryptAndHash(ct []byte) ([]byte, error) {
	p := ct
	if s.cs != nil {
		var err error
		if p, err = s.cs.open(nil, s.h[:], ct); err != nil {
			return nil, err
		}
	}
	s.mixHash(ct)
	return p, nil
}

// split derives the two transport keys: the first encrypts initiator →
// responder, the second responder → initiator.
func (s *symmetricState) split() (c1, c2 *cipherState, err error) {
	k1, k2 := hkdf2(s.ck, nil)
	if c1, err = newCipherState(k1); err != nil {
		return nil, nil, err
	}
	if c2, err = newCipherState(k2); err != nil {
		return nil, nil, err
	}
	return c1, c2, nil
}
