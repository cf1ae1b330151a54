package upstream

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/plugins"
	"github.com/sirupsen/logrus"
)

const toyWait = 30 * time.Second

// toyPool is the pool side of the toy-line protocol: it sends one job,
// takes shares, accepts the first and rejects the rest with code 23, and
// reports each share line it read.
type toyPool struct {
	ln     net.Listener
	shares chan []string
	users  chan string
	conn   chan net.Conn
}

func startToyPool(t *testing.T) *toyPool {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &toyPool{ln: ln, shares: make(chan []string, 16), users: make(chan string, 4), conn: make(chan net.Conn, 4)}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conn <- c
			go p.serve(c)
		}
	}()
	return p
}

func (p *toyPool) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	n := 0
	for {
		s, err := br.ReadString('\n')
		if err != nil {
			return
		}
		w := strings.Fields(s)
		switch {
		case len(w) == 2 && w[0] == "hello":
			p.users <- w[1]
			fmt.Fprintf(c, "welcome f000000f 512\nwork 77 %s 01000000 ffffffff 20000000 1d00ffff 6b07071e 1\n", strings.Repeat("ab", 32))
		case len(w) == 7 && w[0] == "share":
			p.shares <- w
			if n++; n == 1 {
				fmt.Fprintf(c, "ok %s\n", w[1])
			} else {
				fmt.Fprintf(c, "no %s 23\n", w[1])
			}
		}
	}
}

// toyMiner is a miner as the slot sees it.
type toyMiner struct {
	told    chan any
	answers chan codec.Status
}

func (m *toyMiner) Tell(v any) { m.told <- v }

func (m *toyMiner) AnswerShare(_ []byte, st codec.Status, _ string) { m.answers <- st }

func recv[T any](t *testing.T, ch <-chan any) T {
	t.Helper()
	deadline := time.After(toyWait)
	for {
		select {
		case v := <-ch:
			if m, ok := v.(T); ok {
				return m
			}
		case <-deadline:
			var zero T
			t.Fatalf("no %T arrived", zero)
			return zero
		}
	}
}

// Adding an upstream protocol is one file and its name: the toy-line
// protocol of proto_toy_test.go is known to the configuration, and a slot
// serves a miner with it — handshake, job, share out, verdicts back, and the
// loss of the link reported with the miner to place again — with no other
// change to the package.
func TestToyProtocol(t *testing.T) {
	if !config.KnownProtocol(toyName) {
		t.Fatalf("config does not know the registered protocol %q (known: %v)", toyName, config.Protocols())
	}
	pool := startToyPool(t)
	addr := pool.ln.Addr().(*net.TCPAddr)

	sys := actor.NewActorSystem()
	t.Cleanup(sys.Shutdown)
	coord := make(chan any, 64)
	cpid := sys.Root.Spawn(actor.PropsFromFunc(func(c actor.Context) { coord <- c.Message() }))
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	env := &Env{
		Slot: 0, Listener: "toy", UserAgent: "btccom-agent/3", FlushInterval: 10 * time.Millisecond,
		Route:       msg.Route{Name: "r", PoolUser: "farm", Pools: []msg.PoolAddr{{Host: "127.0.0.1", Port: addr.Port, Protocol: toyName}}},
		DialTimeout: 5 * time.Second, HandshakeTimeout: 5 * time.Second, DeadAfter: time.Minute,
		ReconnectMin: time.Hour, ReconnectMax: time.Hour,
		Coordinator: cpid, Chain: plugins.NewChain(log), Stats: stats.NewListener("toy", 1),
		Gens: new(atomic.Uint64), Log: log, Root: sys.Root,
	}
	slot := sys.Root.Spawn(actor.PropsFromProducer(New(env)))

	if u := <-pool.users; u != "farm" {
		t.Fatalf("pool saw user %q, want the pool user", u)
	}
	ready := recv[*wire.UpstreamReady](t, coord)
	if ready.Protocol != toyName || ready.Pool != pool.ln.Addr().String() {
		t.Fatalf("ready %+v", ready)
	}

	m := &toyMiner{told: make(chan any, 64), answers: make(chan codec.Status, 4)}
	sys.Root.Send(slot, &wire.Attach{Miner: m, SessionID: 0x0102, Worker: "rig7", UserAgent: "cgminer/4"})
	at := recv[*wire.Attached](t, m.told)
	if d := recv[*wire.DifficultySet](t, m.told); d.Difficulty != 512 {
		t.Fatalf("difficulty %v, want the pool's 512", d.Difficulty)
	}
	job := recv[*wire.JobNotified](t, m.told).Job
	if job.PoolID != "77" || job.Gen != at.Gen || !strings.Contains(string(job.Line), `"01000000f000000f"`) {
		t.Fatalf("job %+v line %s", job, job.Line)
	}

	for i, want := range []codec.Status{codec.StatusAccept, codec.StatusLowDifficulty} {
		sh := codec.Share{SessionID: 0x0102, JobID: job.ShortID, ExtraNonce2: 0xa0b0c0d0 + uint32(i), NTime: 0x6b07071e, Nonce: 0x1234}
		sys.Root.Send(slot, &wire.Submit{Gen: at.Gen, Share: sh, Pending: wire.Pending{Miner: m, Diff: 512}})
		var w []string
		select {
		case w = <-pool.shares:
		case <-time.After(toyWait):
			t.Fatal("the share never reached the pool")
		}
		wantEN2 := "00000102" + strconv.FormatUint(uint64(0xa0b0c0d0+i), 16)
		if w[2] != "77" || w[3] != "rig7" || w[4] != wantEN2 || w[5] != "6b07071e" || w[6] != "00001234" {
			t.Fatalf("pool read share %q, want job 77, worker rig7, en2 %s", w, wantEN2)
		}
		select {
		case got := <-m.answers:
			if got != want {
				t.Fatalf("share %d answered %d, want %d", i, got, want)
			}
		case <-time.After(toyWait):
			t.Fatalf("share %d never answered", i)
		}
	}
	var r int64
	for _, n := range env.Stats.RejectCounts() {
		r += n
	}
	if a := env.Stats.Accepted.Load(); a != 1 || r != 1 {
		t.Fatalf("stats accepted %d rejected %d, want 1 and 1", a, r)
	}

	// The pool goes away: the slot reports the loss with its miner.
	(<-pool.conn).Close()
	lost := recv[*wire.UpstreamLost](t, coord)
	if len(lost.Miners) != 1 || lost.Miners[0] != 0x0102 {
		t.Fatalf("lost %+v, want miner 0102 to place again", lost)
	}
}
