package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Broadcast is one entry of the agent's job_fanout.recent in
// /api/v1/summary: one pool job written to the miners of one pool link.
type Broadcast struct {
	JobAt   time.Time `json:"job_at"`   // the pool's job arrived at the agent
	Miners  int       `json:"miners"`   // miners it was written to
	WriteMs float64   `json:"write_ms"` // first miner write to last
	DoneMs  float64   `json:"done_ms"`  // job arrival to the last miner write
}

// summaryFanout is the part of /api/v1/summary the harness reads. The
// harness decodes it itself rather than importing internal/api: it must
// also read builds older or newer than its own, and a pointer tells a
// build without the field (nil) from one that has broadcast nothing yet.
type summaryFanout struct {
	Listeners []struct {
		JobFanout struct {
			Recent *[]Broadcast `json:"recent"`
		} `json:"job_fanout"`
	} `json:"listeners"`
}

// fetchBroadcasts asks the agent's HTTP API at addr for its recent
// broadcasts, all listeners together. ok is false when the agent does not
// report them (a build from before job_fanout.recent).
func fetchBroadcasts(ctx context.Context, addr string) (bs []Broadcast, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := "http://" + addr + "/api/v1/summary"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, false, fmt.Errorf("agent summary: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("agent summary: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("agent summary %s: %s", url, resp.Status)
	}
	var s summaryFanout
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&s); err != nil {
		return nil, false, fmt.Errorf("agent summary %s: %w", url, err)
	}
	ok = len(s.Listeners) > 0
	for _, l := range s.Listeners {
		if l.JobFanout.Recent == nil {
			return nil, false, nil
		}
		bs = append(bs, *l.JobFanout.Recent...)
	}
	return bs, ok, nil
}

// AgentJobFanout is, per pool job, the agent's whole broadcast of it: the
// largest done_ms over the entries (one per pool link) whose job_at falls
// in [written, written+within). A job the agent's record no longer holds
// (it keeps the last 32 entries) or never broadcast is left out. The
// result is in the order of jobs.
func AgentJobFanout(bs []Broadcast, jobs []PoolJob, within time.Duration) []float64 {
	var out []float64
	for _, j := range jobs {
		done, found := 0.0, false
		end := j.Written.Add(within)
		for _, b := range bs {
			if b.JobAt.Before(j.Written) || !b.JobAt.Before(end) {
				continue
			}
			done, found = max(done, b.DoneMs), true
		}
		if found {
			out = append(out, done)
		}
	}
	return out
}
