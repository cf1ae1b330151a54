package upstream_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/sirupsen/logrus"
)

// scriptPool is a pool that answers any handshake (agent or plain Stratum)
// and then sends exactly the lines a test gives it: the way to produce jobs
// no real pool simulator would send.
type scriptPool struct {
	ln       net.Listener
	accepted atomic.Int32
	first    []string // sent right after the authorize reply
	mu       sync.Mutex
	conns    []net.Conn
	ready    chan net.Conn // each connection once its authorize is answered
}

func startScriptPool(t *testing.T, first ...string) *scriptPool {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &scriptPool{ln: ln, first: first, ready: make(chan net.Conn, 16)}
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go p.serve(c)
		}
	}()
	return p
}

func (p *scriptPool) serve(c net.Conn) {
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil || req.Method == "" {
			continue
		}
		var out string
		switch req.Method {
		case codec.MethodSubscribe:
			out = fmt.Sprintf(`{"id":%s,"result":[[["mining.notify","1"]],"01000001",8],"error":null}`+"\n", req.ID)
		case codec.MethodConfigure:
			out = fmt.Sprintf(`{"id":%s,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"error":null}`+"\n", req.ID)
		case codec.MethodAuthorize:
			out = fmt.Sprintf(`{"id":%s,"result":true,"error":null}`+"\n", req.ID) +
				`{"id":null,"method":"mining.set_difficulty","params":[1]}` + "\n" + strings.Join(p.first, "")
		default:
			out = fmt.Sprintf(`{"id":%s,"result":true,"error":null}`+"\n", req.ID)
		}
		if _, err := io.WriteString(c, out); err != nil {
			return
		}
		if req.Method == codec.MethodAuthorize {
			p.ready <- c
		}
	}
}

func (p *scriptPool) addr() string { return p.ln.Addr().String() }

// notifyLine is a well-formed mining.notify with this job id and these
// merkle branches.
func notifyLine(id string, branches ...string) string {
	n := codec.Notify{
		JobID: id, PrevHash: strings.Repeat("11", 32), Coinb1: "01000000", Coinb2: "ffffffff",
		Branches: branches, Version: "20000000", NBits: "1d00ffff", NTime: "5f5e1000", Clean: true,
	}
	if n.Branches == nil {
		n.Branches = []string{}
	}
	return string(n.AppendLine(nil, "", true))
}

// badNotify has an empty merkle branch: ParseNotify refuses it.
var badNotify = notifyLine("1", "")

// startQuiet starts an agent with a short handshake timeout and dead_after
// and waits (briefly) for its first ready link.
func startQuiet(t *testing.T, cfg *config.Config) (*agent.Agent, *logRec, error) {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	log.SetLevel(logrus.InfoLevel)
	rec := &logRec{}
	log.AddHook(rec)
	t.Cleanup(func() {
		if t.Failed() {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, l := range rec.lines {
				t.Log("agent: " + l)
			}
		}
	})
	a, err := agent.New(cfg, log, agent.Options{TickInterval: 200 * time.Millisecond, Socket: testenv.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return a, rec, a.WaitReady(ctx, 1)
}

func (r *logRec) count(part string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.Contains(l, part) {
			n++
		}
	}
	return n
}

// A malformed first job is skipped, not fatal: the link comes up on the
// valid job that follows, on the first connection, in both protocols.
func TestMalformedFirstJobIsSkipped(t *testing.T) {
	for _, proto := range []string{config.ProtocolAgent, config.ProtocolStratum} {
		t.Run(proto, func(t *testing.T) {
			pool := startScriptPool(t, badNotify, badNotify, notifyLine("2", strings.Repeat("ab", 32)))
			cfg := withProtocols(testenv.Config(t, "farm", pool.addr()), proto)
			cfg.Listen[0].Connections = 1
			_, logs, err := startQuiet(t, cfg)
			if err != nil {
				t.Fatalf("no ready link: %v", err)
			}
			if n := pool.accepted.Load(); n != 1 || logs.count("pool link failed") != 0 {
				t.Fatalf("%d connections, %d link failures", n, logs.count("pool link failed"))
			}
			logs.waitFor(t, "malformed job from pool", "merkle branch 0")
		})
	}
}

// Only malformed jobs during the handshake: the link fails once the
// handshake timeout passes, and says why.
func TestOnlyMalformedFirstJobsFailTheHandshake(t *testing.T) {
	pool := startScriptPool(t, badNotify)
	cfg := testenv.Config(t, "farm", pool.addr())
	cfg.Listen[0].Connections = 1
	cfg.Upstream.HandshakeTimeout = 300 * time.Millisecond
	_, logs, err := startQuiet(t, cfg)
	if err == nil {
		t.Fatal("a link came up without a valid job")
	}
	logs.waitFor(t, "pool link failed", "no valid job arrived in time", "1 malformed")
}

// After the handshake a malformed job is logged (once a minute, however
// many arrive) and skipped; the next valid job reaches the miners and the
// link stays up. A link whose pool sends only malformed jobs is dropped
// after dead_after, though it is not silent.
func TestMalformedJobKeepsTheLink(t *testing.T) {
	pool := startScriptPool(t, notifyLine("1"))
	cfg := testenv.Config(t, "farm", pool.addr())
	cfg.Listen[0].Connections = 1
	cfg.Upstream.DeadAfter = 2 * time.Second
	a, logs, err := startQuiet(t, cfg)
	if err != nil {
		t.Fatalf("no ready link: %v", err)
	}
	pc := <-pool.ready
	m := dialMiner(t, testenv.Addr(a))
	m.waitJob(t, ".1")
	for range 5 {
		if _, err := io.WriteString(pc, badNotify); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := io.WriteString(pc, notifyLine("2", strings.Repeat("cd", 32))); err != nil {
		t.Fatal(err)
	}
	m.waitJob(t, ".2")
	if n := logs.count("malformed job from pool"); n != 1 || pool.accepted.Load() != 1 || logs.count("pool link lost") != 0 {
		t.Fatalf("%d malformed-job warnings, %d connections, %d losses", n, pool.accepted.Load(), logs.count("pool link lost"))
	}

	// Malformed jobs every 100ms, nothing valid: dropped after dead_after.
	t0 := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if _, err := io.WriteString(pc, badNotify); err != nil {
					return
				}
			}
		}
	}()
	logs.waitFor(t, "pool link lost", "no valid job from the pool for 2s")
	if took := time.Since(t0); took > 2*cfg.Upstream.DeadAfter {
		t.Fatalf("link dropped after %v", took)
	}
}

// rawMiner is a Stratum miner reduced to what these tests watch: jobs.
type rawMiner struct {
	c  net.Conn
	sc *bufio.Scanner
}

func dialMiner(t *testing.T, addr string) *rawMiner {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(wait))
	_, err = io.WriteString(c, `{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}`+"\n"+
		`{"id":2,"method":"mining.authorize","params":["w1","x"]}`+"\n")
	if err != nil {
		t.Fatal(err)
	}
	return &rawMiner{c: c, sc: bufio.NewScanner(c)}
}

// waitJob reads until a mining.notify whose job id ends in suffix.
func (m *rawMiner) waitJob(t *testing.T, suffix string) {
	t.Helper()
	for m.sc.Scan() {
		var rq codec.Request
		if codec.ScanRequest(m.sc.Bytes(), &rq) != nil || string(rq.Method) != codec.MethodNotify {
			continue
		}
		if id, _ := rq.Param(0).String(); strings.HasSuffix(id, suffix) {
			return
		}
	}
	t.Fatalf("no job %q: %v", suffix, m.sc.Err())
}
