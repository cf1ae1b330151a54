package proxydial

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// In-process stand-ins for the unit tests; internal/reliability runs the
// same paths against real proxy servers.

// echoPool answers every line with "echo:" and the line; it stands for a pool.
type echoPool struct {
	ln      net.Listener
	mu      sync.Mutex
	remotes []string
}

func startEchoPool(t *testing.T, tlsCfg *tls.Config) *echoPool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	p := &echoPool{ln: ln}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.remotes = append(p.remotes, c.RemoteAddr().String())
			p.mu.Unlock()
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, "echo:"+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return p
}

func (p *echoPool) Addr() string { return p.ln.Addr().String() }

// roundTrip checks that c reaches the echo pool.
func roundTrip(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "hello\n"); err != nil {
		t.Fatalf("write through tunnel: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "echo:hello\n" {
		t.Fatalf("read through tunnel: %q %v", line, err)
	}
}

// fakeProxy is a minimal SOCKS5 or HTTP CONNECT server. Host names in
// requests are looked up in names (the tests' pool is "pool.test").
type fakeProxy struct {
	ln     net.Listener
	socks  bool
	user   string
	pass   string
	names  map[string]string
	stall  chan struct{} // if set, requests wait for it to close
	mu     sync.Mutex
	hold   chan struct{} // if set (under mu), connections are served once it closes
	asked  []string      // targets requested, as sent
	closed chan string
}

func startFakeProxy(t *testing.T, socks bool, user, pass string, names map[string]string, tlsCfg *tls.Config) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	f := &fakeProxy{ln: ln, socks: socks, user: user, pass: pass, names: names, closed: make(chan string, 16)}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeProxy) URL(scheme string) string {
	auth := ""
	if f.user != "" {
		auth = f.user + ":" + f.pass + "@"
	}
	return scheme + "://" + auth + f.ln.Addr().String()
}

func (f *fakeProxy) Asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

func (f *fakeProxy) serve(c net.Conn) {
	defer func() {
		_ = c.Close()
		f.closed <- c.RemoteAddr().String()
	}()
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var target string
	var ok bool
	if f.socks {
		target, ok = f.socksRequest(c, r)
	} else {
		target, ok = f.connectRequest(c, r)
	}
	if !ok {
		return
	}
	f.mu.Lock()
	f.asked = append(f.asked, target)
	f.mu.Unlock()
	if f.stall != nil {
		// Wait for the test, or for the client to give up (a read returns).
		gone := make(chan struct{})
		go func() { _, _ = r.ReadByte(); close(gone) }()
		select {
		case <-f.stall:
		case <-gone:
			return
		}
	}
	host, port, _ := net.SplitHostPort(target)
	if a, ok := f.names[host]; ok {
		host = a
	}
	up, err := net.Dial("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return
	}
	defer up.Close()
	if f.socks {
		_, _ = c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
	} else {
		// The pool's first bytes ride in the same write as the reply, which
		// is what a fast pool behind a real proxy can look like.
		_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
	}
	_ = c.SetDeadline(time.Time{})
	go func() { _, _ = io.Copy(up, r) }()
	_, _ = io.Copy(c, up)
}

func (f *fakeProxy) socksRequest(c net.Conn, r *bufio.Reader) (string, bool) {
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || head[0] != 5 {
		return "", false
	}
	methods := make([]byte, head[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return "", false
	}
	want := byte(0)
	if f.user != "" {
		want = 2
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		_, _ = c.Write([]byte{5, 0xff})
		return "", false
	}
	_, _ = c.Write([]byte{5, want})
	if want == 2 {
		var v [2]byte
		if _, err := io.ReadFull(r, v[:]); err != nil {
			return "", false
		}
		user := make([]byte, v[1])
		_, _ = io.ReadFull(r, user)
		var pl [1]byte
		_, _ = io.ReadFull(r, pl[:])
		pass := make([]byte, pl[0])
		_, _ = io.ReadFull(r, pass)
		if string(user) != f.user || string(pass) != f.pass {
			_, _ = c.Write([]byte{1, 1})
			return "", false
		}
		_, _ = c.Write([]byte{1, 0})
	}
	var req [4]byte
	if _, err := io.ReadFull(r, req[:]); err != nil || req[1] != 1 {
		return "", false
	}
	var host string
	switch req[3] {
	case 1:
		var a [4]byte
		_, _ = io.ReadFull(r, a[:])
		host = net.IP(a[:]).String()
	case 3:
		var n [1]byte
		_, _ = io.ReadFull(r, n[:])
		b := make([]byte, n[0])
		_, _ = io.ReadFull(r, b)
		host = "domain=" + string(b) // marks that the name reached the proxy
	default:
		return "", false
	}
	var pb [2]byte
	if _, err := io.ReadFull(r, pb[:]); err != nil {
		return "", false
	}
	return net.JoinHostPort(host, strconv.Itoa(int(binary.BigEndian.Uint16(pb[:])))), true
}

func (f *fakeProxy) connectRequest(c net.Conn, r *bufio.Reader) (string, bool) {
	req, err := http.ReadRequest(r)
	if err != nil || req.Method != http.MethodConnect {
		return "", false
	}
	if f.user != "" {
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.user+":"+f.pass))
		if req.Header.Get("Proxy-Authorization") != want {
			_, _ = io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n")
			return "", false
		}
	}
	return req.Host, true
}

// selfSigned returns a server config for name and a client config that
// trusts it.
func selfSigned(t *testing.T, name string) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool, ServerName: name, MinVersion: tls.VersionTLS12}
}
