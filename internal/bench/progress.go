package bench

import (
	"strconv"
	"strings"
	"time"
)

// Progress is one of minersim's periodic stderr lines (-stats-every), the
// only live view the harness has into the separate miner process:
//
//	minersim: 16s connected 200 authorized 200 sent 319 accepted 319 rejected 0 unanswered 0 notifies 800 fan-out p99 6.488064ms cpu 0.01
type Progress struct {
	Elapsed    time.Duration
	Connected  int
	Authorized int
	Sent       int64
	Accepted   int64
	Rejected   int64
	Unanswered int64
	Notifies   int64
	FanoutP99  time.Duration
	CPU        float64 // cores, average since the simulator started
}

// ParseProgress parses a progress line; ok is false for any other line
// (warnings, errors), which callers just log.
func ParseProgress(line string) (p Progress, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "minersim: ")
	if !found {
		return Progress{}, false
	}
	f := strings.Fields(rest)
	if len(f) < 3 {
		return Progress{}, false
	}
	el, err := time.ParseDuration(f[0])
	if err != nil {
		return Progress{}, false
	}
	p.Elapsed = el
	seen := 0
	for i := 1; i+1 < len(f); i++ {
		key, val := f[i], f[i+1]
		var n int64
		isInt := false
		if v, err := strconv.ParseInt(val, 10, 64); err == nil {
			n, isInt = v, true
		}
		switch {
		case key == "fan-out" && val == "p99" && i+2 < len(f):
			if d, err := time.ParseDuration(f[i+2]); err == nil {
				p.FanoutP99 = d
			}
			i += 2
			continue
		case key == "cpu":
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				p.CPU = v
			}
		case !isInt:
			continue
		case key == "connected":
			p.Connected = int(n)
		case key == "authorized":
			p.Authorized = int(n)
			seen++
		case key == "sent":
			p.Sent = n
			seen++
		case key == "accepted":
			p.Accepted = n
		case key == "rejected":
			p.Rejected = n
		case key == "unanswered":
			p.Unanswered = n
		case key == "notifies":
			p.Notifies = n
		default:
			continue
		}
		i++ // the value was consumed
	}
	// A line that merely starts with "minersim: " (an error message) must not
	// read as "0 authorized": require the two counters the harness waits on.
	return p, seen == 2
}
