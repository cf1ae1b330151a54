package upstream

import (
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/actors/miner"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/plugins"
	_ "github.com/btcagent/btcagent/plugins/sharecheck" // the default config enables it
	"github.com/sirupsen/logrus"
)

// discardConn is a miner socket that takes every reply.
type discardConn struct{ n atomic.Int64 }

func (c *discardConn) Write(b []byte) error   { c.n.Add(int64(len(b))); return nil }
func (c *discardConn) Close() error           { return nil }
func (c *discardConn) CloseAfter([]byte)      {}
func (c *discardConn) Remote() netip.AddrPort { return netip.MustParseAddrPort("127.0.0.1:4028") }

type nopLimiter struct{}

func (nopLimiter) Warn(string, logrus.Fields, string) {}

// sharePath is one miner session attached to one agent link whose socket is
// a real loopback TCP connection drained by a reader: everything the share
// path does in production except the event loop's own read.
type sharePath struct {
	s      *miner.Session
	sink   *agentSink
	conn   *discardConn
	poolIn atomic.Int64 // bytes the "pool" read
	st     *stats.Listener
	line   []byte
}

func newSharePath(t testing.TB, chain *plugins.Chain) *sharePath {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	_ = ln.Close()
	p := &sharePath{conn: &discardConn{}, st: stats.NewListener("t", 3333)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(io.Discard, server)
		p.poolIn.Add(n)
	}()
	t.Cleanup(func() { _ = client.Close(); _ = server.Close(); wg.Wait() })

	l := &link{conn: client, gen: 1, protocol: "agent"}
	l.startWriter(time.Second, func(n int) { p.st.BytesUp.Add(int64(n)) })
	p.sink = newAgentSink(l, false, 20*time.Millisecond, p.st, false)

	sys := actor.NewActorSystem()
	sink := sys.Root.Spawn(actor.PropsFromFunc(func(actor.Context) {}))
	env := &miner.Env{Listener: "t", Port: 3333, PoolUser: "farm", Root: sys.Root, Coordinator: sink, Chain: chain,
		Stats: p.st, Log: logrus.NewEntry(logrus.New()), Limiter: nopLimiter{}}
	const sid = 0x0102
	p.s = miner.New(env, sid, &stats.Miner{SessionID: sid})
	p.s.Tell(&miner.Start{Conn: p.conn})
	p.s.Tell(&miner.Data{B: []byte(`{"id":1,"method":"mining.subscribe","params":["cgminer/4.12"]}` + "\n" +
		`{"id":2,"method":"mining.authorize","params":["john.a001","x"]}` + "\n")})
	p.sink.register(sid, "cgminer/4.12", "a001")
	n := &codec.Notify{JobID: "7", PrevHash: strings.Repeat("ab", 32), Coinb1: "0100", Coinb2: "ffff",
		Version: "20000000", NBits: "1d00ffff", NTime: "6b07071e", Clean: true}
	job := minerJob(1, 7, n, time.Now(), "01000a2b", true)
	hj, err := codec.NewHashJob(n, "01000a2b")
	if err != nil {
		t.Fatal(err)
	}
	job.Hash = hj
	p.s.Tell(&wire.Attached{Upstream: sink, Gen: 1, Pool: "test", Sink: p.sink})
	p.s.Tell(&wire.DifficultySet{Difficulty: 1e-12}) // every hash passes share-check's difficulty test
	p.s.Tell(&wire.JobNotified{Job: job, Clean: true})
	p.sink.Flush(time.Now()) // the REGISTER frame
	p.line = make([]byte, 0, 256)
	return p
}

// submit delivers the i-th share's line as the event loop would.
func (p *sharePath) submit(i uint32) {
	p.line = append(p.line[:0], `{"id":`...)
	p.line = strconv.AppendUint(p.line, uint64(i%100000), 10)
	p.line = append(p.line, `,"method":"mining.submit","params":["john.a001","1.7","`...)
	p.line = codec.AppendHex32(p.line, i) // a fresh extranonce2 each time: never a duplicate
	p.line = append(p.line, `","6b07071e","00000001"]}`+"\n"...)
	p.s.OnData(nil, p.line)
}

func defaultChain(t testing.TB) *plugins.Chain {
	t.Helper()
	chain, err := plugins.Build([]config.PluginSpec{{Name: "share-check"}}, plugins.Env{Listener: "t", Port: 3333, PoolUser: "farm", Log: logrus.NewEntry(logrus.New())})
	if err != nil {
		t.Fatal(err)
	}
	return chain
}

// TestSharePathAllocatesNothing pins the share path's allocation count: a
// miner's submit line, share-check, the frame into the link's buffer, the
// flush to the pool socket and the answer to the miner.
func TestSharePathAllocatesNothing(t *testing.T) {
	for _, c := range []struct {
		name  string
		chain func(testing.TB) *plugins.Chain
	}{{"no plugins", func(testing.TB) *plugins.Chain { return nil }}, {"share-check", defaultChain}} {
		t.Run(c.name, func(t *testing.T) {
			p := newSharePath(t, c.chain(t))
			i := uint32(0)
			for ; i < 2000; i++ { // warm up: pools, buffers and share-check's sets reach their size
				p.submit(i)
				if i%16 == 0 {
					p.sink.Flush(time.Now())
				}
			}
			allocs := testing.AllocsPerRun(2000, func() {
				p.submit(i)
				if i%16 == 0 {
					p.sink.Flush(time.Now())
				}
				i++
			})
			p.sink.Flush(time.Now())
			if allocs != 0 && !raceEnabled { // the race detector's sync.Pool drops objects on purpose
				t.Errorf("%.3f allocations per share; the share path must not allocate", allocs)
			}
			if got := p.st.Accepted.Load(); got < 4000 {
				t.Errorf("%d shares answered true, want every one of %d", got, i)
			}
			if p.st.SharesSent.Load() != int64(i) {
				t.Errorf("%d shares framed, want %d", p.st.SharesSent.Load(), i)
			}
		})
	}
}

// BenchmarkSharePath is the share path's cost on one goroutine (see
// TestSharePathAllocatesNothing for what it covers).
func BenchmarkSharePath(b *testing.B) {
	p := newSharePath(b, defaultChain(b))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.submit(uint32(i))
		if i%16 == 0 {
			p.sink.Flush(time.Now())
		}
	}
}

// TestBlockCandidateIsDueAtOnce: an urgent share makes the sink due now,
// not at the end of the window, so the loop writes it in the same pass.
func TestBlockCandidateIsDueAtOnce(t *testing.T) {
	p := newSharePath(t, nil)
	sh := codec.Share{JobID: 7, SessionID: 0x0102, Nonce: 1}
	pend := wire.Pending{}
	before := time.Now().UnixNano()
	if st := p.sink.Submit(sh, pend, false); st != 0 {
		t.Fatalf("submit refused: %v", st)
	}
	if d := p.sink.Due(); d < before+int64(15*time.Millisecond) {
		t.Fatalf("an ordinary share is due in %v, want the 20 ms window", time.Duration(d-before))
	}
	p.sink.Flush(time.Now().Add(time.Second))
	before = time.Now().UnixNano()
	if st := p.sink.Submit(sh, pend, true); st != 0 {
		t.Fatalf("submit refused: %v", st)
	}
	if d := p.sink.Due(); d == 0 || d > time.Now().UnixNano() || d < before {
		t.Fatalf("a block candidate is due at %d, want now (%d)", d, before)
	}
}
