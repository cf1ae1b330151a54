package bench

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAgentJobFanout(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC)
	ms := time.Millisecond
	bs := []Broadcast{
		{JobAt: t0.Add(-30*time.Second + ms), DoneMs: 500}, // a job before the window
		// Job 1 through two links: the slower link is the job's broadcast.
		{JobAt: t0.Add(ms), DoneMs: 20},
		{JobAt: t0.Add(2 * ms), DoneMs: 31},
		// Job 3 through two links; job 2 fell out of the record.
		{JobAt: t0.Add(60*time.Second + ms), DoneMs: 12},
		{JobAt: t0.Add(60*time.Second + ms), DoneMs: 11},
		{JobAt: t0.Add(95 * time.Second), DoneMs: 900}, // after the window, written by no job listed
	}
	jobs := []PoolJob{{Written: t0}, {Written: t0.Add(30 * time.Second)}, {Written: t0.Add(60 * time.Second)}}
	got := AgentJobFanout(bs, jobs, 5*time.Second)
	if want := []float64{31, 12}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := AgentJobFanout(nil, jobs, 5*time.Second); len(got) != 0 {
		t.Fatalf("no broadcasts gave %v", got)
	}
}

func TestFetchBroadcasts(t *testing.T) {
	bodies := map[string]string{
		"/new/api/v1/summary": `{"version":"x","listeners":[{"name":"bench","job_fanout":{"count":4,"recent":[
			{"job_at":"2026-12-03T20:00:00.001234567Z","miners":500,"write_ms":3.5,"done_ms":4.25},
			{"job_at":"2026-12-03T20:00:00.0015Z","miners":500,"write_ms":3,"done_ms":4}]}}]}`,
		"/idle/api/v1/summary": `{"listeners":[{"job_fanout":{"count":0,"recent":[]}}]}`,
		"/old/api/v1/summary":  `{"listeners":[{"job_fanout":{"count":4,"p99_ms":8}}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.Error(w, "no such endpoint", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	// fetchBroadcasts takes host:port; the prefix selects the agent build.
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	bs, ok, err := fetchBroadcasts(ctx, addr+"/new")
	if err != nil || !ok || len(bs) != 2 {
		t.Fatalf("current build: %v %v %+v", err, ok, bs)
	}
	want := time.Date(2026, 12, 3, 20, 0, 0, 1234567, time.UTC)
	if !bs[0].JobAt.Equal(want) || bs[0].Miners != 500 || bs[0].WriteMs != 3.5 || bs[0].DoneMs != 4.25 {
		t.Errorf("first broadcast %+v", bs[0])
	}
	if bs, ok, err := fetchBroadcasts(ctx, addr+"/idle"); err != nil || !ok || len(bs) != 0 {
		t.Errorf("no broadcasts yet: %v %v %+v", err, ok, bs)
	}
	if bs, ok, err := fetchBroadcasts(ctx, addr+"/old"); err != nil || ok || bs != nil {
		t.Errorf("build without the record: %v %v %+v", err, ok, bs)
	}
	if _, _, err := fetchBroadcasts(ctx, addr+"/none"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing endpoint: %v", err)
	}
}

func TestFloorRatios(t *testing.T) {
	f := &Floor{Conns: 10000, Bytes: 1400, Rounds: 7, Runs: []FloorRun{
		{Writers: 2, MedianMs: 20, MinMs: 18, MaxMs: 30, WriteErrors: 1},
		{Writers: 1, MedianMs: 35, MinMs: 33, MaxMs: 50},
	}}
	r := Result{FanoutP99Ms: 50, AgentFanoutMaxMs: 30}
	r.setFloor(f)
	r.setFloorRatios()
	if r.FloorMs != 20 || r.FloorMinMs != 18 || r.FloorMaxMs != 30 || r.FloorW1Ms != 35 || r.FloorWriteErrors != 1 {
		t.Errorf("floor fields %+v", r)
	}
	if r.FanoutP99PerFloor != 2.5 || r.AgentFanoutMaxPerFloor != 1.5 {
		t.Errorf("ratios %v %v, want 2.5 1.5", r.FanoutP99PerFloor, r.AgentFanoutMaxPerFloor)
	}
	if !slices.Contains(Notes(r, 2), "1 write(s) of the broadcast floor measurement failed: the floor is too low") {
		t.Errorf("write errors not noted: %q", Notes(r, 2))
	}

	// Without a floor, or without the agent's record, there is no ratio.
	var none Result
	none.FanoutP99Ms = 50
	none.setFloor(nil)
	none.setFloorRatios()
	if !math.IsNaN(none.FloorMs) || !math.IsNaN(none.FloorW1Ms) || !math.IsNaN(none.FanoutP99PerFloor) || none.Floor != nil {
		t.Errorf("no floor: %+v", none)
	}
	noAgent := Result{FanoutP99Ms: 50, AgentFanoutMaxMs: math.NaN()}
	noAgent.setFloor(f)
	noAgent.setFloorRatios()
	if noAgent.FanoutP99PerFloor != 2.5 || !math.IsNaN(noAgent.AgentFanoutMaxPerFloor) {
		t.Errorf("no agent record: %v %v", noAgent.FanoutP99PerFloor, noAgent.AgentFanoutMaxPerFloor)
	}
}
