// Package writeq is the output queue of a connection that must never block
// its writer: bytes the socket does not take at once wait here and a
// goroutine, which exists only while there is something to write, drains
// them with a write deadline. Thousands of mostly idle connections (pool
// links per miner, miners on the portable event loop) then cost no
// goroutine each.
package writeq

import (
	"errors"
	"net"
	"sync"
	"time"
)

// ErrClosed is returned for output queued after Close.
var ErrClosed = errors.New("writeq: connection closed")

// ErrOverflow is returned when the queue would grow past its limit; the
// queue is closed, since a peer that reads nothing for so long is gone.
var ErrOverflow = errors.New("writeq: peer reads too slowly; output queue full")

// Queue drains queued output to Conn. Set the fields before first use.
type Queue struct {
	Conn    net.Conn
	Timeout time.Duration // per write of the drain goroutine
	Max     int           // queued bytes allowed (0: no limit)
	// Written is called after every write of the drain goroutine; on an
	// error the queue is already closed and the caller closes the socket.
	Written func(n int, err error)

	mu      sync.Mutex
	pend    []byte
	writing bool
	closed  bool
}

// Send queues b. Inline, when set and no drain is running, is called first
// under the queue's lock to write what the socket takes now without a
// goroutine (a non-blocking raw write); only its remainder is queued. An
// error from inline closes the queue and is returned.
func (q *Queue) Send(b []byte, inline func([]byte) (int, error)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if inline != nil && !q.writing {
		n, err := inline(b)
		if err != nil {
			q.closed = true
			return err
		}
		if b = b[n:]; len(b) == 0 {
			return nil
		}
	}
	if q.Max > 0 && len(q.pend)+len(b) > q.Max {
		q.closed = true
		return ErrOverflow
	}
	q.pend = append(q.pend, b...)
	if !q.writing {
		q.writing = true
		go q.drain()
	}
	return nil
}

func (q *Queue) drain() {
	var buf []byte
	for {
		q.mu.Lock()
		if len(q.pend) == 0 || q.closed {
			q.writing = false
			q.pend = q.pend[:0]
			q.mu.Unlock()
			return
		}
		buf, q.pend = q.pend, buf[:0]
		q.mu.Unlock()
		_ = q.Conn.SetWriteDeadline(time.Now().Add(q.Timeout))
		n, err := q.Conn.Write(buf)
		if err != nil {
			q.mu.Lock()
			q.closed, q.writing = true, false
			q.mu.Unlock()
		}
		if q.Written != nil {
			q.Written(n, err)
		}
		if err != nil {
			return
		}
	}
}

// Busy reports whether the drain goroutine is writing.
func (q *Queue) Busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.writing
}

// Close drops what is queued and refuses later output. It reports whether
// the queue was open.
func (q *Queue) Close() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	was := !q.closed
	q.closed = true
	return was
}
