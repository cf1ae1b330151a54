package upstream_test

import (
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// linesWith returns the logged lines that contain s.
func (r *logRec) linesWith(s string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// waitLines blocks until n logged lines contain s, and returns them.
func (r *logRec) waitLines(t *testing.T, s string, n int) []string {
	t.Helper()
	deadline := time.After(testenv.Timeout)
	for {
		if l := r.linesWith(s); len(l) >= n {
			return l
		}
		r.mu.Lock()
		if r.ch == nil {
			r.ch = make(chan struct{})
		}
		ch := r.ch
		r.mu.Unlock()
		if l := r.linesWith(s); len(l) >= n {
			return l
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("fewer than %d log lines with %q", n, s)
		}
	}
}

// sv2_tofu = true: an SV2 pool is used without an authority key, and every
// connect says so in a warning with the key the pool presented.
func TestSV2TOFUWarnsOnEveryConnect(t *testing.T) {
	pool := sv2Pool(t, poolsim.Config{})
	entry := sv2Entry(t, pool, config.ProtocolSV2)
	entry.AuthorityPubkey, entry.SV2TOFU = "", true
	cfg := sv2Config(t, entry)
	cfg.Listen[0].Connections = 1
	a, logs := startAgent(t, cfg)
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 2, Hash: true, MaxSharesPerMiner: 2})
	allAccepted(t, testenv.Ctx(t), sim, 4)
	pool.DropAll()
	lines := logs.waitLines(t, "NOT authenticated", 2)
	key := func(l string) string {
		_, k, _ := strings.Cut(l, "server_key=")
		k, _, _ = strings.Cut(k, " ")
		return k
	}
	for _, l := range lines {
		if len(key(l)) != 64 || key(l) != key(lines[0]) || !strings.Contains(l, "sv2_tofu") {
			t.Fatalf("TOFU warnings %q", lines)
		}
	}
	if ready := logs.waitLines(t, "pool link ready", 2); !strings.Contains(ready[1], "authenticated=no (sv2_tofu)") {
		t.Fatalf("ready line %q", ready[1])
	}
}

// An SV2 pool whose certificate is signed by another authority than the
// configured authority_pubkey, or whose certificate has expired, is refused
// in the handshake: one log line says why, the slot serves its miners from
// the next pool of its list, and keeps probing the SV2 pool (failback)
// without logging each probe.
func TestSV2RefusedHandshakes(t *testing.T) {
	const otherKey = "9bXiEd8boQVhq7WddEcERUL5tyyJVFYdU8th3HfbNXK3Yw6GRXh" // sv2-spec 4.7.1
	for _, c := range []struct {
		name   string
		pool   poolsim.Config
		key    string // "" keeps the pool's own
		reason string
	}{
		{"wrong-authority", poolsim.Config{}, otherKey, "the pool's certificate is not signed by authority_pubkey"},
		{"expired-certificate", poolsim.Config{SV2CertValidity: time.Minute, SV2CertBackdate: time.Hour}, "", "the pool's certificate has expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			primary := sv2Pool(t, c.pool)
			backup := testenv.Pool(t, poolsim.Config{})
			entry := sv2Entry(t, primary, config.ProtocolSV2)
			if c.key != "" {
				entry.AuthorityPubkey = c.key
			}
			host, port, _ := net.SplitHostPort(backup.Addr())
			bport, _ := strconv.Atoi(port)
			cfg := sv2Config(t, entry, config.Pool{Host: host, Port: bport})
			cfg.Listen[0].Connections = 1
			a, logs := startAgent(t, cfg)
			logs.waitFor(t, "pool link failed", c.reason)
			ctx := testenv.Ctx(t)
			// It keeps trying the SV2 pool (failback probes).
			if err := primary.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.ConnsAccepted >= 3 }); err != nil {
				t.Fatalf("the agent stopped trying the SV2 pool: %v", err)
			}
			sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 4, Hash: true, MaxSharesPerMiner: 2})
			allAccepted(t, ctx, sim, 8)
			if p := poolsOf(t, a); !allOn(p, 1, backup.Addr()) {
				t.Fatalf("slot on %v, want the backup %s", p, backup.Addr())
			}
			if st := primary.Stats(); st.Totals.Accepted != 0 || st.Totals.RegisteredWorkers != 0 {
				t.Fatalf("the refused SV2 pool was used: %+v", st.Totals)
			}
			if l := logs.linesWith("pool link failed"); len(l) != 1 || !strings.Contains(l[0], c.reason) {
				t.Fatalf("want one failure line with %q, got %q", c.reason, l)
			}
			for _, l := range logs.linesWith(c.reason) {
				if strings.ContainsAny(l, "\r\n") {
					t.Fatalf("not one line: %q", l)
				}
			}
		})
	}
}

// tamperRelay forwards loopback TCP to target; when armed, it flips one bit
// of the next bytes it passes from the pool to the agent.
type tamperRelay struct {
	ln     net.Listener
	target string
	arm    atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func startTamperRelay(t *testing.T, target string) *tamperRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tamperRelay{ln: ln, target: target}
	t.Cleanup(func() {
		_ = ln.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = down.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, down, up)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, down); _ = up.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := up.Read(buf)
					if n > 0 && r.arm.CompareAndSwap(true, false) {
						buf[n-1] ^= 0x01
					}
					if n > 0 {
						if _, werr := down.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				_ = down.Close()
			}()
		}
	}()
	return r
}

func (r *tamperRelay) port() int { return r.ln.Addr().(*net.TCPAddr).Port }

// A frame from the pool altered on the way fails its authentication: the
// link ends with one log line saying so, without a crash, and the slot
// connects again and goes on mining.
func TestSV2TamperedFrame(t *testing.T) {
	pool := sv2Pool(t, poolsim.Config{})
	relay := startTamperRelay(t, pool.SV2Addr())
	entry := sv2Entry(t, pool, config.ProtocolSV2)
	entry.Port = relay.port()
	cfg := sv2Config(t, entry)
	cfg.Listen[0].Connections = 1
	a, logs := startAgent(t, cfg)
	ctx := testenv.Ctx(t)
	testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 4, Hash: true})
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= 4 }); err != nil {
		t.Fatal(err)
	}
	relay.arm.Store(true)
	pool.NewJob(false)
	logs.waitFor(t, "pool link lost", "frame authentication failed")
	// The slot reconnects (through the relay, clean again) and its miners
	// get shares accepted on the new link.
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.ConnsAccepted >= 2 && len(s.Conns) == 1 }); err != nil {
		t.Fatalf("no new link: %v", err)
	}
	mark := pool.Stats().Totals.Accepted
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+4 }); err != nil {
		t.Fatalf("no shares after the reconnect: %v", err)
	}
	if l := logs.linesWith("frame authentication failed"); len(l) != 1 || strings.ContainsAny(l[0], "\r\n") {
		t.Fatalf("want one line about the tampered frame, got %q", l)
	}
}
