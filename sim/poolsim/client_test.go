package poolsim

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// ioTimeout bounds every read in the tests: a missing reply fails fast
// instead of hanging the suite.
const ioTimeout = 5 * time.Second

// startPool starts a pool on a loopback port 0 and closes it with the test.
// Periodic jobs are pushed out so that tests step jobs themselves.
func startPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.NotifyInterval == 0 {
		cfg.NotifyInterval = time.Hour
	}
	if cfg.Seed == 0 {
		cfg.Seed = 42
	}
	p, err := Start(cfg)
	if err != nil {
		t.Fatalf("start pool: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close pool: %v", err)
		}
	})
	return p
}

// waitFor is WaitFor with the test deadline.
func waitFor(t *testing.T, p *Pool, what string, cond func(*Stats) bool) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := p.WaitFor(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return p.Stats()
}

// item is one received chunk, copied out of the reader's buffer.
type item struct {
	line  string
	frame *codec.Frame
}

func (it item) String() string {
	if it.frame != nil {
		return fmt.Sprintf("frame %s % x", codec.CmdName(it.frame.Cmd), it.frame.Body)
	}
	return "line " + it.line
}

// client speaks either side of the wire by hand: lines and frames are
// written verbatim, replies read one chunk at a time.
type client struct {
	t  *testing.T
	nc net.Conn
	r  *codec.Reader
}

func dial(t *testing.T, p *Pool) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
	if err != nil {
		t.Fatalf("dial pool: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &client{t: t, nc: nc, r: codec.NewReader(nc, 0, true)}
}

func (c *client) write(b []byte) {
	c.t.Helper()
	if err := c.nc.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(lines ...string) {
	c.t.Helper()
	c.write([]byte(strings.Join(lines, "\n") + "\n"))
}

func (c *client) next() (item, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
		return item{}, err
	}
	ch, err := c.r.Next()
	if err != nil {
		return item{}, err
	}
	if ch.IsFrame {
		f := codec.Frame{Cmd: ch.Frame.Cmd, Body: append([]byte(nil), ch.Frame.Body...)}
		return item{frame: &f}, nil
	}
	return item{line: string(ch.Line)}, nil
}

func (c *client) line() string {
	c.t.Helper()
	it, err := c.next()
	if err != nil {
		c.t.Fatalf("reading a line: %v", err)
	}
	if it.frame != nil {
		c.t.Fatalf("want a line, got %v", it)
	}
	return it.line
}

func (c *client) frame() codec.Frame {
	c.t.Helper()
	it, err := c.next()
	if err != nil {
		c.t.Fatalf("reading a frame: %v", err)
	}
	if it.frame == nil {
		c.t.Fatalf("want a frame, got %v", it)
	}
	return *it.frame
}

// expect reads one line and compares it byte for byte.
func (c *client) expect(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("line mismatch\n got %s\nwant %s", got, want)
	}
}

// expectEOF asserts that the pool closed the connection.
func (c *client) expectEOF() {
	c.t.Helper()
	it, err := c.next()
	if err == nil {
		c.t.Fatalf("want the connection closed, got %v", it)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("want the connection closed, read timed out")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "reset") {
		c.t.Fatalf("want EOF, got %v", err)
	}
}

// ping is a barrier: get_capabilities without "subres" changes nothing, and
// since the pool answers in order, everything it sent for earlier input
// arrives before the reply. It returns what came before the reply.
func (c *client) ping(id string) []item {
	c.t.Helper()
	c.send(`{"id":"` + id + `","method":"agent.get_capabilities","params":[["verrol"]]}`)
	want := `{"id":"` + id + `","result":{"capabilities":["verrol","subres"]}}`
	var before []item
	for {
		it, err := c.next()
		if err != nil {
			c.t.Fatalf("waiting for ping %s: %v", id, err)
		}
		if it.frame == nil && strings.HasPrefix(it.line, `{"id":"`+id+`"`) {
			if it.line != want {
				c.t.Fatalf("ping reply %s", it.line)
			}
			return before
		}
		before = append(before, it)
	}
}

// verdict reads one SUBMIT_RESPONSE.
func (c *client) verdict() (uint16, codec.Status) {
	c.t.Helper()
	f := c.frame()
	if f.Cmd != codec.CmdSubmitResponse {
		c.t.Fatalf("want SUBMIT_RESPONSE, got %s", codec.CmdName(f.Cmd))
	}
	idx, st, err := codec.DecodeSubmitResponse(f)
	if err != nil {
		c.t.Fatal(err)
	}
	return idx, st
}

// expectVerdict reads one verdict and checks index and status.
func (c *client) expectVerdict(idx uint16, st codec.Status) {
	c.t.Helper()
	gotIdx, gotSt := c.verdict()
	if gotIdx != idx || gotSt != st {
		c.t.Fatalf("verdict: got index %d status %d (%s), want index %d status %d (%s)",
			gotIdx, gotSt, gotSt.Text(), idx, st, st.Text())
	}
}

// notifyLine renders a job the way sserver does, written out here
// independently of codec so that the comparison means something.
func notifyLine(n *codec.Notify, clean bool) string {
	br := make([]string, len(n.Branches))
	for i, b := range n.Branches {
		br[i] = `"` + b + `"`
	}
	return fmt.Sprintf(`{"id":null,"method":"mining.notify","params":["%s","%s","%s","%s",[%s],"%s","%s","%s",%t]}`,
		n.JobID, n.PrevHash, n.Coinb1, n.Coinb2, strings.Join(br, ","), n.Version, n.NBits, n.NTime, clean)
}

// subscribeEN1 pulls EN1 out of a subscribe reply.
func subscribeEN1(t *testing.T, line string) string {
	t.Helper()
	const key = `"mining.notify","`
	i := strings.Index(line, key)
	if i < 0 || len(line) < i+len(key)+8 {
		t.Fatalf("no EN1 in subscribe reply %s", line)
	}
	return line[i+len(key) : i+len(key)+8]
}

// agentLink is a handshaken agent connection (Go style, subres on).
type agentLink struct {
	*client
	en1 string
}

func (a *agentLink) en1Bytes() []byte {
	b, err := hex.DecodeString(a.en1)
	if err != nil {
		panic(err)
	}
	return b
}

// connectAgent performs the Go agent's handshake (docs/PROTOCOL.md §3.4) and reads every
// reply, so the link is quiet afterwards.
func connectAgent(t *testing.T, p *Pool, user string, subres bool) *agentLink {
	t.Helper()
	c := dial(t, p)
	caps := `[["verrol"]]`
	if subres {
		caps = `[["verrol","subres"]]`
	}
	c.send(`{"id":"conn_test","method":"agent.get_capabilities","params":` + caps + `}`)
	c.line()
	c.send(
		`{"id":"caps","method":"agent.get_capabilities","params":`+caps+`}`,
		`{"id":"conf","method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff","version-rolling.min-bit-count":0}]}`,
		`{"id":"sub","method":"mining.subscribe","params":["btccom-agent/2.0.0-mu"]}`,
		`{"id":"auth","method":"mining.authorize","params":["`+user+`",""]}`,
		`{"id":"caps_again","method":"agent.get_capabilities","params":`+caps+`}`,
	)
	c.line() // caps
	c.line() // conf
	c.line() // set_version_mask
	en1 := subscribeEN1(t, c.line())
	if got := c.line(); got != `{"id":"auth","result":true,"error":null}` {
		t.Fatalf("authorize reply %s", got)
	}
	c.line() // set_difficulty
	c.line() // notify
	c.line() // caps_again
	return &agentLink{client: c, en1: en1}
}

func (a *agentLink) register(sid uint16, worker string) {
	a.t.Helper()
	a.write(codec.AppendRegisterWorker(nil, sid, "bmminer/2.1.0", worker))
}

func (a *agentLink) submit(s codec.Share) {
	a.t.Helper()
	a.write(codec.AppendSubmitShare(nil, &s))
}

// jobID is the current job's short id as the binary submit carries it.
func jobID(t *testing.T, n *codec.Notify) uint8 {
	t.Helper()
	id, ok := codec.ParseJobID([]byte(n.JobID))
	if !ok {
		t.Fatalf("job id %q is not a short id", n.JobID)
	}
	return id
}

// poolEN2 is the pool-side EN2 of an agent share (docs/PROTOCOL.md §4.1).
func poolEN2(sid uint16, en2 uint32) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(sid)<<32|uint64(en2))
	return b
}

// mine grinds nonces from start until the header meets diff and returns
// the nonce. Only the nonce changes, so the merkle root is computed once.
func mine(t *testing.T, n *codec.Notify, en1, en2 []byte, diff float64, start uint32) uint32 {
	t.Helper()
	hj, err := codec.NewHashJob(n, "")
	if err != nil {
		t.Fatal(err)
	}
	tgt := codec.TargetFromDifficulty(diff)
	hdr := hj.Header(en1, en2, hj.Version, hj.NTime, 0)
	for nonce := start; nonce < start+1<<27; nonce++ {
		binary.LittleEndian.PutUint32(hdr[76:], nonce)
		if tgt.Met(codec.DoubleSHA256(hdr[:])) {
			return nonce
		}
	}
	t.Fatalf("no share at difficulty %g in 2^27 nonces", diff)
	return 0
}
