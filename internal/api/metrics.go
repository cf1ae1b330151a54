package api

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/prometheus/client_golang/prometheus"
)

// collector turns the agent's counters into metrics at scrape time. It keeps
// no metric objects of its own: listeners come and go with reloads, and the
// counters already live in the actors' atomics.
type collector struct {
	s *Server

	buildInfo, sessions                                *prometheus.Desc
	minersConnected, minersAuthorized, hashrate        *prometheus.Desc
	accepted, acceptedDiff, rejected, rejectedLocal    *prometheus.Desc
	fake, sent                                         *prometheus.Desc
	bytes, writes, reconnects, failovers, pluginErrors *prometheus.Desc
	links, linkMiners, fanout, fanoutMax               *prometheus.Desc
	reloads, reloadSuccess, coordinatorErrors          *prometheus.Desc
	farmMiners                                         *prometheus.Desc
	sub                                                subDescs
}

func newCollector(s *Server) *collector {
	l := []string{"listener"}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("btcagent_"+name, help, labels, nil)
	}
	return &collector{
		s:                 s,
		sub:               newSubDescs(d),
		buildInfo:         d("build_info", "Always 1; the version label says which btcagent runs.", "version"),
		sessions:          d("sessions_in_use", "Miner session ids in use (each miner connection holds one of 65535)."),
		minersConnected:   d("miners_connected", "Miner TCP connections open.", l...),
		minersAuthorized:  d("miners_authorized", "Miners that have authorized.", l...),
		hashrate:          d("hashrate_hashes_per_second", "Estimated hashrate from accepted share difficulty over the last ten minutes.", l...),
		accepted:          d("shares_accepted_total", "Shares accepted (by the pool, or forwarded when verdicts are not requested).", l...),
		acceptedDiff:      d("shares_accepted_difficulty_total", "Sum of the difficulty of accepted shares; rate() x 2^32 is hashes per second.", l...),
		rejected:          d("shares_rejected_total", "Shares rejected, by reason (pool verdicts and local checks).", "listener", "reason"),
		rejectedLocal:     d("shares_rejected_local_total", "Rejected shares answered by the agent or a plugin without going to the pool (included in shares_rejected_total).", l...),
		fake:              d("shares_fake_total", "Shares on placeholder jobs under the fake outage policy: answered locally, never paid.", l...),
		sent:              d("shares_sent_total", "Share submissions written to pool links.", l...),
		bytes:             d("pool_bytes_total", "Bytes on pool links, handshakes included (TLS: as on the wire).", "listener", "direction"),
		writes:            d("pool_write_calls_total", "Write calls on pool links (about one TCP push each).", l...),
		reconnects:        d("pool_reconnects_total", "Pool link connection attempts after a failure or loss.", l...),
		failovers:         d("pool_failovers_total", "Times miners were moved to another link or a link fell back to a later pool.", l...),
		pluginErrors:      d("plugin_errors_total", "Plugin hook panics (isolated; the miner continued as if the plugin passed).", l...),
		links:             d("upstream_links", "Pool link slots by state (ready or down) and pool.", "listener", "route", "pool", "state"),
		linkMiners:        d("upstream_link_miners", "Miners attached to each pool link slot.", "listener", "slot"),
		fanout:            d("job_fanout_seconds", "Time from a pool job's arrival to its write to each miner. Buckets are the agent's powers of two of nanoseconds; _sum is estimated from bucket midpoints.", l...),
		fanoutMax:         d("job_fanout_max_seconds", "Longest job fan-out observed since the listener started.", l...),
		reloads:           d("config_reloads_total", "Configuration reloads by result (ok, error).", "result"),
		reloadSuccess:     d("config_last_reload_success_timestamp_seconds", "Unix time of the last successful reload, or of the start."),
		coordinatorErrors: d("coordinator_unresponsive", "1 if the listener's coordinator did not answer the scrape's snapshot request in time.", l...),
		farmMiners:        d("farm_miners", "Known miners by status (online, idle, slow, offline) as of the last farm-watch sweep.", "listener", "status"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append([]*prometheus.Desc{
		c.buildInfo, c.sessions, c.minersConnected, c.minersAuthorized, c.hashrate,
		c.accepted, c.acceptedDiff, c.rejected, c.rejectedLocal, c.fake, c.sent,
		c.bytes, c.writes, c.reconnects, c.failovers, c.pluginErrors,
		c.links, c.linkMiners, c.fanout, c.fanoutMax, c.reloads, c.reloadSuccess, c.coordinatorErrors, c.farmMiners,
	}, c.sub.all()...) {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	now := time.Now()
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	counter := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, lv...)
	}
	gauge(c.buildInfo, 1, s.opts.Version)
	gauge(c.sessions, float64(s.opts.Source.Sessions()))

	ls := s.opts.Source.Listeners()
	snaps := s.snapshots(ls)
	for i, l := range ls {
		name, st := l.Cfg.Name, l.Stats
		gauge(c.minersConnected, float64(st.MinersConn.Load()), name)
		gauge(c.minersAuthorized, float64(st.MinersAuth.Load()), name)
		gauge(c.hashrate, st.Hashrate(now), name)
		counter(c.accepted, float64(st.Accepted.Load()), name)
		counter(c.acceptedDiff, st.AcceptedDiff.Load(), name)
		for reason, n := range st.RejectCounts() {
			counter(c.rejected, float64(n), name, reason)
		}
		counter(c.rejectedLocal, float64(st.LocalRejected.Load()), name)
		counter(c.fake, float64(st.FakeAnswered.Load()), name)
		counter(c.sent, float64(st.SharesSent.Load()), name)
		counter(c.bytes, float64(st.BytesUp.Load()), name, "up")
		counter(c.bytes, float64(st.BytesDown.Load()), name, "down")
		counter(c.writes, float64(st.Writes.Load()), name)
		counter(c.reconnects, float64(st.Reconnects.Load()), name)
		counter(c.failovers, float64(st.Failovers.Load()), name)
		counter(c.pluginErrors, float64(pluginErrors(l)), name)
		if st.FanoutNanos != nil {
			count, sum, buckets := fanoutHistogram(st.FanoutNanos)
			ch <- prometheus.MustNewConstHistogram(c.fanout, count, sum, buckets, name)
			gauge(c.fanoutMax, st.FanoutNanos.Max().Seconds(), name)
		}
		c.sub.collect(gauge, counter, l, snaps[i])
		if snaps[i].err != nil {
			gauge(c.coordinatorErrors, 1, name)
			continue
		}
		gauge(c.coordinatorErrors, 0, name)
		c.collectLinks(ch, name, snaps[i].snap.Upstreams)
	}

	c.collectFarm(gauge, ls)

	r := &s.reloads
	r.mu.Lock()
	ok, failed, last := r.ok, r.failed, r.last
	r.mu.Unlock()
	counter(c.reloads, float64(ok), "ok")
	counter(c.reloads, float64(failed), "error")
	if last.IsZero() {
		last = s.started
	}
	gauge(c.reloadSuccess, float64(last.UnixNano())/1e9)
}

// collectFarm exports the status counts: every status of every running
// listener, zeros included, so that alert rules and dashboards see a series
// before the first miner goes missing.
func (c *collector) collectFarm(gauge func(*prometheus.Desc, float64, ...string), ls []*agent.Listener) {
	w := c.s.opts.Source.Farm()
	if w == nil {
		return
	}
	counts := w.Counts()
	for _, l := range ls {
		for _, st := range farmwatch.Statuses {
			gauge(c.farmMiners, float64(counts[l.Cfg.Name][st]), l.Cfg.Name, string(st))
		}
	}
}

// collectLinks counts slots per (route, pool, state): a handful of series
// per listener however many miners there are.
func (c *collector) collectLinks(ch chan<- prometheus.Metric, listener string, ups []wire.UpstreamState) {
	type key struct{ route, pool, state string }
	counts := map[key]int{}
	for _, u := range ups {
		state := "down"
		if u.Ready {
			state = "ready"
		}
		counts[key{u.Route, u.Pool, state}]++
		ch <- prometheus.MustNewConstMetric(c.linkMiners, prometheus.GaugeValue, float64(u.Miners), listener, strconv.Itoa(u.Slot))
	}
	keys := make([]key, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].route+"\x00"+keys[i].pool+"\x00"+keys[i].state < keys[j].route+"\x00"+keys[j].pool+"\x00"+keys[j].state
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(counts[k]), listener, k.route, k.pool, k.state)
	}
}

// Exposed fan-out buckets: upper bounds 2^10 ns (about 1 µs) to 2^35 ns
// (about 34 s). Faster observations fall in the first bucket, slower ones
// only in +Inf: 26 series instead of the histogram's 64 raw buckets.
const (
	fanoutFirstBound = 10
	fanoutLastBound  = 35
)

// fanoutHistogram converts the log2 histogram (bucket i counts durations in
// [2^i, 2^(i+1)) ns) to cumulative Prometheus buckets in seconds. The count
// is the sum of the buckets as read, so the histogram is always consistent
// even while miners record into it. The agent keeps no sum of durations, so
// the sum assumes each observation sits mid-bucket (1.5 x 2^i ns).
func fanoutHistogram(h *stats.Histogram) (count uint64, sum float64, buckets map[float64]uint64) {
	raw := h.Buckets()
	buckets = make(map[float64]uint64, fanoutLastBound-fanoutFirstBound+1)
	var cum uint64
	for i, n := range raw {
		if n < 0 {
			n = 0
		}
		cum += uint64(n)
		sum += float64(n) * 1.5 * math.Ldexp(1, i) / 1e9
		if bound := i + 1; bound >= fanoutFirstBound && bound <= fanoutLastBound {
			buckets[math.Ldexp(1, bound)/1e9] = cum
		}
	}
	return cum, sum, buckets
}
