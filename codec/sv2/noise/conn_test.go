package noise

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec/sv2"
	"github.com/btcsuite/btcd/btcec/v2"
)

// testServer accepts one connection on 127.0.0.1 and runs the responder;
// the result arrives on the returned channel.
type serverResult struct {
	c   *Conn
	err error
}

func startServer(t *testing.T, cfg ServerConfig) (string, <-chan serverResult) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan serverResult, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- serverResult{err: err}
			return
		}
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := Server(nc, cfg)
		if err != nil {
			nc.Close()
		} else {
			_ = nc.SetDeadline(time.Time{})
		}
		ch <- serverResult{c, err}
	}()
	return ln.Addr().String(), ch
}

func newAuthority(t *testing.T) (*btcec.PrivateKey, AuthorityKey) {
	t.Helper()
	p, err := btcec.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return p, AuthorityKeyOf(p)
}

func serverConfig(t *testing.T, auth *btcec.PrivateKey) ServerConfig {
	t.Helper()
	s, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return ServerConfig{Static: s, Authority: auth}
}

func dial(t *testing.T, addr string, cfg ClientConfig) (*Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return Dial(ctx, addr, cfg)
}

// A handshake between our two sides, then frames both ways, one of them
// large enough to be chunked.
func TestHandshakeAndFrames(t *testing.T) {
	authPriv, auth := newAuthority(t)
	scfg := serverConfig(t, authPriv)
	addr, sch := startServer(t, scfg)
	c, err := dial(t, addr, ClientConfig{Authority: &auth})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sr := <-sch
	if sr.err != nil {
		t.Fatal(sr.err)
	}
	defer sr.c.Close()
	if p := c.Peer(); !p.Verified || p.StaticKey != XOnly(scfg.Static.Priv.PubKey()) {
		t.Fatalf("peer %+v", p)
	}
	setup := &sv2.SetupConnection{MinVersion: 2, MaxVersion: 2, Flags: sv2.FlagRequiresVersionRolling, EndpointHost: "127.0.0.1", EndpointPort: 1}
	if err := c.WriteMessage(setup); err != nil {
		t.Fatal(err)
	}
	m, err := sr.c.ReadMessage()
	if err != nil || m.(*sv2.SetupConnection).EndpointHost != "127.0.0.1" {
		t.Fatalf("server read %T %v", m, err)
	}
	big := &sv2.NewExtendedMiningJob{ChannelID: 1, JobID: 2, CoinbaseTxPrefix: bytes.Repeat([]byte{1}, 65535), CoinbaseTxSuffix: bytes.Repeat([]byte{2}, 40000)}
	go func() { _ = sr.c.WriteMessage(big) }()
	m, err = c.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	got := m.(*sv2.NewExtendedMiningJob)
	if !bytes.Equal(got.CoinbaseTxPrefix, big.CoinbaseTxPrefix) || !bytes.Equal(got.CoinbaseTxSuffix, big.CoinbaseTxSuffix) {
		t.Fatal("chunked job differs")
	}
}

// Each refused handshake fails with one clear line naming the cause.
func TestHandshakeRefusals(t *testing.T) {
	authPriv, auth := newAuthority(t)
	_, otherAuth := newAuthority(t)
	now := time.Now()
	expiredCfg := serverConfig(t, authPriv)
	expired, err := SignCertificate(authPriv, XOnly(expiredCfg.Static.Priv.PubKey()), now.Add(-2*time.Hour), now.Add(-time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	expiredCfg.Certificate = &expired
	futureCfg := serverConfig(t, authPriv)
	futureCfg.Now = func() time.Time { return now.Add(time.Hour) }

	cases := []struct {
		name  string
		scfg  ServerConfig
		ccfg  ClientConfig
		want  error
		words string
	}{
		{"wrong authority", serverConfig(t, authPriv), ClientConfig{Authority: &otherAuth}, ErrWrongAuthority, otherAuth.String()},
		{"expired", expiredCfg, ClientConfig{Authority: &auth}, ErrCertExpired, "certificate expired at"},
		{"not yet valid", futureCfg, ClientConfig{Authority: &auth}, ErrCertNotYetValid, "certificate not yet valid"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, sch := startServer(t, tc.scfg)
			c, err := dial(t, addr, tc.ccfg)
			if err == nil {
				c.Close()
				t.Fatal("handshake succeeded")
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.words) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err %q, want %v mentioning %q on one line", err, tc.want, tc.words)
			}
			if sr := <-sch; sr.c != nil {
				sr.c.Close()
			}
		})
	}
	if _, err := NewInitiator(ClientConfig{}); err == nil {
		t.Fatal("no authority and no TOFU accepted")
	}
}

// TOFU accepts an unknown authority, reports the server key unverified,
// and still refuses an expired certificate.
func TestTOFU(t *testing.T) {
	authPriv, _ := newAuthority(t)
	scfg := serverConfig(t, authPriv)
	addr, sch := startServer(t, scfg)
	c, err := dial(t, addr, ClientConfig{TOFU: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if sr := <-sch; sr.err != nil {
		t.Fatal(sr.err)
	} else {
		sr.c.Close()
	}
	if p := c.Peer(); p.Verified || p.StaticKey != XOnly(scfg.Static.Priv.PubKey()) {
		t.Fatalf("peer %+v", p)
	}
	late := ClientConfig{TOFU: true, Now: func() time.Time { return time.Now().Add(3 * time.Hour) }}
	addr, sch = startServer(t, serverConfig(t, authPriv))
	if _, err := dial(t, addr, late); !errors.Is(err, ErrCertExpired) {
		t.Fatalf("TOFU with an expired certificate: %v", err)
	}
	if sr := <-sch; sr.c != nil {
		sr.c.Close()
	}
}

// tamperConn flips one bit of the n-th byte written through it.
type tamperConn struct {
	net.Conn
	at      int
	written int
}

func (tc *tamperConn) Write(b []byte) (int, error) {
	if tc.at >= tc.written && tc.at < tc.written+len(b) {
		b = append([]byte{}, b...)
		b[tc.at-tc.written] ^= 0x01
	}
	tc.written += len(b)
	return tc.Conn.Write(b)
}

// A modified byte in a transport frame fails the MAC: a clear error, and
// the connection stays failed.
func TestTamperedFrame(t *testing.T) {
	authPriv, auth := newAuthority(t)
	for _, at := range []int{3, EncryptedHeaderSize + 5} { // in the header, in the payload
		addr, sch := startServer(t, serverConfig(t, authPriv))
		c, err := dial(t, addr, ClientConfig{Authority: &auth})
		if err != nil {
			t.Fatal(err)
		}
		sr := <-sch
		if sr.err != nil {
			t.Fatal(sr.err)
		}
		sr.c.nc = &tamperConn{Conn: sr.c.nc, at: at}
		if err := sr.c.WriteMessage(&sv2.SetTarget{ChannelID: 1}); err != nil {
			t.Fatal(err)
		}
		_, err = c.ReadMessage()
		if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), "tampered") {
			t.Fatalf("byte %d: err %v", at, err)
		}
		if _, again := c.ReadMessage(); again == nil || !errors.Is(again, ErrTampered) {
			t.Fatalf("after a MAC failure: %v", again)
		}
		c.Close()
		sr.c.Close()
	}
}

// A peer announcing a payload above MaxPayload is refused before allocation.
func TestMaxPayload(t *testing.T) {
	authPriv, auth := newAuthority(t)
	addr, sch := startServer(t, serverConfig(t, authPriv))
	c, err := dial(t, addr, ClientConfig{Authority: &auth})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sr := <-sch
	if sr.err != nil {
		t.Fatal(sr.err)
	}
	defer sr.c.Close()
	c.MaxPayload = 100
	go func() { _ = sr.c.WriteFrame(sv2.Frame{Header: sv2.Header{MsgType: 0x70}, Payload: make([]byte, 101)}) }()
	if _, err := c.ReadFrame(); err == nil || !strings.Contains(err.Error(), "exceeds the 100-byte limit") {
		t.Fatalf("err %v", err)
	}
}

// NewKey encodes a configured key: two encodings differ (random u) but both
// decode to the key's x, and KeyFromParts refuses a foreign encoding.
func TestNewKey(t *testing.T) {
	priv, _ := newAuthority(t)
	a, err := NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if a.EllSwift == b.EllSwift {
		t.Fatal("two encodings are equal")
	}
	for _, k := range []Key{a, b} {
		if x, err := DecodeEllSwift(k.EllSwift); err != nil || x != XOnly(priv.PubKey()) {
			t.Fatalf("encoding decodes to %x (%v)", x, err)
		}
	}
	other, _ := GenerateKey()
	if _, err := KeyFromParts(priv, other.EllSwift); err == nil {
		t.Fatal("foreign encoding accepted")
	}
}
