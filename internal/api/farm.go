package api

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/btcagent/btcagent/internal/farmwatch"
)

// Farm is /api/v1/farm: how many known miners are in each status, and the
// ones that need someone's attention (offline, slow, idle), longest first.
type Farm struct {
	Time          time.Time                 `json:"time"`
	Counts        map[string]int            `json:"counts"`    // status -> miners, whole farm
	Listeners     map[string]map[string]int `json:"listeners"` // listener -> status -> miners
	Problems      []Miner                   `json:"problems"`  // offline, slow and idle miners, longest first
	ProblemsTotal int                       `json:"problems_total"`
	Options       FarmOptions               `json:"options"`
}

// FarmOptions are the thresholds in force, so the page can say what the
// statuses mean.
type FarmOptions struct {
	OfflineAfterSeconds float64 `json:"offline_after_seconds"`
	IdleFactor          float64 `json:"idle_factor"`
	SlowPercent         float64 `json:"slow_percent"`
	SlowWindowSeconds   float64 `json:"slow_window_seconds"`
}

const defaultProblems = 500

func (s *Server) farm(now time.Time, limit int) *Farm {
	out := &Farm{Time: now.UTC(), Counts: map[string]int{}, Listeners: map[string]map[string]int{}, Problems: []Miner{}}
	for _, st := range farmwatch.Statuses {
		out.Counts[string(st)] = 0
	}
	w := s.opts.Source.Farm()
	if w == nil {
		return out
	}
	o := w.Options()
	out.Options = FarmOptions{OfflineAfterSeconds: o.Grace.Seconds(), IdleFactor: o.IdleFactor, SlowPercent: o.SlowPercent, SlowWindowSeconds: o.SlowWindow.Seconds()}
	for l, c := range w.Counts() {
		m := map[string]int{}
		for st, n := range c {
			m[string(st)] = n
			out.Counts[string(st)] += n
		}
		out.Listeners[l] = m
	}
	for _, m := range w.MinersWhere(func(m *farmwatch.Miner) bool { return m.Status != farmwatch.Online }) {
		r := offlineRow(&m)
		if m.Status != farmwatch.Offline {
			r.Hashrate = m.Hashrate
		}
		out.Problems = append(out.Problems, r)
	}
	// Longest first: the oldest status_since; ties by worker for a stable page.
	slices.SortFunc(out.Problems, func(a, b Miner) int {
		return cmp.Or(cmpTime(a.StatusSince, b.StatusSince), cmp.Compare(a.Worker, b.Worker), cmp.Compare(a.Listener, b.Listener))
	})
	out.ProblemsTotal = len(out.Problems)
	if len(out.Problems) > limit {
		out.Problems = out.Problems[:limit]
	}
	return out
}

func (s *Server) handleFarm(w http.ResponseWriter, r *http.Request) {
	limit := defaultProblems
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, "limit must be 1.."+strconv.Itoa(maxLimit))
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, s.farm(time.Now(), limit))
}
