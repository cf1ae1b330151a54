package upstream

import (
	"context"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
)

// An upstream protocol is one file of this package: a value that dials a
// pool (protocol) and the per-connection state it returns (linkProto). The
// slot actor holds links and miners and knows only these two interfaces;
// everything that depends on what goes over the wire is behind them. The
// built-in protocols are agent (proto_agent.go), stratum (proto_stratum.go),
// stratum-per-miner (proto_perminer.go), sv2 and sv2-per-miner
// (proto_sv2*.go); a test registers another
// (proto_fake_test.go) to keep this true. docs/ARCHITECTURE.md says how to
// add one.
type protocol interface {
	// dial connects to pool p, authenticates as user and runs the
	// handshake; it returns once the pool has given a first job. It runs on
	// a dial goroutine and may read only the slot's Env (see dialConn).
	dial(ctx context.Context, s *Slot, p msg.PoolAddr, user string) (*link, error)
}

// linkProto is a protocol's half of one established link. Its methods run
// in the slot actor, except read, the link's reader goroutine.
type linkProto interface {
	// read is the link's reader goroutine: it reads the pool until the
	// connection ends, posts what it read to the slot (Slot.post,
	// Slot.postLink) and, last, a linkDown. The JSON protocols share
	// Slot.readLoop.
	read(s *Slot, l *link)

	// start sets up the link's bookkeeping once it has a generation.
	start(s *Slot, l *link)
	// replay applies what arrived in the handshake after the first job.
	replay(s *Slot, l *link)
	// attach serves miner a on main link l: at once (register, then
	// s.welcome) or later (s.refuseMiner when it cannot).
	attach(s *Slot, l *link, sid uint16, a *attached)
	// leave takes miner sid off main link l.
	leave(s *Slot, l *link, sid uint16)
	// keeps reports whether a miner of main link l may stay on the link it
	// is on (its own connection to l's pool) when l comes up or goes down.
	keeps(l *link, a *attached) bool
	// job turns a pool job into the job miners get; nil skips it.
	job(s *Slot, l *link, n *codec.Notify, at time.Time) *msg.Job
	// submit frames a share that came as a message.
	submit(s *Slot, l *link, m *wire.Submit)
	// flush writes what the link holds now.
	flush(l *link)
	// pending counts shares still waiting for a verdict.
	pending() int
	// failAll answers every unconfirmed share with text: nothing is ever
	// answered true unless it reached the pool.
	failAll(s *Slot, text string)
	// handle applies an event the protocol's reader posted with postLink.
	handle(s *Slot, l *link, ev any)
	// reconnect replaces l's connection when the pool asks for it; false
	// leaves it to the slot (a main link: dial the same pool again).
	reconnect(s *Slot, l *link) bool
	// welcome fills in what a miner joining l needs besides jobs.
	welcome(l *link, at *wire.Attached)
	// describe adds the link's handshake facts to its "ready" log line.
	describe(f map[string]any)
	// stop releases what start set up (the link is closing).
	stop(s *Slot)
}

// jsonProto is what the shared reader of the JSON protocols (readLoop)
// needs of a protocol besides what it handles itself. Its methods run on
// the reader goroutine.
type jsonProto interface {
	// checkJob validates a mining.notify.
	checkJob(rq *codec.Request) (*codec.Notify, error)
	// frame handles a binary frame from the pool.
	frame(s *Slot, l *link, f codec.Frame)
	// reply handles the pool's answer to one of our requests after the
	// handshake.
	reply(s *Slot, l *link, rq *codec.Request)
	// request handles a pool request other than mining.notify and
	// mining.set_version_mask; line is the raw JSON for logs.
	request(s *Slot, l *link, rq *codec.Request, line []byte)
}
