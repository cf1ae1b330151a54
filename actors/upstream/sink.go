package upstream

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/actors/netio"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
)

// FlushLoop is the event loop that brings sinks due (netio.Engine). Without
// one (unit tests of this package), a sink arms a timer per window.
type FlushLoop interface {
	AddFlusher(netio.Flusher)
	RemoveFlusher(netio.Flusher)
}

// agentSink is the hot half of an agent link (wire.Sink): frames, the
// shares waiting for an answer, and the miners registered at the pool,
// under one mutex. Miner sessions append shares to it on the goroutine that
// read them; the event loop flushes it when its window closes; the reader
// goroutine hands it verdicts. The slot actor keeps the cold half (jobs,
// membership decisions, failover) and goes through the same methods.
type agentSink struct {
	gen      uint64
	interval time.Duration
	subres   bool
	st       *stats.Listener
	l        *link
	timer    bool // no loop: arm a timer per window

	fmu sync.Mutex // one flush at a time, so writes keep the frames' order
	due atomic.Int64

	mu       sync.Mutex
	out      []byte
	spare    []byte
	answers  []wire.Pending // optimistic mode: answered once written
	ansSpare []wire.Pending
	verdicts map[uint16]wire.Pending // subres mode: by submit index
	index    uint16
	members  map[uint16]struct{} // registered at the pool on this link
	closed   bool
	armed    bool // timer mode
}

func newAgentSink(l *link, subres bool, interval time.Duration, st *stats.Listener, timer bool) *agentSink {
	k := &agentSink{gen: l.gen, interval: interval, subres: subres, st: st, l: l, timer: timer,
		members: map[uint16]struct{}{}, out: make([]byte, 0, 1024), spare: make([]byte, 0, 1024)}
	if k.subres {
		k.verdicts = map[uint16]wire.Pending{}
	}
	return k
}

// Gen implements wire.Sink.
func (k *agentSink) Gen() uint64 { return k.gen }

// Submit implements wire.Sink.
func (k *agentSink) Submit(sh codec.Share, p wire.Pending, urgent bool) codec.Status {
	k.mu.Lock()
	if _, ok := k.members[sh.SessionID]; !ok || k.closed {
		// Never write a share the pool would drop without a verdict: that
		// would shift every later SUBMIT_RESPONSE onto the wrong miner
		// (docs/PROTOCOL.md §9.3).
		k.mu.Unlock()
		return codec.StatusJobNotFoundOrStale
	}
	k.out = codec.AppendSubmitShare(k.out, &sh)
	if k.subres {
		k.verdicts[k.index] = p
		k.index++
	} else {
		k.answers = append(k.answers, p)
	}
	k.armLocked(urgent)
	k.mu.Unlock()
	k.st.SharesSent.Add(1)
	return 0
}

// register puts a miner on the link (REGISTER frame) and reports whether it
// was new.
func (k *agentSink) register(sid uint16, agent, worker string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.members[sid] = struct{}{}
	k.out = codec.AppendRegisterWorker(k.out, sid, agent, worker)
	k.armLocked(false)
}

// unregister takes a miner off the link (UNREGISTER frame).
func (k *agentSink) unregister(sid uint16) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if _, ok := k.members[sid]; !ok || k.closed {
		return
	}
	delete(k.members, sid)
	k.out = codec.AppendUnregisterWorker(k.out, sid)
	k.armLocked(false)
}

func (k *agentSink) armLocked(urgent bool) {
	// Only the first share of a window reads the clock.
	switch {
	case urgent || k.interval <= 0:
		k.due.Store(time.Now().UnixNano())
	case k.due.Load() == 0:
		k.due.Store(time.Now().Add(k.interval).UnixNano())
	}
	if k.timer && !k.armed {
		k.armed = true
		d := k.interval
		if urgent || d <= 0 {
			d = 0
		}
		time.AfterFunc(d, func() {
			k.mu.Lock()
			k.armed = false
			k.mu.Unlock()
			k.Flush(time.Now())
		})
	}
}

// Due implements netio.Flusher.
func (k *agentSink) Due() int64 { return k.due.Load() }

// Flush implements netio.Flusher: one write for the window's frames, then
// the optimistic answers (a share is answered true only once it is handed
// to the socket). It runs on the event loop, or on the slot's goroutine
// when the slot needs the buffer out now (a new link, a retirement).
func (k *agentSink) Flush(now time.Time) {
	k.fmu.Lock()
	defer k.fmu.Unlock()
	k.mu.Lock()
	if len(k.out) == 0 || k.closed {
		k.due.Store(0)
		k.mu.Unlock()
		return
	}
	if k.l.busy() {
		// The previous window is still being written (slow uplink): keep
		// coalescing, and look again after one more window.
		k.due.Store(now.Add(max(k.interval, time.Millisecond)).UnixNano())
		if k.timer && !k.armed {
			k.armed = true
			time.AfterFunc(max(k.interval, time.Millisecond), func() {
				k.mu.Lock()
				k.armed = false
				k.mu.Unlock()
				k.Flush(time.Now())
			})
		}
		k.mu.Unlock()
		return
	}
	buf, ans := k.out, k.answers
	k.out, k.answers = k.spare[:0], k.ansSpare[:0]
	k.spare, k.ansSpare = nil, nil
	k.due.Store(0)
	k.mu.Unlock()

	k.l.send(buf)
	for i := range ans {
		answerPending(k.st, &ans[i], codec.StatusAccept, "", false)
		ans[i] = wire.Pending{}
	}

	// A burst — a whole farm registering again after a pool restart — must
	// not pin its buffers for the life of the link.
	if cap(buf) > keepCap {
		buf = make([]byte, 0, 1024)
	}
	if cap(ans) > keepCap/16 {
		ans = nil
	}
	k.mu.Lock()
	k.spare, k.ansSpare = buf[:0], ans[:0]
	k.mu.Unlock()
}

// keepCap is the largest frame buffer a sink keeps between windows: a
// window of shares is a few hundred bytes at farm rates.
const keepCap = 16 << 10

// verdict relays the pool's SUBMIT_RESPONSE for submit index idx (reader goroutine).
func (k *agentSink) verdict(idx uint16, status codec.Status) bool {
	k.mu.Lock()
	p, ok := k.verdicts[idx]
	delete(k.verdicts, idx)
	k.mu.Unlock()
	if ok {
		answerPending(k.st, &p, status, "", false)
	}
	return ok
}

// failAll closes the sink and answers every share it still holds as stale:
// nothing is ever answered true unless it reached the pool.
func (k *agentSink) failAll(text string) {
	k.fmu.Lock()
	defer k.fmu.Unlock()
	k.mu.Lock()
	k.closed = true
	ans, ver := k.answers, k.verdicts
	k.answers, k.verdicts, k.out = nil, nil, nil
	k.due.Store(0)
	k.mu.Unlock()
	for i := range ans {
		answerPending(k.st, &ans[i], codec.StatusJobNotFoundOrStale, text, true)
	}
	for _, p := range ver {
		answerPending(k.st, &p, codec.StatusJobNotFoundOrStale, text, true)
	}
}

// pending counts the shares still waiting for an answer.
func (k *agentSink) pending() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.answers) + len(k.verdicts)
}

// answerPending counts a share's verdict and relays it to the miner.
func answerPending(st *stats.Listener, p *wire.Pending, status codec.Status, text string, local bool) {
	if status.Accepted() {
		st.Accepted.Add(1)
		st.AcceptedDiff.Add(p.Diff)
		if p.Stats != nil {
			p.Stats.AddAccepted(p.Diff, time.Now())
		}
	} else {
		st.Reject(status.Reason())
		if local {
			st.LocalRejected.Add(1)
		}
		if p.Stats != nil {
			p.Stats.Rejected.Add(1)
		}
	}
	if p.Miner != nil {
		p.Miner.AnswerShare(p.ReqID.Bytes(), status, text)
	}
}
