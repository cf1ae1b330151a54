package poolsim

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// BenchmarkAgentSharesStructural measures the pool's cost per binary share
// with subres verdicts: the path a 20,000-worker agent benchmark drives.
func BenchmarkAgentSharesStructural(b *testing.B) {
	p, err := Start(Config{Listen: "127.0.0.1:0", Validate: ValidateStructural, NotifyInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	nc := connectAgentB(b, p)
	write := func(buf []byte) {
		if _, err := nc.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	const sessions = 1000
	var reg []byte
	for i := range sessions {
		reg = codec.AppendRegisterWorker(reg, uint16(i), "cgminer/4.11.1", fmt.Sprintf("w%04d", i))
	}
	write(reg)
	n := p.CurrentJob()
	id, _ := codec.ParseJobID([]byte(n.JobID))
	// Verdicts are drained in the background; the pool must not block on them.
	go io.Copy(io.Discard, nc)
	b.ResetTimer()
	var batch []byte
	for i := 0; i < b.N; i++ {
		batch = codec.AppendSubmitShare(batch, &codec.Share{JobID: id, SessionID: uint16(i % sessions), ExtraNonce2: uint32(i), Nonce: uint32(i), NTime: n.NTimeValue(), HasTime: true})
		if len(batch) > 16<<10 || i == b.N-1 {
			write(batch)
			batch = batch[:0]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitFor(ctx, func(s *Stats) bool { return s.Totals.Accepted+s.Totals.Rejected[22] == uint64(b.N) }); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFanout measures publishing one job to many plain miners (one
// writev each), from the stamp to the last write.
func BenchmarkFanout(b *testing.B) {
	const miners = 2000
	p, err := Start(Config{Listen: "127.0.0.1:0", Validate: ValidateStructural, NotifyInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for i := range miners {
		nc, err := net.Dial("tcp", p.Addr())
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		fmt.Fprintf(nc, `{"id":1,"method":"mining.subscribe","params":["cpu"]}`+"\n"+`{"id":2,"method":"mining.authorize","params":["demo.m%d",""]}`+"\n", i)
		go io.Copy(io.Discard, nc)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.WaitFor(ctx, func(s *Stats) bool { return s.Totals.RegisteredWorkers == miners }); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.NewJob(i%10 == 0)
	}
}

// connectAgentB opens an authorized agent link with subres on and reads
// the handshake replies.
func connectAgentB(b *testing.B, p *Pool) net.Conn {
	nc, err := net.Dial("tcp", p.Addr())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	fmt.Fprint(nc, `{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`+"\n"+
		`{"id":"auth","method":"mining.authorize","params":["demo",""]}`+"\n"+
		`{"id":"caps","method":"agent.get_capabilities","params":[["verrol","subres"]]}`+"\n")
	r := codec.NewReader(nc, 0, true)
	for range 5 {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
	return nc
}
