package farmalert_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/api"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/plugins/farmalert"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// waitUntil polls cond (cheap reads of the registry) until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
}

// The scenario through the real agent: 50 miners, 10 of them stop
// (a switch died). After the grace period the 10 are offline in the API,
// with their last address, and in exactly one webhook call to a local
// receiver; when they come back they are online again and a second message
// says so.
func TestFiftyMinersTenStop(t *testing.T) {
	hooks := make(chan farmalert.JSONBody, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b farmalert.JSONBody
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		hooks <- b
	}))
	t.Cleanup(recv.Close)

	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.FarmWatch.SweepInterval = 100 * time.Millisecond
	cfg.FarmWatch.Grace = time.Second
	cfg.FarmWatch.IdleMin = time.Minute
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("farm-watch", map[string]any{
		"events": []string{"miner_offline", "miner_online"}, "batch_window": "1s", "min_interval": "100ms",
		"webhook": []map[string]any{{"url": recv.URL + "/hook"}},
	})}
	a := testenv.Agent(t, cfg, agent.Options{})
	srv := api.New(api.Options{Source: a, Version: "test", Log: testenv.Logger(t)})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	base := "http://" + srv.Addr().String()

	sim := func(prefix string, n int) *minersim.Sim {
		return testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: n, WorkerPrefix: prefix, ShareInterval: 200 * time.Millisecond})
	}
	sim("a", 40)
	rack := sim("b", 10)
	farm := a.Farm()
	counts := func() map[farmwatch.Status]int { return farm.Counts()[cfg.Listen[0].Name] }
	waitUntil(t, "50 miners online", func() bool { return counts()[farmwatch.Online] == 50 })

	rack.Stop()
	var msg farmalert.JSONBody
	select {
	case msg = <-hooks:
	case <-time.After(testenv.Timeout):
		t.Fatal("no webhook call for the stopped miners")
	}
	var gone []string
	for _, e := range msg.Events {
		if e.Kind != farmwatch.MinerOffline || !strings.HasPrefix(e.Address, "127.0.0.1:") {
			t.Errorf("unexpected event %+v", e)
		}
		gone = append(gone, e.Worker)
	}
	slices.Sort(gone)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("farm.b%03d", i))
	}
	if !slices.Equal(gone, want) || !strings.Contains(msg.Text, "10 miners offline") {
		t.Fatalf("one message should name the 10 stopped miners: %v\n%s", gone, msg.Text)
	}
	// Nothing else follows: the 10 were one batch.
	select {
	case extra := <-hooks:
		t.Fatalf("a second webhook call: %+v", extra.Counts)
	case <-time.After(1500 * time.Millisecond):
	}

	var page api.MinerPage
	getJSON(t, base+"/api/v1/miners?status=offline&sort=worker", &page)
	if page.Total != 10 {
		t.Fatalf("API: %d offline miners, want 10", page.Total)
	}
	for i, m := range page.Miners {
		if m.Worker != want[i] || m.Status != "offline" || !strings.HasPrefix(m.Address, "127.0.0.1:") || m.LastSeen == nil || m.SubAccount != "farm" {
			t.Errorf("offline row %d: %+v", i, m)
		}
	}
	var f api.Farm
	getJSON(t, base+"/api/v1/farm", &f)
	if f.Counts["offline"] != 10 || f.Counts["online"] != 40 || f.ProblemsTotal != 10 {
		t.Fatalf("farm counts %v, problems %d", f.Counts, f.ProblemsTotal)
	}
	getJSON(t, base+"/api/v1/miners?status=online", &page)
	if page.Total != 40 {
		t.Fatalf("API: %d online miners, want 40", page.Total)
	}

	// The rack comes back.
	sim("b", 10)
	back := map[string]bool{}
	for len(back) < 10 {
		select {
		case m := <-hooks:
			for _, e := range m.Events {
				if e.Kind != farmwatch.MinerOnline {
					t.Fatalf("unexpected %s event for %s", e.Kind, e.Worker)
				}
				back[e.Worker] = true
			}
		case <-time.After(testenv.Timeout):
			t.Fatalf("only %d miners reported back online", len(back))
		}
	}
	getJSON(t, base+"/api/v1/miners?status=offline", &page)
	if page.Total != 0 || counts()[farmwatch.Online] != 50 {
		t.Fatalf("after the return: %d offline in the API, counts %v", page.Total, counts())
	}
}

// A reload that restarts the listener builds a new plugin chain and closes
// the old one: the alerts go on through the shared sender (no gap, no
// duplicate), and new [farm_watch] thresholds apply.
func TestAlertsSurviveReload(t *testing.T) {
	hooks := make(chan farmalert.JSONBody, 10)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b farmalert.JSONBody
		_ = json.NewDecoder(r.Body).Decode(&b)
		hooks <- b
	}))
	t.Cleanup(recv.Close)
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, "farm", pool.Addr())
	cfg.FarmWatch.SweepInterval = 100 * time.Millisecond
	cfg.FarmWatch.Grace = time.Minute
	cfg.FarmWatch.IdleMin = time.Minute
	cfg.FarmWatch.HashrateDropPercent = 0
	cfg.Plugins = []config.PluginSpec{config.NewPluginSpec("farm-watch", map[string]any{
		"events": []string{"miner_offline"}, "batch_window": "200ms", "min_interval": "10ms",
		"webhook": []map[string]any{{"url": recv.URL}},
	})}
	a := testenv.Agent(t, cfg, agent.Options{})
	sim := testenv.Miners(t, minersim.Config{Target: testenv.Addr(a), Miners: 3, ShareInterval: 100 * time.Millisecond,
		ReconnectMin: 50 * time.Millisecond, ReconnectMax: 100 * time.Millisecond})
	name := cfg.Listen[0].Name
	waitUntil(t, "3 miners online", func() bool { return a.Farm().Counts()[name][farmwatch.Online] == 3 })

	next := *cfg
	next.Listen = append([]config.Listener(nil), cfg.Listen...)
	next.Upstream.FlushInterval = 7 * time.Millisecond // restarts the listener
	next.FarmWatch.Grace = 500 * time.Millisecond
	res, err := a.Reload(&next)
	if err != nil || len(res.Restarted) != 1 {
		t.Fatalf("reload: %+v %v", res, err)
	}
	if g := a.Farm().Options().Grace; g != 500*time.Millisecond {
		t.Fatalf("offline_after after reload: %v", g)
	}
	// The moved miners are the same known miners: nobody went offline.
	waitUntil(t, "3 miners back on the new listener", func() bool {
		return len(a.Listeners()) == 1 && a.Listeners()[0].Stats.MinersAuth.Load() == 3
	})
	sim.Stop()
	// The three stopped miners are reported offline once each; on a loaded
	// machine their closes may straddle a batch window, so count events,
	// not messages.
	seen := map[string]int{}
	for total := 0; total < 3; {
		select {
		case msg := <-hooks:
			for _, ev := range msg.Events {
				if ev.Kind != farmwatch.MinerOffline {
					t.Fatalf("after the reload: a %s event (%v); only the stopped miners may be reported", ev.Kind, msg.Counts)
				}
				seen[ev.Worker]++
				total++
			}
		case <-time.After(testenv.Timeout):
			t.Fatalf("after the reload: offline events %v, want the 3 stopped miners", seen)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("after the reload: offline events %v, want each of the 3 stopped miners once", seen)
	}
	select {
	case extra := <-hooks:
		t.Fatalf("a second message: %v", extra.Counts)
	case <-time.After(500 * time.Millisecond):
	}
}
