package api

import (
	"fmt"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// A multi-user listener with three miners of alice and two of bob, each
// stopping after two accepted shares, and one miner refused for a name
// without a dot.
func newMultiUserFarm(t *testing.T) *farm {
	t.Helper()
	f := &farm{logBuf: &testenv.SyncBuffer{}}
	f.pool = testenv.Pool(t, poolsim.Config{JSONDiff: farmDiff})
	cfg := testenv.Config(t, "", f.pool.Addr())
	l := &cfg.Listen[0]
	l.Name, l.MultiUser = "hosting", true
	l.SubAccounts = config.SubAccountOptions{Connections: 1, Max: 5, Grace: time.Hour}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(cfg, testenv.Logger(t), agent.Options{TickInterval: 200 * time.Millisecond, Socket: testenv.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	f.agent = a
	addr := a.Listeners()[0].Addr().String()
	f.sim = testenv.Miners(t, minersim.Config{
		Target: addr, Names: []string{"alice.rig1", "alice.rig2", "alice.rig3", "bob.rig1", "bob.rig2"},
		Hash: true, HashThreads: 2, MaxSharesPerMiner: farmShares,
	})
	if err := f.sim.WaitFor(testenv.Ctx(t), func(s *minersim.Summary) bool {
		return s.Authorized == 5 && s.SharesAccepted >= 5*farmShares
	}); err != nil {
		t.Fatalf("miners did not get their shares accepted: %v (%+v)", err, f.sim.Stats())
	}
	m := testenv.Dial(t, addr)
	m.Send(`{"id":7,"method":"mining.authorize","params":["nodot","x"]}`)
	if r, _ := m.Until(10*time.Second, func(x testenv.Msg) bool { return string(x.ID) == "7" }); len(r.Error) == 0 {
		t.Fatalf("a name without a dot was not refused: %s", r.Raw)
	}
	f.srv = New(Options{Source: a, Version: "test", Log: testenv.Logger(t)})
	if err := f.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.srv.Close)
	f.base = "http://" + f.srv.Addr().String()
	return f
}

// Per-sub-account miners, hashrate, shares and links in the summary, the
// miners' own sub-accounts and the sub_account filter, the links' sub-accounts,
// and the same numbers as Prometheus series.
func TestMultiUserAPI(t *testing.T) {
	f := newMultiUserFarm(t)
	var sum map[string]any
	f.getJSON(t, "/api/v1/summary", &sum)
	sub := func(name string, miners int) map[string]any {
		return map[string]any{
			"name": name, "miners": num(miners), "hashrate": positive,
			"shares":    map[string]any{"accepted": num(miners * farmShares), "rejected": 0.0},
			"upstreams": map[string]any{"ready": 1.0, "total": 1.0}, "idle_since": nil,
		}
	}
	ls := sum["listeners"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{
		"pool_user": "", "miners": 6.0, "authorized": 5.0, "multi_user": true, "sub_accounts_max": 5.0,
		"sub_accounts": []any{sub("alice", 3), sub("bob", 2)},
		"refused":      map[string]any{"no_sub_account": 1.0, "invalid": 0.0, "not_allowed": 0.0, "cap_reached": 0.0},
		"upstreams":    map[string]any{"ready": 2.0, "total": 2.0},
	} {
		match(t, "summary.listeners[0]."+k, ls[k], want)
	}

	var page MinerPage
	f.getJSON(t, "/api/v1/miners?sub_account=alice&sort=worker", &page)
	var workers []string
	for _, m := range page.Miners {
		if m.SubAccount != "alice" {
			t.Errorf("miner %s of sub_account=alice has sub_account %q", m.Worker, m.SubAccount)
		}
		workers = append(workers, m.Worker)
	}
	if page.Total != 3 || fmt.Sprint(workers) != "[alice.rig1 alice.rig2 alice.rig3]" {
		t.Fatalf("sub_account=alice: total %d, workers %v", page.Total, workers)
	}

	var ups Upstreams
	f.getJSON(t, "/api/v1/upstreams", &ups)
	got := map[string]int{}
	for _, u := range ups.Upstreams {
		if u.SubAccount != u.Route {
			t.Errorf("slot %d: sub_account %q, route %q", u.Slot, u.SubAccount, u.Route)
		}
		got[u.SubAccount] += u.Miners
	}
	if fmt.Sprint(got) != "map[alice:3 bob:2]" {
		t.Fatalf("miners per sub-account over the links: %v", got)
	}

	_, value := f.scrape(t)
	alice, bob := map[string]string{"listener": "hosting", "sub_account": "alice"}, map[string]string{"listener": "hosting", "sub_account": "bob"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"btcagent_subaccounts", map[string]string{"listener": "hosting"}, 2},
		{"btcagent_subaccount_miners", alice, 3},
		{"btcagent_subaccount_miners", bob, 2},
		{"btcagent_subaccount_shares_accepted_total", alice, 3 * farmShares},
		{"btcagent_subaccount_shares_rejected_total", bob, 0},
		{"btcagent_subaccount_refusals_total", map[string]string{"listener": "hosting", "reason": "no_sub_account"}, 1},
		{"btcagent_subaccount_refusals_total", map[string]string{"listener": "hosting", "reason": "cap_reached"}, 0},
	} {
		if v := value(c.name, c.labels); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if v := value("btcagent_subaccount_hashrate_hashes_per_second", alice); v <= 0 {
		t.Errorf("alice's hashrate %v", v)
	}
}

// A multi-user listener's card in a real browser lists its sub-accounts
// with the numbers the API serves.
func TestDashboardSubAccounts(t *testing.T) {
	chromium(t)
	f := newMultiUserFarm(t)
	es := elements(renderDOM(t, f.base+"/"))
	alice := fieldsIn(es, "data-sub-account", "alice") // up to bob's row
	bob := fieldsIn(es, "data-sub-account", "bob")
	if alice["miners"] != "3" || alice["accepted"] != "6" || alice["rejected"] != "0" || alice["links"] != "1" || numAttr(t, "alice hashrate", alice["hashrate"]) <= 0 {
		t.Errorf("alice's row: %v", alice)
	}
	if bob["miners"] != "2" || bob["links"] != "1" {
		t.Errorf("bob's row: %v", bob)
	}
}
