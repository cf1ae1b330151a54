package api

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// check is a predicate for values that vary from run to run (times, rates).
type check func(v any) error

var (
	isTime check = func(v any) error {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("want an RFC 3339 time string, got %T %v", v, v)
		}
		_, err := time.Parse(time.RFC3339Nano, s)
		return err
	}
	isNum check = func(v any) error {
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("want a number, got %T %v", v, v)
		}
		return nil
	}
	positive check = func(v any) error {
		if f, ok := v.(float64); !ok || f <= 0 {
			return fmt.Errorf("want a positive number, got %T %v", v, v)
		}
		return nil
	}
	nonNegative check = func(v any) error {
		if f, ok := v.(float64); !ok || f < 0 {
			return fmt.Errorf("want a number >= 0, got %T %v", v, v)
		}
		return nil
	}
)

// broadcasts checks job_fanout.recent: each entry a broadcast to at least
// one miner, whose writes took no longer than the job's whole way.
var broadcasts check = func(v any) error {
	list, ok := v.([]any)
	if !ok {
		return fmt.Errorf("want a list of broadcasts, got %T %v", v, v)
	}
	for i, e := range list {
		b, ok := e.(map[string]any)
		if !ok || len(b) != 4 {
			return fmt.Errorf("broadcast %d: want {job_at, miners, write_ms, done_ms}, got %v", i, e)
		}
		if err := isTime(b["job_at"]); err != nil {
			return fmt.Errorf("broadcast %d: job_at: %w", i, err)
		}
		miners, _ := b["miners"].(float64)
		write, _ := b["write_ms"].(float64)
		done, _ := b["done_ms"].(float64)
		if miners < 1 || write < 0 || done < write {
			return fmt.Errorf("broadcast %d: want miners >= 1 and 0 <= write_ms <= done_ms, got %v", i, b)
		}
	}
	return nil
}

func matches(re string) check {
	rx := regexp.MustCompile(re)
	return func(v any) error {
		if s, ok := v.(string); !ok || !rx.MatchString(s) {
			return fmt.Errorf("want a string matching %s, got %T %v", re, v, v)
		}
		return nil
	}
}

// match compares decoded JSON with a description of it: maps must have
// exactly the listed keys, arrays exactly the listed elements, checks are
// applied, and anything else must be equal (numbers are float64).
func match(t *testing.T, path string, got, want any) {
	t.Helper()
	switch w := want.(type) {
	case check:
		if err := w(got); err != nil {
			t.Errorf("%s: %v", path, err)
		}
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: want an object, got %T %v", path, got, got)
			return
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				t.Errorf("%s.%s: unexpected key (value %v)", path, k, g[k])
			}
		}
		for k, wv := range w {
			gv, ok := g[k]
			if !ok {
				t.Errorf("%s.%s: missing", path, k)
				continue
			}
			match(t, path+"."+k, gv, wv)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			t.Errorf("%s: want an array of %d, got %T %v", path, len(w), got, got)
			return
		}
		for i := range w {
			match(t, fmt.Sprintf("%s[%d]", path, i), g[i], w[i])
		}
	default:
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %T %v, want %T %v", path, got, got, want, want)
		}
	}
}

func num(n int) float64 { return float64(n) }

// The summary of the known farm, field by field: everything deterministic is
// compared by value, the rest by type.
func TestSummaryJSON(t *testing.T) {
	f := newFarm(t, "")
	ls := f.agent.Listeners()
	var got map[string]any
	f.getJSON(t, "/api/v1/summary", &got)

	shares := func(accepted int) map[string]any {
		acc := check(positive)
		if accepted == 0 {
			acc = func(v any) error { return equal(v, 0.0) }
		}
		return map[string]any{
			"accepted": num(accepted), "accepted_difficulty": acc, "rejected": 0.0, "rejected_by_reason": map[string]any{},
			"rejected_locally": 0.0, "fake": 0.0, "sent": num(accepted),
		}
	}
	fanout := map[string]any{"count": nonNegative, "p50_ms": nonNegative, "p99_ms": nonNegative, "max_ms": nonNegative, "recent": broadcasts}
	f.settle(t)
	// Byte counts as the pool counted them; writes after the handshake
	// only where there were miners to register and shares to submit.
	link := func(user string, writes check) map[string]any {
		out, in := f.poolBytes(user)
		return map[string]any{"bytes_up": float64(in), "bytes_down": float64(out), "writes": writes, "reconnects": 0.0, "failovers": 0.0}
	}
	accepted := farmMiners * farmShares
	want := map[string]any{
		"version": "test", "time": isTime, "started_at": isTime, "uptime_seconds": nonNegative,
		"sessions_in_use": num(farmMiners), "miners": num(farmMiners), "authorized": num(farmMiners),
		"hashrate": positive, "accepted": num(accepted), "rejected": 0.0,
		"listeners": []any{
			map[string]any{
				"name": "main", "address": "127.0.0.1", "port": num(ls[0].Cfg.Port), "pool_user": poolUser,
				"miners": num(farmMiners), "authorized": num(farmMiners), "hashrate": positive,
				"shares": shares(accepted), "upstreams": map[string]any{"ready": 2.0, "total": 2.0},
				"pool_link": link(poolUser, positive), "job_fanout": fanout, "plugin_errors": 0.0,
			},
			map[string]any{
				"name": "spare", "address": "127.0.0.1", "port": num(ls[1].Cfg.Port), "pool_user": "spare-user",
				"miners": 0.0, "authorized": 0.0, "hashrate": 0.0,
				"shares": shares(0), "upstreams": map[string]any{"ready": 2.0, "total": 2.0},
				"pool_link": link("spare-user", func(v any) error { return equal(v, 0.0) }), "job_fanout": map[string]any{"count": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "recent": []any{}},
				"plugin_errors": 0.0,
			},
		},
		"reload": map[string]any{"ok": 0.0, "failed": 0.0, "last_success": nil, "last_attempt": nil, "last_error": ""},
	}
	match(t, "summary", got, want)

	// A recorded reload shows up in the summary.
	f.srv.RecordReload(time.Now(), fmt.Errorf("config.toml:3: bad"))
	f.getJSON(t, "/api/v1/summary", &got)
	match(t, "summary.reload", got["reload"], map[string]any{"ok": 0.0, "failed": 1.0, "last_success": nil, "last_attempt": isTime, "last_error": "config.toml:3: bad"})
}

func equal(got, want any) error {
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("got %T %v, want %v", got, got, want)
	}
	return nil
}

// Every miner row, and the worker names are exactly the ones the pool sees.
func TestMinersJSON(t *testing.T) {
	f := newFarm(t, "")
	var got map[string]any
	f.getJSON(t, "/api/v1/miners?listener=main&sort=worker", &got)
	var rows []any
	for i := 0; i < farmMiners; i++ {
		rows = append(rows, map[string]any{
			"listener": "main", "session_id": isNum, "worker": fmt.Sprintf("%s.w%03d", poolUser, i),
			"address": matches(`^127\.0\.0\.1:\d+$`), "user_agent": "cgminer/4.10.0",
			"difficulty": positive, "hashrate": positive, "accepted": num(farmShares), "rejected": 0.0,
			"last_share": isTime, "connected": isTime, "upstream": f.pool.Addr(),
			"status": "online", "status_since": isTime, "last_seen": isTime, "sub_account": poolUser,
		})
	}
	match(t, "miners", got, map[string]any{"total": num(farmMiners), "offset": 0.0, "limit": 100.0, "sort": "worker", "miners": rows})

	var poolWorkers, apiWorkers []string
	for name := range f.pool.Stats().Workers {
		poolWorkers = append(poolWorkers, name)
	}
	for _, r := range got["miners"].([]any) {
		apiWorkers = append(apiWorkers, r.(map[string]any)["worker"].(string))
	}
	sort.Strings(poolWorkers)
	if !slices.Equal(poolWorkers, apiWorkers) {
		t.Fatalf("API workers %v, pool workers %v", apiWorkers, poolWorkers)
	}
}

func TestMinersQuery(t *testing.T) {
	f := newFarm(t, "")
	workers := func(path string) (int, []string) {
		t.Helper()
		var p MinerPage
		f.getJSON(t, path, &p)
		var out []string
		for _, m := range p.Miners {
			out = append(out, m.Worker)
		}
		if p.Miners == nil {
			t.Fatalf("%s: miners is null, want an array", path)
		}
		return p.Total, out
	}
	cases := []struct {
		path  string
		total int
		want  []string
	}{
		{"/api/v1/miners?q=W001", 1, []string{"farm.w001"}},
		{"/api/v1/miners?q=127.0.0.1&sort=worker", 3, []string{"farm.w000", "farm.w001", "farm.w002"}},
		{"/api/v1/miners?sort=-worker&limit=2", 3, []string{"farm.w002", "farm.w001"}},
		{"/api/v1/miners?sort=-worker&limit=2&offset=2", 3, []string{"farm.w000"}},
		{"/api/v1/miners?offset=10", 3, nil},
		{"/api/v1/miners?listener=spare", 0, nil},
		{"/api/v1/miners?q=nobody", 0, nil},
	}
	for _, c := range cases {
		total, got := workers(c.path)
		if total != c.total || !slices.Equal(got, c.want) {
			t.Errorf("%s: total %d %v, want %d %v", c.path, total, got, c.total, c.want)
		}
	}
	for path, code := range map[string]int{
		"/api/v1/miners?sort=bogus":       http.StatusBadRequest,
		"/api/v1/miners?limit=0":          http.StatusBadRequest,
		"/api/v1/miners?limit=x":          http.StatusBadRequest,
		"/api/v1/miners?limit=10001":      http.StatusBadRequest,
		"/api/v1/miners?offset=-1":        http.StatusBadRequest,
		"/api/v1/miners?status=gone":      http.StatusBadRequest,
		"/api/v1/farm?limit=0":            http.StatusBadRequest,
		"/api/v1/miners?listener=nope":    http.StatusNotFound,
		"/api/v1/nope":                    http.StatusNotFound,
		"/api/v1/history?since=yesterday": http.StatusBadRequest,
	} {
		if got, body := f.get(t, path); got != code || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("%s: %d %s, want %d with an error message", path, got, body, code)
		}
	}
}

func TestUpstreamsJSON(t *testing.T) {
	f := newFarm(t, "")
	var got map[string]any
	f.getJSON(t, "/api/v1/upstreams", &got)
	ups, _ := got["upstreams"].([]any)
	var want []any
	miners := map[string]float64{}
	for _, u := range ups {
		m := u.(map[string]any)
		miners[fmt.Sprint(m["listener"])] += m["miners"].(float64)
	}
	for _, l := range []string{"main", "main", "spare", "spare"} {
		want = append(want, map[string]any{
			"listener": l, "slot": isNum, "route": "", "ready": true, "pool": f.pool.Addr(), "protocol": "agent", "generation": positive, "miners": nonNegative,
		})
	}
	match(t, "upstreams", got, map[string]any{"upstreams": want})
	if miners["main"] != farmMiners || miners["spare"] != 0 {
		t.Fatalf("miners per listener over the links: %v", miners)
	}
}

// The scrape matches the counters it is made from.
func TestMetrics(t *testing.T) {
	f := newFarm(t, "")
	// The fan-out histogram counts broadcasts of pool jobs to connected
	// miners (not the job a miner gets when it joins): send one.
	fo := f.agent.Listeners()[0].Stats.FanoutNanos
	before := fo.Count()
	f.pool.NewJob(false)
	for deadline := time.Now().Add(30 * time.Second); fo.Count() == before; {
		if time.Now().After(deadline) {
			t.Fatal("no job broadcast observed in the fan-out histogram")
		}
		time.Sleep(10 * time.Millisecond) // nothing to await: the histogram has no notification
	}
	fams, value := f.scrape(t)
	f.settle(t)
	main := map[string]string{"listener": "main"}
	st := f.agent.Listeners()[0].Stats
	for name, want := range map[string]float64{
		"btcagent_miners_connected":            farmMiners,
		"btcagent_miners_authorized":           farmMiners,
		"btcagent_shares_accepted_total":       farmMiners * farmShares,
		"btcagent_shares_sent_total":           farmMiners * farmShares,
		"btcagent_shares_fake_total":           0,
		"btcagent_shares_rejected_local_total": 0,
		"btcagent_pool_failovers_total":        0,
		"btcagent_plugin_errors_total":         0,
	} {
		if got := value(name, main); got != want {
			t.Errorf("%s{listener=main} = %v, want %v", name, got, want)
		}
	}
	// Every share was accepted at the pool's only difficulty (no vardiff).
	if got, want := value("btcagent_shares_accepted_difficulty_total", main), farmMiners*farmShares*farmDiff; math.Abs(got-want) > 1e-9*want {
		t.Errorf("accepted difficulty %v, want %v", got, want)
	}
	out, in := f.poolBytes(poolUser)
	for dir, want := range map[string]uint64{"up": in, "down": out} {
		if got := value("btcagent_pool_bytes_total", map[string]string{"listener": "main", "direction": dir}); got != float64(want) {
			t.Errorf("pool bytes %s: %v, the pool counted %d", dir, got, want)
		}
	}
	if got := value("btcagent_sessions_in_use", nil); got != farmMiners {
		t.Errorf("sessions in use %v", got)
	}
	if got := value("btcagent_upstream_links", map[string]string{"listener": "main", "pool": f.pool.Addr(), "state": "ready"}); got != 2 {
		t.Errorf("ready links of main: %v", got)
	}
	if value("btcagent_hashrate_hashes_per_second", main) <= 0 {
		t.Error("hashrate not exported")
	}
	if got := value("btcagent_build_info", map[string]string{"version": "test"}); got != 1 {
		t.Errorf("build info %v", got)
	}
	if fams["process_open_fds"] == nil && fams["go_goroutines"] == nil {
		t.Error("runtime collectors missing")
	}

	// The fan-out histogram: cumulative, in seconds, count = observations.
	var h *dto.Histogram
	for _, m := range fams["btcagent_job_fanout_seconds"].GetMetric() {
		if hasLabels(m, main) {
			h = m.Histogram
		}
	}
	if h == nil {
		t.Fatal("fan-out histogram of main missing")
	}
	if h.GetSampleCount() != uint64(st.FanoutNanos.Count()) || h.GetSampleCount() == 0 {
		t.Fatalf("histogram count %d, stats count %d", h.GetSampleCount(), st.FanoutNanos.Count())
	}
	var prev uint64
	for _, b := range h.Bucket {
		if b.GetCumulativeCount() < prev {
			t.Fatalf("buckets not cumulative: %v", h.Bucket)
		}
		prev = b.GetCumulativeCount()
	}
	// 26 powers of two from about 1 µs to 34 s, then +Inf.
	n := len(h.Bucket)
	if first := h.Bucket[0].GetUpperBound(); first != math.Ldexp(1, 10)/1e9 || n != fanoutLastBound-fanoutFirstBound+2 || !math.IsInf(h.Bucket[n-1].GetUpperBound(), 1) {
		t.Fatalf("first bucket %v, %d buckets", first, n)
	}
}

// scrape fetches and parses /metrics; value reads one gauge or counter,
// failing the test when the series is missing.
func (f *farm) scrape(t *testing.T) (map[string]*dto.MetricFamily, func(name string, labels map[string]string) float64) {
	t.Helper()
	code, body := f.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		for _, m := range fams[name].GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Counter != nil:
					return m.Counter.GetValue()
				}
			}
		}
		t.Fatalf("metric %s%v missing", name, labels)
		return 0
	}
	return fams, value
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, lp := range m.Label {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// No miner password appears in any response or in the agent's debug log.
func TestNoSecretsExposed(t *testing.T) {
	f := newFarm(t, "")
	for _, path := range []string{"/", "/app.js", "/api/v1/summary", "/api/v1/miners", "/api/v1/upstreams", "/api/v1/history", "/metrics"} {
		code, body := f.get(t, path)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", path, code)
		}
		if bytes.Contains(body, []byte(minerPassword)) {
			t.Fatalf("%s exposes the miner password", path)
		}
	}
	if log := f.logBuf.String(); strings.Contains(log, minerPassword) || !strings.Contains(log, "level=") {
		t.Fatalf("agent log (%d bytes) contains the miner password or nothing was logged", len(log))
	}
}
