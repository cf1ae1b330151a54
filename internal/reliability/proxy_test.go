package reliability

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxy stands in front of a pool simulator on loopback: optionally as a
// TLS server with a self-signed certificate, optionally cutting every
// connection right after a job (a pool that closes right after a job). It
// records when connections arrived, which is how tests count dial attempts.
type proxy struct {
	ln     net.Listener
	target atomic.Pointer[string] // the pool's address; SetTarget moves it

	cutAfterJob atomic.Bool // see pipeDown

	mu       sync.Mutex
	attempts []time.Time
	remotes  []string // source hosts of the connections, in arrival order
	failedHS int
	conns    map[net.Conn]struct{}
	changed  chan struct{} // closed on every new attempt
	wg       sync.WaitGroup
	closed   bool
}

func startProxy(t testing.TB, target string, tlsCfg *tls.Config) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	p := &proxy{ln: ln, conns: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	p.SetTarget(target)
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

// SetTarget points new connections at another pool address.
func (p *proxy) SetTarget(addr string) { p.target.Store(&addr) }

func (p *proxy) Attempts() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.attempts...)
}

// Remotes are the source hosts of the connections that arrived.
func (p *proxy) Remotes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.remotes...)
}

// WaitAttempts waits until at least n connections arrived.
func (p *proxy) WaitAttempts(ctx context.Context, n int) error {
	for {
		p.mu.Lock()
		got, ch := len(p.attempts), p.changed
		p.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *proxy) FailedHandshakes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failedHS
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.attempts = append(p.attempts, time.Now())
		p.remotes = append(p.remotes, hostOf(c.RemoteAddr().String()))
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if !p.track(c) {
			_ = c.Close()
			return
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *proxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	if tc, ok := c.(*tls.Conn); ok {
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			p.mu.Lock()
			p.failedHS++
			p.mu.Unlock()
			return
		}
		_ = tc.SetDeadline(time.Time{})
	}
	up, err := net.DialTimeout("tcp", *p.target.Load(), 5*time.Second)
	if err != nil {
		// The pool is down: reset the agent's connection, as close to a
		// refused connect as a listening proxy gets.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(up, c)
		_ = up.Close()
	}()
	p.pipeDown(c, up)
	_ = c.Close()
	_ = up.Close()
	<-done
}

var (
	notifyMark    = []byte(`"mining.notify"`)
	handshakeDone = []byte(`"caps_again"`) // the agent handshake's last reply
)

// pipeDown copies pool → agent. Once the proxy is armed (CutAfterJob), a
// connection whose agent handshake is complete is cut right after the
// next chunk that carried a job: existing links at the pool's next job,
// new links right after the handshake's first job.
func (p *proxy) pipeDown(dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	var tail []byte // end of the previous read, so that a split marker is found
	hsDone, jobWhileArmed := false, false
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			scan := append(append([]byte(nil), tail...), chunk...)
			hsDone = hsDone || bytes.Contains(scan, handshakeDone)
			armed := p.cutAfterJob.Load()
			if armed && bytes.Contains(scan, notifyMark) {
				jobWhileArmed = true
			}
			if k := len(scan) - 16; k > 0 {
				tail = scan[k:]
			} else {
				tail = scan
			}
			if armed && jobWhileArmed && hsDone {
				if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
					_, _ = dst.Write(chunk[:i+1])
					return
				}
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

// selfSignedTLS returns a server config with a fresh self-signed
// certificate for 127.0.0.1 that no system trust store knows.
func selfSignedTLS(t testing.TB) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "btcagent test pool"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}
