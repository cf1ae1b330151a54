package upstream

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/btcagent/btcagent/codec"
)

// readLoop turns an agent link's frames and lines into actor messages.
func (s *Slot) readLoop(l *link, gen uint64, root *actor.RootContext, self *actor.PID) {
	// Keep the handshake reader: it may already hold bytes that followed the first job.
	r := l.reader
	clk := newJobClock(l.conn, s.env.DeadAfter)
	r.SetSource(clk)
	var rq codec.Request
	for {
		c, ok := nextChunk(r, l, clk, gen, root, self)
		if !ok {
			return
		}
		if c.IsFrame {
			switch c.Frame.Cmd {
			case codec.CmdMiningSetDiff:
				d, err := codec.DecodeSetDiff(c.Frame)
				if err != nil {
					s.log().WithError(err).Warn("bad SET_DIFF frame from pool; ignored")
					continue
				}
				ids := make([]uint16, d.Count)
				for i := range ids {
					ids[i] = d.ID(i)
				}
				root.Send(self, &poolSetDiff{gen: gen, exp: d.Exp, sids: ids})
			case codec.CmdSubmitResponse:
				idx, status, err := codec.DecodeSubmitResponse(c.Frame)
				if err != nil {
					s.log().WithError(err).Warn("bad SUBMIT_RESPONSE frame from pool; ignored")
					continue
				}
				// The verdict goes straight to the miner from this goroutine.
				if l.sink == nil || !l.sink.verdict(idx, status) {
					s.log().WithField("index", idx).Debug("verdict for an unknown submit index; ignored")
				}
			}
			continue
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			s.log().WithError(err).Warn("malformed JSON from pool; ignored")
			continue
		}
		if string(rq.Method) != codec.MethodNotify {
		}
		switch string(rq.Method) {
		case codec.MethodNotify:
			n, err := checkJob(&rq, true)
			if err != nil {
				clk.badJob(err)
				s.badJob(l.name, err)
				continue
			}
			clk.job()
			root.Send(self, &poolJob{gen: gen, n: n, at: time.Now()})
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				root.Send(self, &poolMask{gen: gen, mask: v})
			}
		}
		// Later JSON set_difficulty lines are the agent connection's own
		// vardiff, which never sees shares; both reference agents ignore
		// them (docs/PROTOCOL.md §6.3) and so do we.
	}
}

// nextChunk reads a link's next line or frame. On a read error it reports the
// link down — with the writer's error when there is one, since a failed write
// is what closed the socket, else with what the job clock makes of it — and
// returns false.
func nextChunk(r *codec.Reader, l *link, clk *jobClock, gen uint64, root *actor.RootContext, self *actor.PID) (codec.Chunk, bool) {
	c, err := r.Next()
	if err != nil {
		if werr := l.wErr.Load(); werr != nil {
			err = *werr
		} else {
			err = clk.explain(err)
		}
		root.Send(self, &linkDown{gen: gen, err: err})
		return codec.Chunk{}, false
	}
	return c, true
}
