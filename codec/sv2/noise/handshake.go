package noise

import (
	"errors"
	"fmt"
	"time"

	"github.com/btcsuite/btcd/btcec/v2"
)

// Handshake message sizes. The spec's act-2 text says 170 bytes; its own
// steps (and SRI, sv2-tp) give 64 + 80 + 90.
const (
	ActOneSize = 64
	ActTwoSize = 64 + 64 + TagSize + CertSize + TagSize
)

// DefaultLeeway is the clock skew a client allows on each side of the
// certificate window, as SRI does.
const DefaultLeeway = 10 * time.Second

// DefaultCertValidity is how long a server's per-handshake certificate
// lasts (the SRI pool example's cert_validity_sec).
const DefaultCertValidity = time.Hour

// ClientConfig configures the initiator (the side that mines).
type ClientConfig struct {
	// Authority is the pool's authority key; the handshake fails unless the
	// certificate is signed by it. Required unless TOFU is set.
	Authority *AuthorityKey
	// TOFU accepts any server certificate (its window is still checked):
	// nothing then proves who the server is, so the caller must log
	// PeerInfo.StaticKey loudly and should pin it.
	TOFU bool
	// Now is the clock for the certificate window; nil means time.Now.
	Now func() time.Time
	// Leeway is the allowed clock skew: 0 means DefaultLeeway, negative none.
	Leeway time.Duration
	// Ephemeral replaces the random ephemeral key (fixed test transcripts).
	Ephemeral *Key
}

// ServerConfig configures the responder (the pool).
type ServerConfig struct {
	Static Key // the server's static key, sent encrypted in act 2
	// Authority signs a certificate per handshake, valid from now for
	// CertValidity (0: DefaultCertValidity).
	Authority    *btcec.PrivateKey
	CertValidity time.Duration
	// Certificate, if set, is sent as is instead (tests: expired, foreign).
	Certificate *Certificate
	Now         func() time.Time
	Ephemeral   *Key      // replaces the random ephemeral key (tests)
	CertAux     *[32]byte // fixed BIP340 aux randomness (tests)
}

// PeerInfo is what the client learnt about the server.
type PeerInfo struct {
	StaticKey   [32]byte // the server's x-only static key
	Certificate Certificate
	// Verified is false only in TOFU mode: nothing checked the signature.
	Verified bool
}

// Session holds the two transport cipher states after a handshake.
type Session struct {
	send, recv *cipherState
}

// Initiator runs the client side of the handshake.
type Initiator struct {
	cfg ClientConfig
	ss  *symmetricState
	e   Key
}

// NewInitiator checks cfg and draws the ephemeral key.
func NewInitiator(cfg ClientConfig) (*Initiator, error) {
	if cfg.Authority == nil && !cfg.TOFU {
		return nil, errors.New("sv2 noise: no authority key configured and TOFU not enabled")
	}
	i := &Initiator{cfg: cfg, ss: newSymmetricState()}
	if cfg.Ephemeral != nil {
		i.e = *cfg.Ephemeral
	} else {
		k, err := GenerateKey()
		if err != nil {
			return nil, err
		}
		i.e = k
	}
	return i, nil
}

// ActOne is the client's first message: its ephemeral encoding.
func (i *Initiator) ActOne() ([]byte, error) {
	i.ss.mixHash(i.e.EllSwift[:])
	if _, err := i.ss.encryptAndHash(nil); err != nil {
		return nil, err
	}
	return append([]byte{}, i.e.EllSwift[:]...), nil
}

// ReadActTwo processes the server's answer and authenticates it.
func (i *Initiator) ReadActTwo(msg []byte) (*Session, PeerInfo, error) {
	var info PeerInfo
	if len(msg) != ActTwoSize {
		return nil, info, fmt.Errorf("sv2 noise: act 2 is %d bytes, want %d", len(msg), ActTwoSize)
	}
	var re, rs [64]byte
	copy(re[:], msg[:64])
	i.ss.mixHash(re[:])
	ee, err := ecdh(i.e.Priv, re, i.e.EllSwift, true)
	if err != nil {
		return nil, info, err
	}
	if err := i.ss.mixKey(ee); err != nil {
		return nil, info, err
	}
	static, err := i.ss.decryptAndHash(msg[64 : 64+64+TagSize])
	if err != nil {
		return nil, info, fmt.Errorf("sv2 noise: act 2 static key: %w", err)
	}
	copy(rs[:], static)
	es, err := ecdh(i.e.Priv, rs, i.e.EllSwift, true)
	if err != nil {
		return nil, info, err
	}
	if err := i.ss.mixKey(es); err != nil {
		return nil, info, err
	}
	certBytes, err := i.ss.decryptAndHash(msg[64+64+TagSize:])
	if err != nil {
		return nil, info, fmt.Errorf("sv2 noise: act 2 certificate: %w", err)
	}
	if info.StaticKey, err = DecodeEllSwift(rs); err != nil {
		return nil, info, err
	}
	if info.Certificate, err = ParseCertificate(certBytes); err != nil {
		return nil, info, fmt.Errorf("sv2 noise: %w", err)
	}
	if !i.cfg.TOFU {
		if err := info.Certificate.Verify(*i.cfg.Authority, info.StaticKey); err != nil {
			return nil, info, fmt.Errorf("sv2 noise: %w (authority %s, server static key %x)", err, i.cfg.Authority, info.StaticKey)
		}
		info.Verified = true
	}
	now := time.Now
	if i.cfg.Now != nil {
		now = i.cfg.Now
	}
	leeway := i.cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	if err := info.Certificate.CheckValidity(now(), max(leeway, 0)); err != nil {
		return nil, info, fmt.Errorf("sv2 noise: %w", err)
	}
	c1, c2, err := i.ss.split()
	if err != nil {
		return nil, info, err
	}
	return &Session{send: c1, recv: c2}, info, nil
}

// Responder runs the server side of the handshake.
type Responder struct {
	cfg ServerConfig
	ss  *symmetricState
	re  [64]byte
}

// NewResponder checks cfg.
func NewResponder(cfg ServerConfig) (*Responder, error) {
	if cfg.Static.Priv == nil {
		return nil, errors.New("sv2 noise: server has no static key")
	}
	if cfg.Certificate == nil && cfg.Authority == nil {
		return nil, errors.New("sv2 noise: server has neither an authority key nor a certificate")
	}
	return &Responder{cfg: cfg, ss: newSymmetricState()}, nil
}

// ReadActOne takes the client's ephemeral key.
func (r *Responder) ReadActOne(msg []byte) error {
	if len(msg) != ActOneSize {
		return fmt.Errorf("sv2 noise: act 1 is %d bytes, want %d", len(msg), ActOneSize)
	}
	copy(r.re[:], msg)
	r.ss.mixHash(r.re[:])
	_, err := r.ss.decryptAndHash(nil)
	return err
}

// ActTwo builds the server's answer and the transport session.
func (r *Responder) ActTwo() ([]byte, *Session, error) {
	e := r.cfg.Ephemeral
	if e == nil {
		k, err := GenerateKey()
		if err != nil {
			return nil, nil, err
		}
		e = &k
	}
	cert, err := r.certificate()
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, 0, ActTwoSize)
	out = append(out, e.EllSwift[:]...)
	r.ss.mixHash(e.EllSwift[:])
	ee, err := ecdh(e.Priv, r.re, e.EllSwift, false)
	if err != nil {
		return nil, nil, err
	}
	if err := r.ss.mixKey(ee); err != nil {
		return nil, nil, err
	}
	c, err := r.ss.encryptAndHash(r.cfg.Static.EllSwift[:])
	if err != nil {
		return nil, nil, err
	}
	out = append(out, c...)
	es, err := ecdh(r.cfg.Static.Priv, r.re, r.cfg.Static.EllSwift, false)
	if err != nil {
		return nil, nil, err
	}
	if err := r.ss.mixKey(es); err != nil {
		return nil, nil, err
	}
	if c, err = r.ss.encryptAndHash(cert.Marshal()); err != nil {
		return nil, nil, err
	}
	out = append(out, c...)
	c1, c2, err := r.ss.split()
	if err != nil {
		return nil, nil, err
	}
	return out, &Session{send: c2, recv: c1}, nil
}

func (r *Responder) certificate() (Certificate, error) {
	if r.cfg.Certificate != nil {
		return *r.cfg.Certificate, nil
	}
	now := time.Now
	if r.cfg.Now != nil {
		now = r.cfg.Now
	}
	validity := r.cfg.CertValidity
	if validity <= 0 {
		validity = DefaultCertValidity
	}
	from := now()
	return SignCertificate(r.cfg.Authority, XOnly(r.cfg.Static.Priv.PubKey()), from, from.Add(validity), r.cfg.CertAux)
}
