package poolsim

import (
	"fmt"

	"github.com/btcagent/btcagent/codec"
)

// en2SizeLocked is the connection's extranonce2 size.
func (c *conn) en2SizeLocked() int {
	if c.en2Size > 0 {
		return c.en2Size
	}
	return c.p.cfg.EN2Size
}

// en1For is the extranonce1 a share on job j is judged with: the one in
// force when the job was published (mining.set_extranonce applies to later
// jobs only, as miners apply it).
func (c *conn) en1For(j *job) (uint32, [4]byte) {
	if j != nil && j.seq < c.en1From {
		return c.prevEN1, c.prevEN1b
	}
	return c.en1, c.en1b
}

// SetExtranonce sends mining.set_extranonce [en1, en2Size] on the plain
// connection with this Stats id. Jobs published from then on use the new
// extranonce1; shares on earlier jobs are still judged with the old one. The
// new extranonce2 size applies to every later submit. False if there is no
// such connection or en2Size is outside 1..8.
func (p *Pool) SetExtranonce(id uint64, en1 uint32, en2Size int) bool {
	p.mu.Lock()
	c, ok := p.conns[id]
	if !ok || en2Size < 1 || en2Size > 8 {
		p.mu.Unlock()
		return false
	}
	c.prevEN1, c.prevEN1b = c.en1, c.en1b
	c.en1From = p.seq + 1
	c.en1, c.en1Hex = en1, codec.Hex32(en1)
	c.en1b = [4]byte{byte(en1 >> 24), byte(en1 >> 16), byte(en1 >> 8), byte(en1)}
	c.en2Size = en2Size
	c.linesOut++
	c.send(false, fmt.Appendf(nil, `{"id":null,"method":"mining.set_extranonce","params":["%s",%d]}`+"\n", c.en1Hex, en2Size))
	p.eventLocked(id, "set-extranonce", fmt.Sprintf("%s %d", c.en1Hex, en2Size))
	p.signalLocked()
	p.mu.Unlock()
	c.flush()
	return true
}

// SendReconnect sends client.reconnect (no params) on the connection with
// this Stats id and leaves it open: the peer is expected to reconnect and
// close it. False if there is no such connection.
func (p *Pool) SendReconnect(id uint64) bool {
	p.mu.Lock()
	c, ok := p.conns[id]
	if !ok {
		p.mu.Unlock()
		return false
	}
	c.linesOut++
	c.send(false, codec.AppendReconnect(nil))
	p.eventLocked(id, "client-reconnect", "sent")
	p.signalLocked()
	p.mu.Unlock()
	c.flush()
	return true
}
