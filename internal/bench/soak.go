package bench

import (
	"context"
	"fmt"
	"math"
	"time"
)

// SoakOptions configure a long run with faults (issue 6).
type SoakOptions struct {
	Options
	Duration         time.Duration // soak length after the ramp and settle
	RestartEvery     time.Duration // pool restarts (all links drop, same address); 0 = none
	ReconnectPercent float64       // share of the miners that disconnect and come back every ReconnectEvery
	ReconnectEvery   time.Duration // default 1m
}

// SoakSample is one reading during a soak.
type SoakSample struct {
	ElapsedS   float64 `json:"elapsed_s"`
	RSSMiB     float64 `json:"rss_mib"`
	HWMMiB     float64 `json:"hwm_mib"`
	CPU        float64 `json:"cpu"` // cores since the previous sample
	Threads    int     `json:"threads"`
	Authorized int     `json:"authorized"`   // miners authorized at the agent (minersim's view)
	Workers    int     `json:"pool_workers"` // workers registered at the pool
	Links      int     `json:"agent_links"`  // agent links open at the pool
	Accepted   uint64  `json:"pool_accepted"`
}

// SoakResult is what a soak measured. Miners in the churn group are
// disconnected on purpose; the others ("stable") must never be dropped.
type SoakResult struct {
	Miners           int       `json:"miners"`
	ChurnMiners      int       `json:"churn_miners"`
	Connections      int       `json:"connections"`
	FlushMs          float64   `json:"flush_ms"`
	Started          time.Time `json:"started"`
	DurationS        float64   `json:"duration_s"`
	RestartEveryS    float64   `json:"restart_every_s"`
	ReconnectEveryS  float64   `json:"reconnect_every_s"`
	ReconnectPercent float64   `json:"reconnect_percent"`

	PoolRestarts    int `json:"pool_restarts"`
	ChurnCycles     int `json:"churn_cycles"`
	ChurnIncomplete int `json:"churn_incomplete"` // cycles whose miners were not all back before the next

	RSSFirstMiB       float64 `json:"rss_first_mib"`
	RSSLastMiB        float64 `json:"rss_last_mib"`
	RSSMaxMiB         float64 `json:"rss_max_mib"`
	HWMMiB            float64 `json:"hwm_mib"`
	RSSSlopeKiBPerMin float64 `json:"rss_slope_kib_per_min"` // least squares over all samples (includes warm-up)
	RSSLateKiBPerMin  float64 `json:"rss_late_kib_per_min"`  // least squares over the second half: the leak indicator
	AgentCPU          float64 `json:"agent_cpu"`             // whole soak
	ThreadsMax        int     `json:"threads_max"`

	SharesSent        int64 `json:"shares_sent"` // all groups, all churn cycles
	PoolAccepted      int64 `json:"pool_accepted"`
	PoolRejected      int64 `json:"pool_rejected"`
	PoolDropped       int64 `json:"pool_dropped"`
	SharesLost        int64 `json:"shares_lost"`
	StableDisconnects int64 `json:"stable_disconnects"` // stable miners dropped: should be 0
	StableReconnects  int64 `json:"stable_reconnects"`
	ChurnDisconnects  int64 `json:"churn_disconnects"` // beyond the planned ones

	Samples []SoakSample `json:"samples"`
	Errors  []string     `json:"errors,omitempty"`
}

// Soak runs the agent for o.Duration under the reference load while
// restarting the pool and cycling a share of the miners, sampling the agent
// every o.SampleEvery.
func Soak(ctx context.Context, o SoakOptions) (res SoakResult, err error) {
	o.Options = o.Options.withDefaults()
	if o.ReconnectEvery == 0 {
		o.ReconnectEvery = time.Minute
	}
	churnN := int(math.Round(float64(o.Miners) * o.ReconnectPercent / 100))
	churnN = min(max(churnN, 0), o.Miners)
	res = SoakResult{
		Miners: o.Miners, ChurnMiners: churnN, Started: time.Now().UTC().Truncate(time.Second),
		RestartEveryS: o.RestartEvery.Seconds(), ReconnectPercent: o.ReconnectPercent,
	}
	if churnN > 0 {
		res.ReconnectEveryS = o.ReconnectEvery.Seconds()
	}
	if err := waitQuiet(ctx, o.Options); err != nil {
		return res, err
	}
	e, err := startEnv(ctx, o.Options)
	if err != nil {
		return res, err
	}
	defer e.close()
	res.Connections, res.FlushMs = e.conns, float64(e.flush)/float64(time.Millisecond)

	stable, err := e.startMiners("stable", o.Miners-churnN, "w")
	if err != nil {
		return res, err
	}
	defer func() { _ = stable.Stop(60 * time.Second) }()
	groups := []*minerGroup{stable}
	var churn *minerGroup
	if churnN > 0 {
		if churn, err = e.startMiners("churn", churnN, "c"); err != nil {
			return res, err
		}
		// The deferred stop sees whichever churn process is current.
		defer func() {
			if churn != nil {
				_ = churn.Stop(60 * time.Second)
			}
		}()
		groups = append(groups, churn)
	}
	if err := e.waitAuthorized(ctx, o.RampTimeout, groups...); err != nil {
		return res, err
	}
	if err := e.settle(ctx, groups...); err != nil {
		return res, err
	}
	o.Logf("  soak for %v (pool restart every %v, %d miners cycled every %v)", o.Duration, o.RestartEvery, churnN, o.ReconnectEvery)

	start, err := ReadProc(e.agent.Pid())
	if err != nil {
		return res, err
	}
	prev := start
	end := start.Time.Add(o.Duration)
	nextSample := start.Time.Add(o.SampleEvery)
	nextRestart := farFuture(start.Time, o.RestartEvery)
	nextChurn := farFuture(start.Time, o.ReconnectEvery)
	if churn == nil {
		nextChurn = end.Add(time.Hour)
	}
	var sent int64
	var xs, ys []float64
	sample := func(s ProcSample) {
		tot := e.pool.Stats().Totals
		auth := 0
		for _, g := range groups {
			auth += g.Progress().Authorized
		}
		sm := SoakSample{
			ElapsedS: s.Time.Sub(start.Time).Seconds(), RSSMiB: mib(s.RSS), HWMMiB: mib(s.HWM),
			CPU: CoresBetween(prev, s), Threads: s.Threads, Authorized: auth,
			Workers: tot.RegisteredWorkers, Links: tot.AgentConns, Accepted: tot.Accepted,
		}
		res.Samples = append(res.Samples, sm)
		xs, ys = append(xs, sm.ElapsedS/60), append(ys, sm.RSSMiB*1024)
		res.RSSMaxMiB = max(res.RSSMaxMiB, sm.RSSMiB)
		res.ThreadsMax = max(res.ThreadsMax, s.Threads)
		prev = s
		o.Logf("  %5.0fs RSS %.1f MiB, CPU %.3f, %d authorized, %d workers at pool, %d links",
			sm.ElapsedS, sm.RSSMiB, sm.CPU, auth, sm.Workers, sm.Links)
	}
	sample(start)

	// Each pass handles the events that are due and sleeps until the next
	// one; the number of passes is bounded by Duration over the shortest
	// period.
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if err := e.alive(stable.child); err != nil {
			return res, err
		}
		// Sample before the faults of this pass so that a sample shows the
		// state the last period ended in, not a churn group just restarted.
		if !now.Before(nextSample) {
			s, err := ReadProc(e.agent.Pid())
			if err != nil {
				return res, err
			}
			sample(s)
			nextSample = nextSample.Add(o.SampleEvery)
		}
		if !now.Before(nextRestart) {
			if err := e.pool.Restart(); err != nil {
				res.Errors = append(res.Errors, err.Error())
			} else {
				res.PoolRestarts++
			}
			nextRestart = nextRestart.Add(o.RestartEvery)
		}
		if !now.Before(nextChurn) {
			if churn.Progress().Authorized < churn.n {
				res.ChurnIncomplete++
			}
			s, err := churn.stopAndSummary()
			if err != nil {
				res.Errors = append(res.Errors, err.Error())
			}
			sent += s.SharesSent
			res.ChurnDisconnects += s.Disconnects
			res.ChurnCycles++
			if churn, err = e.startMiners("churn", churnN, "c"); err != nil {
				return res, err
			}
			groups[len(groups)-1] = churn
			nextChurn = nextChurn.Add(o.ReconnectEvery)
		}
		wake := earliest(end, nextSample, nextRestart, nextChurn)
		t.Reset(max(time.Until(wake), time.Millisecond))
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-t.C:
		}
	}
	last, err := ReadProc(e.agent.Pid())
	if err != nil {
		return res, err
	}
	sample(last)
	res.DurationS = last.Time.Sub(start.Time).Seconds()
	res.AgentCPU = CoresBetween(start, last)
	res.HWMMiB = mib(last.HWM)
	res.RSSFirstMiB = res.Samples[0].RSSMiB
	res.RSSLastMiB = res.Samples[len(res.Samples)-1].RSSMiB
	res.RSSSlopeKiBPerMin = Slope(xs, ys)
	res.RSSLateKiBPerMin = LateDrift(res.Samples)

	if churn != nil {
		s, err := churn.stopAndSummary()
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
		sent += s.SharesSent
		res.ChurnDisconnects += s.Disconnects
		churn = nil
	}
	s, err := stable.stopAndSummary()
	if err != nil {
		return res, err
	}
	sent += s.SharesSent
	res.StableDisconnects = s.Disconnects
	res.StableReconnects = s.Reconnects
	tot, err := e.drain(ctx, sent)
	if err != nil {
		return res, err
	}
	a, r, d := poolShares(tot)
	res.SharesSent = sent
	res.PoolAccepted, res.PoolRejected, res.PoolDropped = int64(a), int64(r), int64(d)
	res.SharesLost = sent - int64(a) - int64(r)
	return res, nil
}

// LateDrift is the least-squares RSS slope in KiB per minute over the
// second half of the samples. The first minutes include the runtime growing
// into its working set; a leak is what still climbs in the second half.
func LateDrift(samples []SoakSample) float64 {
	late := samples[len(samples)/2:]
	xs := make([]float64, len(late))
	ys := make([]float64, len(late))
	for i, s := range late {
		xs[i], ys[i] = s.ElapsedS/60, s.RSSMiB*1024
	}
	return Slope(xs, ys)
}

// earliest is the first of ts.
func earliest(ts ...time.Time) time.Time {
	e := ts[0]
	for _, t := range ts[1:] {
		if t.Before(e) {
			e = t
		}
	}
	return e
}

// farFuture is start+every, or never (a year ahead) when every is 0.
func farFuture(start time.Time, every time.Duration) time.Time {
	if every <= 0 {
		return start.Add(365 * 24 * time.Hour)
	}
	return start.Add(every)
}

// String is a short description for logs.
func (o SoakOptions) String() string {
	return fmt.Sprintf("%d miners, %v, pool restart every %v, %.1f%% reconnecting every %v",
		o.Miners, o.Duration, o.RestartEvery, o.ReconnectPercent, o.ReconnectEvery)
}
