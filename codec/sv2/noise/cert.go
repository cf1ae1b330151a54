package noise

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
)

// CertSize is the SIGNATURE_NOISE_MESSAGE size.
const CertSize = 74

// Handshake failures callers may want to tell apart (errors.Is).
var (
	ErrWrongAuthority  = errors.New("certificate is not signed by the configured authority key")
	ErrCertExpired     = errors.New("certificate expired")
	ErrCertNotYetValid = errors.New("certificate not yet valid")
	ErrBadCertificate  = errors.New("malformed certificate")
	ErrTampered        = errors.New("frame authentication failed (tampered or corrupted)")
)

// Certificate is the pool's SIGNATURE_NOISE_MESSAGE: the authority key's
// BIP340 signature over SHA256(version ‖ valid_from ‖ not_valid_after ‖
// x-only static key), times in Unix seconds.
type Certificate struct {
	Version       uint16
	ValidFrom     uint32
	NotValidAfter uint32
	Signature     [64]byte
}

// Marshal is the 74-byte wire form.
func (c *Certificate) Marshal() []byte {
	b := make([]byte, 0, CertSize)
	b = binary.LittleEndian.AppendUint16(b, c.Version)
	b = binary.LittleEndian.AppendUint32(b, c.ValidFrom)
	b = binary.LittleEndian.AppendUint32(b, c.NotValidAfter)
	return append(b, c.Signature[:]...)
}

// ParseCertificate reads the 74-byte wire form.
func ParseCertificate(b []byte) (Certificate, error) {
	var c Certificate
	if len(b) != CertSize {
		return c, fmt.Errorf("%w: %d bytes, want %d", ErrBadCertificate, len(b), CertSize)
	}
	c.Version = binary.LittleEndian.Uint16(b)
	c.ValidFrom = binary.LittleEndian.Uint32(b[2:])
	c.NotValidAfter = binary.LittleEndian.Uint32(b[6:])
	copy(c.Signature[:], b[10:])
	return c, nil
}

// SignedHash is the message the signature covers.
func (c *Certificate) SignedHash(staticX [32]byte) [32]byte {
	var pre [10 + 32]byte
	binary.LittleEndian.PutUint16(pre[0:], c.Version)
	binary.LittleEndian.PutUint32(pre[2:], c.ValidFrom)
	binary.LittleEndian.PutUint32(pre[6:], c.NotValidAfter)
	copy(pre[10:], staticX[:])
	return sha256.Sum256(pre[:])
}

// SignCertificate signs a certificate for a server static key. aux is
// BIP340's auxiliary randomness: nil draws it at random; tests pass a fixed
// value to get fixed bytes.
func SignCertificate(authority *btcec.PrivateKey, staticX [32]byte, validFrom, notValidAfter time.Time, aux *[32]byte) (Certificate, error) {
	c := Certificate{ValidFrom: uint32(validFrom.Unix()), NotValidAfter: uint32(notValidAfter.Unix())}
	h := c.SignedHash(staticX)
	var opts []schnorr.SignOption
	if aux != nil {
		opts = append(opts, schnorr.CustomNonce(*aux))
	}
	sig, err := schnorr.Sign(authority, h[:], opts...)
	if err != nil {
		return c, fmt.Errorf("sv2 noise: sign certificate: %w", err)
	}
	copy(c.Signature[:], sig.Serialize())
	return c, nil
}

// Verify checks the signature against the authority key. Version 0 is
// what SRI sends; sv2-tp refuses anything above it, and so do we.
func (c *Certificate) Verify(authority AuthorityKey, staticX [32]byte) error {
	if c.Version != 0 {
		return fmt.Errorf("%w: version %d, want 0", ErrBadCertificate, c.Version)
	}
	pub, err := schnorr.ParsePubKey(authority[:])
	if err != nil {
		return fmt.Errorf("%w: authority key: %v", ErrBadCertificate, err)
	}
	sig, err := schnorr.ParseSignature(c.Signature[:])
	if err != nil {
		return fmt.Errorf("%w (unparsable signature: %v)", ErrWrongAuthority, err)
	}
	h := c.SignedHash(staticX)
	if !sig.Verify(h[:], pub) {
		return ErrWrongAuthority
	}
	return nil
}

// CheckValidity checks now against the window, allowing leeway of clock
// skew on each side (SRI allows 10 s, sv2-tp none).
func (c *Certificate) CheckValidity(now time.Time, leeway time.Duration) error {
	from := time.Unix(int64(c.ValidFrom), 0).UTC()
	until := time.Unix(int64(c.NotValidAfter), 0).UTC()
	switch {
	case now.Add(leeway).Before(from):
		return fmt.Errorf("%w: valid from %s, now %s", ErrCertNotYetValid, from.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case now.Add(-leeway).After(until):
		return fmt.Errorf("%w at %s, now %s", ErrCertExpired, until.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}
