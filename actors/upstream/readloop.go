package upstream

import (
	"time"

	"github.com/btcagent/btcagent/codec"
)

// readLoop is every link's reader goroutine: it turns the pool's lines and
// frames into messages for the slot. What all protocols share (jobs, the
// version mask) is handled here; the rest goes to the link's protocol.
func (s *Slot) readLoop(l *link, p jsonProto) {
	// Keep the handshake's reader: it may hold bytes that followed the first job.
	r := l.reader
	clk := newJobClock(l.conn, s.env.DeadAfter)
	r.SetSource(clk)
	var rq codec.Request
	for {
		c, err := r.Next()
		if err != nil {
			// A failed write is what closed the socket, so it is the cause.
			if werr := l.wErr.Load(); werr != nil {
				err = *werr
			} else {
				err = clk.explain(err)
			}
			s.post(&linkDown{gen: l.gen, err: err})
			return
		}
		if c.IsFrame {
			p.frame(s, l, c.Frame)
			continue
		}
		if err := codec.ScanRequest(c.Line, &rq); err != nil {
			s.limited("pool-json", poolFields(l), "malformed JSON from pool; ignored: "+err.Error())
			continue
		}
		if rq.IsResponse() {
			p.reply(s, l, &rq)
			continue
		}
		switch string(rq.Method) {
		case codec.MethodNotify:
			n, err := p.checkJob(&rq)
			if err != nil {
				clk.badJob(err)
				s.badJob(l.name, err)
				continue
			}
			clk.job()
			s.post(&poolJob{gen: l.gen, n: n, at: time.Now()})
		case codec.MethodSetVersionMask:
			if v, ok := codec.ParseHex32(rq.Param(0).Str); ok {
				s.post(&poolMask{gen: l.gen, mask: v})
			}
		default:
			p.request(s, l, &rq, c.Line)
		}
	}
}
