package upstream

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// A pool that sends one malformed mining.notify must not cost the farm its
// work: such a job is logged (rate-limited) and skipped, in the handshake
// and afterwards, and the link is kept. Liveness is measured in valid jobs:
// a link fails when none arrived within the handshake timeout (the first
// job) or within dead_after (later ones), whatever else the pool sends.

// skipped counts the malformed jobs a handshake skipped.
type skipped struct {
	n    int
	last error
}

func (s *skipped) add(pool string, err error, report func(string, error)) {
	s.n++
	s.last = err
	if report != nil {
		report(pool, err)
	}
}

// noJob is the handshake's failure when its deadline passed before a valid job.
func (s *skipped) noJob(pool string) error {
	if s.n == 0 {
		return &HandshakeError{Pool: pool, Reason: "no job arrived in time"}
	}
	// The count stays out of Reason: failures are de-duplicated by it.
	return &HandshakeError{Pool: pool, Reason: "no valid job arrived in time, only malformed ones",
		Err: fmt.Errorf("%d malformed skipped, the last: %w", s.n, s.last)}
}

// jobClock is a link's read source after the handshake: the read deadline
// is dead_after past the last valid job, so a pool that keeps talking but
// sends no usable work is dropped like a silent one.
type jobClock struct {
	conn    net.Conn
	d       time.Duration
	until   time.Time
	bad     int   // malformed jobs since the last valid job
	lastBad error // the newest of them
}

func newJobClock(conn net.Conn, d time.Duration) *jobClock {
	return &jobClock{conn: conn, d: d, until: time.Now().Add(d)}
}

func (c *jobClock) Read(p []byte) (int, error) {
	_ = c.conn.SetReadDeadline(c.until)
	return c.conn.Read(p)
}

// job records a valid job.
func (c *jobClock) job() {
	c.until = time.Now().Add(c.d)
	c.bad, c.lastBad = 0, nil
}

// badJob records a malformed job.
func (c *jobClock) badJob(err error) {
	c.bad++
	c.lastBad = err
}

// explain turns the read deadline into what happened: after malformed jobs
// it is a noJobError; otherwise it stays a timeout, which the slot reports
// as a silent pool.
func (c *jobClock) explain(err error) error {
	if c == nil || c.bad == 0 {
		return err
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return err
	}
	return &noJobError{after: c.d, bad: c.bad, lastBad: c.lastBad}
}

// noJobError is a link dropped because the pool sent only malformed jobs
// for dead_after.
type noJobError struct {
	after   time.Duration
	bad     int
	lastBad error
}

func (e *noJobError) Error() string {
	return fmt.Sprintf("no valid job from the pool for %s (%d malformed skipped, the last: %v)", e.after, e.bad, e.lastBad)
}

func (e *noJobError) Unwrap() error { return e.lastBad }
