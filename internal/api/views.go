package api

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/actors/stats"
	"github.com/btcagent/btcagent/actors/wire"
	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/internal/farmwatch"
)

// Summary is /api/v1/summary.
type Summary struct {
	Version       string            `json:"version"`
	Time          time.Time         `json:"time"`
	StartedAt     time.Time         `json:"started_at"`
	UptimeSeconds int64             `json:"uptime_seconds"`
	SessionsInUse int               `json:"sessions_in_use"`
	Miners        int64             `json:"miners"`
	Authorized    int64             `json:"authorized"`
	Hashrate      float64           `json:"hashrate"` // H/s, estimated from accepted difficulty
	Accepted      int64             `json:"accepted"`
	Rejected      int64             `json:"rejected"`
	Listeners     []ListenerSummary `json:"listeners"`
	Reload        ReloadSummary     `json:"reload"`
}

// ListenerSummary is one [[listen]] block in the summary.
type ListenerSummary struct {
	Name              string        `json:"name"`
	Address           string        `json:"address"`
	Port              int           `json:"port"`
	PoolUser          string        `json:"pool_user"`
	Miners            int64         `json:"miners"`     // connections open
	Authorized        int64         `json:"authorized"` // of which authorized
	Hashrate          float64       `json:"hashrate"`
	Shares            ShareCounts   `json:"shares"`
	Upstreams         LinkCounts    `json:"upstreams"`
	PoolLink          PoolTraffic   `json:"pool_link"`
	JobFanout         FanoutSummary `json:"job_fanout"`
	PluginErrors      int64         `json:"plugin_errors"`
	*MultiUserSummary               // multi-user listeners only
}

// ShareCounts are a listener's share verdicts since it started.
type ShareCounts struct {
	Accepted           int64            `json:"accepted"`
	AcceptedDifficulty float64          `json:"accepted_difficulty"`
	Rejected           int64            `json:"rejected"`           // all reasons
	RejectedByReason   map[string]int64 `json:"rejected_by_reason"` // reason -> count
	RejectedLocally    int64            `json:"rejected_locally"`   // part of Rejected that never cost uplink
	Fake               int64            `json:"fake"`               // answered on placeholder work (outage policy fake): unpaid
	Sent               int64            `json:"sent"`               // submits written to the pool
}

// LinkCounts say how many pool links are up. Error is set when the
// listener's coordinator did not answer in time (then the counts are 0).
type LinkCounts struct {
	Ready int    `json:"ready"`
	Total int    `json:"total"`
	Error string `json:"error,omitempty"`
}

// PoolTraffic is the listener's pool-link traffic (application bytes).
type PoolTraffic struct {
	BytesUp    int64 `json:"bytes_up"`
	BytesDown  int64 `json:"bytes_down"`
	Writes     int64 `json:"writes"` // write calls, roughly TCP pushes
	Reconnects int64 `json:"reconnects"`
	Failovers  int64 `json:"failovers"`
}

// FanoutSummary is the job fan-out latency: pool job received to written to
// each miner. Quantiles are upper bounds at the histogram's 2x resolution.
type FanoutSummary struct {
	Count int64   `json:"count"`
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// Recent are the last broadcasts (one per pool link and job), exact,
	// oldest first.
	Recent []BroadcastView `json:"recent"`
}

// BroadcastView is one job written to the miners of one pool link.
type BroadcastView struct {
	JobAt   time.Time `json:"job_at"`   // the pool's job arrived at the agent
	Miners  int       `json:"miners"`   // miners it was written to
	WriteMs float64   `json:"write_ms"` // first miner write to last
	DoneMs  float64   `json:"done_ms"`  // job arrival to the last miner write
}

// ReloadSummary reports config reloads (SIGHUP / btcagent reload).
type ReloadSummary struct {
	OK          int64      `json:"ok"`
	Failed      int64      `json:"failed"`
	LastSuccess *time.Time `json:"last_success"`
	LastAttempt *time.Time `json:"last_attempt"`
	LastError   string     `json:"last_error"`
}

// Miner is one row of /api/v1/miners.
type Miner struct {
	Listener   string     `json:"listener"`
	SessionID  uint16     `json:"session_id"`
	Worker     string     `json:"worker"` // as the pool sees it: <pool user>.<worker>; "" until authorized
	Address    string     `json:"address"`
	UserAgent  string     `json:"user_agent"`
	Difficulty float64    `json:"difficulty"`
	Hashrate   float64    `json:"hashrate"`
	Accepted   int64      `json:"accepted"`
	Rejected   int64      `json:"rejected"`
	LastShare  *time.Time `json:"last_share"` // last accepted share; null before the first
	Connected  time.Time  `json:"connected"`
	Upstream   string     `json:"upstream"` // pool link serving the miner; "" while it has none
	// From the known-miners registry (see docs/OPERATIONS.md):
	Status      string     `json:"status"`                     // online, idle, slow or offline
	StatusSince *time.Time `json:"status_since"`               // when the status began; offline: last seen
	LastSeen    *time.Time `json:"last_seen"`                  // last sweep that saw the miner connected
	SubAccount  string     `json:"sub_account"`                // the pool user the miner works for
	Average     float64    `json:"average_hashrate,omitempty"` // registry rows: its own average over slow_window
}

// MinerPage is /api/v1/miners.
type MinerPage struct {
	Total  int     `json:"total"` // rows matching the filter, before paging
	Offset int     `json:"offset"`
	Limit  int     `json:"limit"`
	Sort   string  `json:"sort"`
	Miners []Miner `json:"miners"`
}

// Upstream is one pool link slot in /api/v1/upstreams.
type Upstream struct {
	Listener   string `json:"listener"`
	Slot       int    `json:"slot"`
	Route      string `json:"route"`                 // "" = the listener's own pool list; else a plugin's route, or a sub-account
	SubAccount string `json:"sub_account,omitempty"` // multi-user listeners: the sub-account the slot serves
	Ready      bool   `json:"ready"`
	Pool       string `json:"pool"`     // host:port of the pool last connected; "" if never
	Protocol   string `json:"protocol"` // that pool's: agent, stratum or stratum-per-miner; "" if never
	Generation uint64 `json:"generation"`
	Miners     int    `json:"miners"`
}

// Upstreams is /api/v1/upstreams.
type Upstreams struct {
	Upstreams []Upstream        `json:"upstreams"`
	Errors    map[string]string `json:"errors,omitempty"` // listener -> why its links are missing
}

func (s *Server) snapshot(l *agent.Listener) (*wire.Snapshot, error) {
	return l.Snapshot(s.opts.SnapshotTimeout)
}

// summary builds the summary; snapshots are asked of all coordinators at once.
func (s *Server) summary(now time.Time) *Summary {
	ls := s.opts.Source.Listeners()
	snaps := s.snapshots(ls)
	out := &Summary{
		Version: s.opts.Version, Time: now.UTC(), StartedAt: s.started.UTC(),
		UptimeSeconds: int64(now.Sub(s.started).Seconds()), SessionsInUse: s.opts.Source.Sessions(),
		Listeners: make([]ListenerSummary, 0, len(ls)),
	}
	for i, l := range ls {
		one := listenerSummary(l, now, snaps[i])
		out.Miners += one.Miners
		out.Authorized += one.Authorized
		out.Hashrate += one.Hashrate
		out.Accepted += one.Shares.Accepted
		out.Rejected += one.Shares.Rejected
		out.Listeners = append(out.Listeners, one)
	}
	r := &s.reloads
	r.mu.Lock()
	out.Reload = ReloadSummary{OK: r.ok, Failed: r.failed, LastError: r.lastErr, LastSuccess: timePtr(r.last), LastAttempt: timePtr(r.lastTry)}
	r.mu.Unlock()
	return out
}

type snapResult struct {
	snap *wire.Snapshot
	err  error
}

func (s *Server) snapshots(ls []*agent.Listener) []snapResult {
	out := make([]snapResult, len(ls))
	done := make(chan struct{}, len(ls))
	for i, l := range ls {
		go func() {
			out[i].snap, out[i].err = s.snapshot(l)
			done <- struct{}{}
		}()
	}
	for range ls {
		<-done
	}
	return out
}

func listenerSummary(l *agent.Listener, now time.Time, sr snapResult) ListenerSummary {
	st := l.Stats
	rej := st.RejectCounts()
	var rejected int64
	for _, v := range rej {
		rejected += v
	}
	ls := ListenerSummary{
		Name: l.Cfg.Name, Address: l.Cfg.Address, Port: l.Cfg.Port, PoolUser: l.Cfg.PoolUser,
		Miners: st.MinersConn.Load(), Authorized: st.MinersAuth.Load(), Hashrate: st.Hashrate(now),
		Shares: ShareCounts{
			Accepted: st.Accepted.Load(), AcceptedDifficulty: st.AcceptedDiff.Load(),
			Rejected: rejected, RejectedByReason: rej, RejectedLocally: st.LocalRejected.Load(),
			Fake: st.FakeAnswered.Load(), Sent: st.SharesSent.Load(),
		},
		PoolLink: PoolTraffic{
			BytesUp: st.BytesUp.Load(), BytesDown: st.BytesDown.Load(), Writes: st.Writes.Load(),
			Reconnects: st.Reconnects.Load(), Failovers: st.Failovers.Load(),
		},
		PluginErrors: pluginErrors(l), MultiUserSummary: multiUserSummary(l, sr),
	}
	if h := st.FanoutNanos; h != nil {
		ls.JobFanout = FanoutSummary{Count: h.Count(), P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99)), MaxMs: ms(h.Max())}
	}
	ls.JobFanout.Recent = []BroadcastView{}
	for _, b := range st.Broadcasts.Recent() {
		ls.JobFanout.Recent = append(ls.JobFanout.Recent, BroadcastView{JobAt: b.JobAt, Miners: b.Miners, WriteMs: ms(b.Write), DoneMs: ms(b.Done)})
	}
	if sr.err != nil {
		ls.Upstreams.Error = "coordinator did not answer: " + sr.err.Error()
	} else {
		ls.Upstreams.Total = len(sr.snap.Upstreams)
		for _, u := range sr.snap.Upstreams {
			if u.Ready {
				ls.Upstreams.Ready++
			}
		}
	}
	return ls
}

// pluginErrors adds the chain's isolated panics to what actors counted.
func pluginErrors(l *agent.Listener) int64 {
	n := l.Stats.PluginErrors.Load()
	if l.Chain != nil {
		n += l.Chain.Errors.Load()
	}
	return n
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

// ---- miners ----

// minerQuery is the parsed query string of /api/v1/miners.
type minerQuery struct {
	listener string
	sub      string // sub_account=NAME: that sub-account's miners only
	q        string
	key      string
	desc     bool
	limit    int
	offset   int
	statuses []farmwatch.Status // empty: every connected miner
}

const (
	defaultLimit = 100
	maxLimit     = 10000
)

var sortKeys = []string{"hashrate", "worker", "accepted", "rejected", "last_share", "difficulty", "address", "connected", "status_since"}

func parseMinerQuery(v map[string][]string) (minerQuery, string) {
	get := func(k string) string {
		if x := v[k]; len(x) > 0 {
			return x[0]
		}
		return ""
	}
	q := minerQuery{listener: get("listener"), sub: get("sub_account"), q: strings.ToLower(strings.TrimSpace(get("q"))), key: "worker", limit: defaultLimit}
	if s := get("sort"); s != "" {
		q.key, q.desc = strings.CutPrefix(s, "-")
		if !slices.Contains(sortKeys, q.key) {
			return q, "sort must be one of " + strings.Join(sortKeys, ", ") + " (prefix - for descending)"
		}
	}
	if s := get("status"); s != "" {
		for _, name := range strings.Split(s, ",") {
			st, ok := farmwatch.ParseStatus(strings.TrimSpace(name))
			if !ok {
				return q, "status must be a comma-separated list of online, idle, slow, offline"
			}
			if !slices.Contains(q.statuses, st) {
				q.statuses = append(q.statuses, st)
			}
		}
	}
	var err error
	if s := get("limit"); s != "" {
		if q.limit, err = strconv.Atoi(s); err != nil || q.limit < 1 || q.limit > maxLimit {
			return q, "limit must be 1.." + strconv.Itoa(maxLimit)
		}
	}
	if s := get("offset"); s != "" {
		if q.offset, err = strconv.Atoi(s); err != nil || q.offset < 0 {
			return q, "offset must be a non-negative integer"
		}
	}
	return q, ""
}

func (q *minerQuery) sortName() string {
	if q.desc {
		return "-" + q.key
	}
	return q.key
}

// minerRows reads every connected miner of the selected listeners, with
// its status from the registry, plus the registry's offline miners when the
// query asks for them.
func minerRows(ls []*agent.Listener, farm *farmwatch.Watcher, q minerQuery, now time.Time) []Miner {
	want := func(st farmwatch.Status) bool { return len(q.statuses) == 0 || slices.Contains(q.statuses, st) }
	var rows []Miner
	for _, l := range ls {
		if q.listener != "" && l.Cfg.Name != q.listener {
			continue
		}
		name := l.Cfg.Name
		l.Stats.Miners(func(m *stats.Miner) bool {
			r := minerRow(name, m, now)
			r.SubAccount, r.Status = minerSubAccount(l, r.Worker), string(farmwatch.Online)
			if q.sub != "" && r.SubAccount != q.sub {
				return true
			}
			r.LastSeen = timePtr(now)
			// A miner connected right now is not offline, whatever the
			// last sweep said; it has at most not been swept yet.
			if st, since, ok := farmStatus(farm, name, r.Worker); ok && st != farmwatch.Offline {
				r.Status, r.StatusSince = string(st), timePtr(since)
			} else {
				r.StatusSince = timePtr(r.Connected)
			}
			if want(farmwatch.Status(r.Status)) {
				rows = append(rows, r)
			}
			return true
		})
	}
	if farm != nil && slices.Contains(q.statuses, farmwatch.Offline) {
		for _, m := range farm.MinersWhere(func(m *farmwatch.Miner) bool {
			return m.Status == farmwatch.Offline && (q.listener == "" || m.Listener == q.listener) && (q.sub == "" || m.SubAccount == q.sub)
		}) {
			rows = append(rows, offlineRow(&m))
		}
	}
	return rows
}

func farmStatus(farm *farmwatch.Watcher, listener, worker string) (farmwatch.Status, time.Time, bool) {
	if farm == nil || worker == "" {
		return "", time.Time{}, false
	}
	return farm.Status(listener, worker)
}

// offlineRow shows a miner that is gone: its last address (where to walk
// to), agent and hashrate, and since when it has been missing.
func offlineRow(m *farmwatch.Miner) Miner {
	return Miner{
		Listener: m.Listener, Worker: m.Worker, Address: m.Address, UserAgent: m.UserAgent, Difficulty: m.Difficulty,
		Hashrate: 0, LastShare: timePtr(m.LastShare), Connected: m.LastSeen.UTC(), Status: string(m.Status),
		StatusSince: timePtr(m.Since), LastSeen: timePtr(m.LastSeen), SubAccount: m.SubAccount, Average: m.Average,
	}
}

func minerRow(listener string, m *stats.Miner, now time.Time) Miner {
	ua, worker, up := m.Identity()
	// IPv4 miners on a dual-stack socket arrive as ::ffff:a.b.c.d; show a.b.c.d.
	addr := netip.AddrPortFrom(m.Remote.Addr().Unmap(), m.Remote.Port())
	r := Miner{
		Listener: listener, SessionID: m.SessionID, Worker: worker, Address: addr.String(), UserAgent: codec.PrintableUA(ua),
		Difficulty: m.Difficulty.Load(), Hashrate: m.Hashrate(now), Accepted: m.Accepted.Load(), Rejected: m.Rejected.Load(),
		Connected: m.Connected.UTC(), Upstream: up,
	}
	if ns := m.LastShare.Load(); ns != 0 {
		t := time.Unix(0, ns).UTC()
		r.LastShare = &t
	}
	return r
}

// selectMiners filters, sorts and pages rows; it returns the page and the
// number of rows that matched. Ties are broken by worker, then session id,
// so that paging through a busy farm neither repeats nor skips miners.
func selectMiners(rows []Miner, q minerQuery) ([]Miner, int) {
	if q.q != "" {
		rows = slices.DeleteFunc(rows, func(m Miner) bool {
			return !strings.Contains(strings.ToLower(m.Worker), q.q) && !strings.Contains(strings.ToLower(m.Address), q.q)
		})
	}
	by := compareBy(q.key)
	slices.SortFunc(rows, func(a, b Miner) int {
		c := by(a, b)
		if q.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c = cmp.Compare(a.Worker, b.Worker); c != 0 {
			return c
		}
		return cmp.Compare(a.SessionID, b.SessionID)
	})
	total := len(rows)
	if q.offset >= total {
		return []Miner{}, total
	}
	end := min(q.offset+q.limit, total)
	return rows[q.offset:end], total
}

func compareBy(key string) func(a, b Miner) int {
	switch key {
	case "hashrate":
		return func(a, b Miner) int { return cmp.Compare(a.Hashrate, b.Hashrate) }
	case "accepted":
		return func(a, b Miner) int { return cmp.Compare(a.Accepted, b.Accepted) }
	case "rejected":
		return func(a, b Miner) int { return cmp.Compare(a.Rejected, b.Rejected) }
	case "difficulty":
		return func(a, b Miner) int { return cmp.Compare(a.Difficulty, b.Difficulty) }
	case "address":
		return func(a, b Miner) int { return cmp.Compare(a.Address, b.Address) }
	case "connected":
		return func(a, b Miner) int { return a.Connected.Compare(b.Connected) }
	case "status_since":
		return func(a, b Miner) int { return cmpTime(a.StatusSince, b.StatusSince) }
	case "last_share":
		return func(a, b Miner) int { return cmpTime(a.LastShare, b.LastShare) }
	default:
		return func(a, b Miner) int { return cmp.Compare(a.Worker, b.Worker) }
	}
}

// cmpTime orders optional times; never is older than any time.
func cmpTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

// ---- upstreams ----

func (s *Server) upstreams() *Upstreams {
	ls := s.opts.Source.Listeners()
	snaps := s.snapshots(ls)
	out := &Upstreams{Upstreams: []Upstream{}}
	for i, l := range ls {
		if snaps[i].err != nil {
			if out.Errors == nil {
				out.Errors = map[string]string{}
			}
			out.Errors[l.Cfg.Name] = "coordinator did not answer: " + snaps[i].err.Error()
			continue
		}
		for _, u := range snaps[i].snap.Upstreams {
			out.Upstreams = append(out.Upstreams, Upstream{Listener: l.Cfg.Name, Slot: u.Slot, Route: u.Route, SubAccount: upstreamSubAccount(l, u), Ready: u.Ready, Pool: u.Pool, Protocol: u.Protocol, Generation: u.Gen, Miners: u.Miners})
		}
	}
	return out
}

// ---- handlers ----

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.summary(time.Now()))
}

func (s *Server) handleMiners(w http.ResponseWriter, r *http.Request) {
	q, bad := parseMinerQuery(r.URL.Query())
	if bad != "" {
		writeError(w, http.StatusBadRequest, bad)
		return
	}
	ls := s.opts.Source.Listeners()
	if q.listener != "" && !slices.ContainsFunc(ls, func(l *agent.Listener) bool { return l.Cfg.Name == q.listener }) {
		writeError(w, http.StatusNotFound, "no listener named "+strconv.Quote(q.listener))
		return
	}
	page, total := selectMiners(minerRows(ls, s.opts.Source.Farm(), q, time.Now()), q)
	writeJSON(w, http.StatusOK, &MinerPage{Total: total, Offset: q.offset, Limit: q.limit, Sort: q.sortName(), Miners: page})
}

func (s *Server) handleUpstreams(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.upstreams())
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		var err error
		if since, err = strconv.ParseInt(v, 10, 64); err != nil {
			writeError(w, http.StatusBadRequest, "since must be a unix time in seconds")
			return
		}
	}
	writeJSON(w, http.StatusOK, s.hist.since(since))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
