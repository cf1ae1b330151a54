// Package testenv starts the pieces of an end-to-end test in one process: the
// pool simulator, an agent configured against it, and simulated miners. Every
// address is on loopback with a kernel-chosen port, and every wait is bounded.
package testenv

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// Timeout bounds every wait in end-to-end tests.
const Timeout = 120 * time.Second

// Logger returns a logger that writes to the test log only when -v is set,
// at warn level, so failures show what the agent complained about.
func Logger(t testing.TB) *logrus.Logger {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	if testing.Verbose() {
		l.SetOutput(testWriter{t})
	} else {
		l.SetOutput(io.Discard)
	}
	return l
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// Pool starts a pool simulator with test-friendly defaults: CPU-mineable
// difficulty, full validation, no periodic jobs unless cfg asks for them.
func Pool(t testing.TB, cfg poolsim.Config) *poolsim.Pool {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.JSONDiff == 0 && cfg.FixedDiff == 0 {
		cfg.JSONDiff = 0.00001
	}
	if cfg.NotifyInterval == 0 {
		cfg.NotifyInterval = time.Hour
	}
	if cfg.Branches == 0 {
		cfg.Branches = 4
	}
	p, err := poolsim.Start(cfg)
	if err != nil {
		t.Fatalf("start pool simulator: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Config returns an agent config with one listener on a free loopback port
// pointing at the given pool addresses, with defaults applied. Tests adjust it.
func Config(t testing.TB, poolUser string, poolAddrs ...string) *config.Config {
	t.Helper()
	cfg := config.Default()
	l := config.Listener{Address: "127.0.0.1", Port: Port(t), PoolUser: poolUser}
	for _, a := range poolAddrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(port)
		l.Pools = append(l.Pools, config.Pool{Host: host, Port: p})
	}
	cfg.Listen = []config.Listener{l}
	cfg.HTTPListen = ""
	cfg.Upstream.ReconnectMin = 50 * time.Millisecond
	cfg.Upstream.ReconnectMax = 500 * time.Millisecond
	cfg.Upstream.FailbackInterval = 500 * time.Millisecond
	cfg.Upstream.FlushInterval = 5 * time.Millisecond
	// Simulated hash miners at test difficulties submit tens of shares a
	// second each, far above any ASIC, and on a loaded machine they arrive
	// in bursts: the default per-miner budget (50 lines/s) would drop some
	// of them, silently by design, and a test waiting for every answer
	// would hang. Tests of the limit itself set their own.
	cfg.Miner.MaxRequestsPerSec = 2000
	cfg.ApplyDefaults()
	return cfg
}

// reserved holds the sockets Port opened, by port, until an agent takes
// them through Socket or the test ends.
var reserved sync.Map

// Port reserves a loopback port for an agent listener (address 127.0.0.1)
// and returns it. The socket stays open until an agent started with
// Options.Socket = Socket serves it, so nothing else can take the port in
// between; an agent started without Socket fails to bind it, loudly.
func Port(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	reserved.Store(port, ln)
	t.Cleanup(func() {
		if v, ok := reserved.LoadAndDelete(port); ok {
			_ = v.(net.Listener).Close()
		}
	})
	return port
}

// Release closes the socket Port reserved, for an agent that runs in
// another process and must bind the port itself. The port is free for
// anyone between this call and that bind: use Socket whenever the agent
// runs in the test's process.
func Release(port int) {
	if ln := Socket(port); ln != nil {
		_ = ln.Close()
	}
}

// Socket hands over the socket Port reserved for port (nil if none): pass
// it as agent.Options.Socket.
func Socket(port int) net.Listener {
	if v, ok := reserved.LoadAndDelete(port); ok {
		return v.(net.Listener)
	}
	return nil
}

// Agent starts an agent and waits until every listener has a ready pool link.
func Agent(t testing.TB, cfg *config.Config, opts agent.Options) *agent.Agent {
	t.Helper()
	if opts.TickInterval == 0 {
		opts.TickInterval = 200 * time.Millisecond
	}
	if opts.Socket == nil {
		opts.Socket = Socket
	}
	a, err := agent.New(cfg, Logger(t), opts)
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(a.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := a.WaitReady(ctx, 1); err != nil {
		t.Fatalf("agent never got a ready pool link: %v", err)
	}
	return a
}

// Addr is the first listener's address.
func Addr(a *agent.Agent) string { return a.Listeners()[0].Addr().String() }

// Miners starts simulated miners against target.
func Miners(t testing.TB, cfg minersim.Config) *minersim.Sim {
	t.Helper()
	if cfg.User == "" {
		cfg.User = "john"
	}
	if cfg.Logger == nil {
		cfg.Logger = Logger(t)
	}
	s, err := minersim.Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start miners: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

// Ctx is a context bounded by Timeout.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// SyncBuffer is a goroutine-safe log sink for tests that read what the agent logged.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
