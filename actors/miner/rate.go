package miner

import "time"

// rateLimit is a miner's request budget. Lines over the budget are dropped
// (and counted); a miner is disconnected only when it keeps flooding, which
// the debt measures: every dropped line adds one, and the debt drains at a
// quarter of the rate. A burst once in a while drains away; a miner sending
// twice its budget for ~10 s or ten times it for ~1 s is cut.
type rateLimit struct {
	rate, tokens, debt float32
	last               int64 // unix nanos of the last refill
}

type rateVerdict uint8

const (
	rateOK rateVerdict = iota
	rateDrop
	rateKick
)

func (r *rateLimit) init(perSec int) {
	r.rate = float32(perSec)
	r.tokens = 2 * r.rate // a fresh miner may send its login burst
}

func (r *rateLimit) take(now time.Time) rateVerdict {
	if r.rate <= 0 {
		return rateOK
	}
	n := now.UnixNano()
	if r.last != 0 {
		dt := float32(n-r.last) / 1e9
		r.tokens = min(r.tokens+dt*r.rate, 2*r.rate)
		r.debt = max(r.debt-dt*r.rate/4, 0)
	}
	r.last = n
	if r.tokens >= 1 {
		r.tokens--
		return rateOK
	}
	r.debt++
	if r.debt > 8*r.rate {
		return rateKick
	}
	return rateDrop
}
