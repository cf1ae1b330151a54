package api

import (
	"net/netip"
	"sync"
	"time"
)

// throttle limits wrong tokens per client address with a token bucket: a
// client may get burst tokens wrong at once, then one more every refill.
// Memory is bounded: at most max addresses are tracked; entries whose
// bucket has filled up again carry no information and are dropped, and while
// the table is full of addresses that are all still being throttled, every
// new address shares one overflow bucket. Evicting a throttled address
// instead would let an attacker with many addresses reset its own budget.
type throttle struct {
	burst  float64
	refill time.Duration
	max    int

	mu        sync.Mutex
	buckets   map[string]*bucket
	overflow  bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was last brought up to date
}

func newThrottle(burst int, refill time.Duration, max int) *throttle {
	return &throttle{burst: float64(burst), refill: refill, max: max, buckets: map[string]*bucket{}, overflow: bucket{tokens: float64(burst)}}
}

// fill brings b up to date at now.
func (t *throttle) fill(b *bucket, now time.Time) {
	if b.at.IsZero() {
		b.at = now
	}
	if d := now.Sub(b.at); d > 0 {
		b.tokens = min(t.burst, b.tokens+float64(d)/float64(t.refill))
		b.at = now
	}
}

// take spends one attempt of key's budget. It returns the bucket charged
// (for refund), or nil and how long until the next attempt is allowed.
func (t *throttle) take(key string, now time.Time) (*bucket, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.buckets[key]
	if b == nil {
		if len(t.buckets) >= t.max {
			t.sweep(now)
		}
		if len(t.buckets) < t.max {
			b = &bucket{tokens: t.burst, at: now}
			t.buckets[key] = b
		} else {
			b = &t.overflow
		}
	}
	t.fill(b, now)
	if b.tokens < 1 {
		return nil, time.Duration((1 - b.tokens) * float64(t.refill))
	}
	b.tokens--
	return b, 0
}

// refund gives back an attempt that turned out to carry the right token.
func (t *throttle) refund(key string, b *bucket, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fill(b, now)
	b.tokens = min(t.burst, b.tokens+1)
	if b.tokens >= t.burst && t.buckets[key] == b {
		delete(t.buckets, key)
	}
}

// sweep drops the entries that have refilled. It runs at most once per
// refill period: in between, no entry can have gained a whole attempt.
func (t *throttle) sweep(now time.Time) {
	if !t.lastSweep.IsZero() && now.Sub(t.lastSweep) < t.refill {
		return
	}
	t.lastSweep = now
	for k, b := range t.buckets {
		t.fill(b, now)
		if b.tokens >= t.burst {
			delete(t.buckets, k)
		}
	}
}

func (t *throttle) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buckets)
}

// clientKey is the throttle key of a remote address: the IP, or for IPv6
// its /64, which is what one subscriber typically gets to choose from.
func clientKey(remote string) string {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return remote
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}
