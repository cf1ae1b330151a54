package logging

import (
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// RateLimited logs warnings of one kind at most once per interval and counts
// the ones it held back, reporting the count on the next line of that kind
// ("... (+N similar suppressed)"). Hostile or broken miners can produce a bad
// request per millisecond; logging each would turn their fault into ours.
// It is safe for concurrent use.
type RateLimited struct {
	log   logrus.FieldLogger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[string]*rateState
}

type rateState struct {
	last       time.Time
	suppressed int
	fields     logrus.Fields // of the last suppressed line, for Flush
	msg        string
}

// maxKinds bounds the table when callers build kinds from per-connection
// data; quiet kinds are pruned beyond it.
const maxKinds = 4096

// NewRateLimited logs through l, one line per kind per every.
func NewRateLimited(l logrus.FieldLogger, every time.Duration) *RateLimited {
	return &RateLimited{log: l, every: every, now: time.Now, kinds: map[string]*rateState{}}
}

// SetClock replaces the time source (for tests); call it before first use.
func (r *RateLimited) SetClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
}

// Warn logs msg with fields at warn level, unless a line of the same kind
// was logged less than the interval ago.
func (r *RateLimited) Warn(kind string, fields logrus.Fields, msg string) {
	r.mu.Lock()
	now := r.now()
	st := r.kinds[kind]
	if st != nil && now.Sub(st.last) < r.every {
		st.suppressed++
		st.fields, st.msg = fields, msg
		r.mu.Unlock()
		return
	}
	if st == nil {
		if len(r.kinds) >= maxKinds {
			r.prune(now)
		}
		st = &rateState{}
		r.kinds[kind] = st
	}
	n := st.suppressed
	st.last, st.suppressed, st.fields, st.msg = now, 0, nil, ""
	r.mu.Unlock()
	r.emit(kind, fields, msg, n)
}

func (r *RateLimited) emit(kind string, fields logrus.Fields, msg string, suppressed int) {
	e := r.log.WithFields(fields).WithField("kind", kind)
	if suppressed > 0 {
		msg = fmt.Sprintf("%s (+%d similar suppressed)", msg, suppressed)
		e = e.WithField("suppressed", suppressed)
	}
	e.Warn(msg)
}

// prune forgets kinds that are past their interval with nothing held back.
func (r *RateLimited) prune(now time.Time) {
	for k, st := range r.kinds {
		if st.suppressed == 0 && now.Sub(st.last) >= r.every {
			delete(r.kinds, k)
		}
	}
}

// Flush logs, for every kind with held-back lines, the last of them with the
// count, so nothing is silently lost at shutdown.
func (r *RateLimited) Flush() {
	type pending struct {
		kind   string
		fields logrus.Fields
		msg    string
		n      int
	}
	var out []pending
	r.mu.Lock()
	now := r.now()
	for k, st := range r.kinds {
		if st.suppressed > 0 {
			// The flushed line stands for one of the held-back ones.
			out = append(out, pending{k, st.fields, st.msg, st.suppressed - 1})
			st.last, st.suppressed, st.fields, st.msg = now, 0, nil, ""
		}
	}
	r.mu.Unlock()
	for _, p := range out {
		r.emit(p.kind, p.fields, p.msg, p.n)
	}
}

// addrRE matches socket addresses in error texts.
var addrRE = regexp.MustCompile(`(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+`)

// WithoutAddrs replaces the socket addresses in an error text with
// "<addr>": the local port changes on every attempt, which must not make
// the same failure look new to a de-duplicating log.
func WithoutAddrs(s string) string { return addrRE.ReplaceAllString(s, "<addr>") }
