package api

import (
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
)

// chromium finds a headless-capable Chromium, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium); the dashboard browser test needs it")
	return ""
}

// renderDOM loads url in headless Chromium, lets the page's scripts run
// (virtual time: network fetches complete, timers up to the budget fire) and
// returns the DOM as serialised after that.
func renderDOM(t *testing.T, url string) string {
	t.Helper()
	bin := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=5000", "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("chromium: %v\n%s", err, stderr)
	}
	return string(out)
}

var (
	tagRE  = regexp.MustCompile(`<[a-zA-Z][^>]*>`)
	attrRE = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)="([^"]*)"`)
)

// element is one start tag's attributes.
type element map[string]string

// elements returns the attributes of every start tag in the DOM, in order.
func elements(dom string) []element {
	var out []element
	for _, tag := range tagRE.FindAllString(dom, -1) {
		e := element{}
		for _, m := range attrRE.FindAllStringSubmatch(tag, -1) {
			e[m[1]] = m[2]
		}
		out = append(out, e)
	}
	return out
}

// byID finds the element with id.
func byID(es []element, id string) element {
	for _, e := range es {
		if e["id"] == id {
			return e
		}
	}
	return nil
}

// fieldsIn returns data-field -> data-value of the elements after the first
// element matching scopeAttr=scopeVal, up to the next element that has
// scopeAttr at all (the next card or row).
func fieldsIn(es []element, scopeAttr, scopeVal string) map[string]string {
	out := map[string]string{}
	in := false
	for _, e := range es {
		if v, ok := e[scopeAttr]; ok {
			if in {
				break
			}
			in = v == scopeVal
			continue
		}
		if in && e["data-field"] != "" {
			out[e["data-field"]] = e["data-value"]
		}
	}
	return out
}

func numAttr(t *testing.T, what, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", what, s)
	}
	return f
}

// The dashboard, rendered by a real browser while the miners are connected,
// shows the numbers the API serves: farm totals, each listener's miners and
// accepted shares, one table row per miner with its accepted count, one row
// per pool link, and a chart drawn from the history samples. The page is
// opened through the token login, so the cookie path is exercised too.
func TestDashboardInBrowser(t *testing.T) {
	chromium(t)
	f := newFarm(t, testToken)
	// Two history points, so the chart has a line to draw.
	now := time.Now()
	f.srv.Sample(now.Add(-2 * time.Minute))
	f.srv.Sample(now.Add(-time.Minute))

	dom := renderDOM(t, f.base+"/?token="+testToken)
	es := elements(dom)
	body := func() element {
		for _, e := range es {
			if _, ok := e["data-ready"]; ok {
				return e
			}
		}
		return nil
	}()
	if body == nil || body["data-ready"] != "1" {
		t.Fatalf("dashboard did not finish loading; DOM:\n%s", dom)
	}
	if msg, ok := body["data-error"]; ok {
		t.Fatalf("dashboard reported an error: %s", msg)
	}

	var sum Summary
	f.getJSON(t, "/api/v1/summary", &sum)
	var page MinerPage
	f.getJSON(t, "/api/v1/miners?limit=1000", &page)
	var ups Upstreams
	f.getJSON(t, "/api/v1/upstreams", &ups)

	for id, want := range map[string]int64{
		"total-miners": sum.Miners, "total-authorized": sum.Authorized,
		"total-accepted": sum.Accepted, "total-rejected": sum.Rejected, "miner-total": int64(page.Total),
	} {
		e := byID(es, id)
		if e == nil {
			t.Fatalf("#%s missing", id)
		}
		if got := numAttr(t, id, e["data-value"]); got != float64(want) {
			t.Errorf("#%s shows %v, API says %d", id, got, want)
		}
	}
	if sum.Miners != farmMiners || sum.Accepted != farmMiners*farmShares {
		t.Fatalf("API summary is not the known farm: %d miners, %d accepted", sum.Miners, sum.Accepted)
	}

	for _, l := range sum.Listeners {
		got := fieldsIn(es, "data-listener", l.Name)
		for field, want := range map[string]int64{
			"miners": l.Miners, "authorized": l.Authorized, "accepted": l.Shares.Accepted,
			"rejected": l.Shares.Rejected, "upstreams-ready": int64(l.Upstreams.Ready),
		} {
			if v, ok := got[field]; !ok || numAttr(t, l.Name+" "+field, v) != float64(want) {
				t.Errorf("listener %s %s: page %q, API %d", l.Name, field, v, want)
			}
		}
	}

	rows := 0
	for _, m := range page.Miners {
		got := fieldsIn(es, "data-session", strconv.Itoa(int(m.SessionID)))
		if len(got) == 0 {
			t.Errorf("no table row for miner %s (session %d)", m.Worker, m.SessionID)
			continue
		}
		rows++
		if numAttr(t, m.Worker+" accepted", got["accepted"]) != float64(m.Accepted) {
			t.Errorf("miner %s: page accepted %s, API %d", m.Worker, got["accepted"], m.Accepted)
		}
	}
	if rows != farmMiners {
		t.Fatalf("%d miner rows, want %d", rows, farmMiners)
	}

	linkRows := 0
	for _, e := range es {
		if _, ok := e["data-slot"]; ok {
			linkRows++
			if e["data-protocol"] != "agent" {
				t.Errorf("pool link row %s/%s shows protocol %q", e["data-listener"], e["data-slot"], e["data-protocol"])
			}
		}
	}
	if linkRows != len(ups.Upstreams) {
		t.Errorf("%d pool link rows, API has %d", linkRows, len(ups.Upstreams))
	}

	chart := byID(es, "chart")
	if chart == nil || numAttr(t, "chart points", chart["data-points"]) < 3 || !regexp.MustCompile(`<svg[^>]*aria-label="Farm hashrate`).MatchString(dom) {
		t.Errorf("chart not drawn: %v", chart)
	}
}

// The offline / slow panel, rendered by a real browser: of five miners two
// stop, and once the registry calls them offline the page shows the counts
// the API serves, and one row per offline miner with its last address.
func TestDashboardOfflinePanel(t *testing.T) {
	chromium(t)
	pool := testenv.Pool(t, poolsim.Config{Validate: poolsim.ValidateStructural})
	cfg := testenv.Config(t, poolUser, pool.Addr())
	cfg.FarmWatch.SweepInterval = 100 * time.Millisecond
	cfg.FarmWatch.Grace = 500 * time.Millisecond
	cfg.FarmWatch.IdleMin = time.Minute
	a := testenv.Agent(t, cfg, agent.Options{})
	target := testenv.Addr(a)
	testenv.Miners(t, minersim.Config{Target: target, Miners: 3, WorkerPrefix: "up", ShareInterval: 200 * time.Millisecond})
	down := testenv.Miners(t, minersim.Config{Target: target, Miners: 2, WorkerPrefix: "down", ShareInterval: 200 * time.Millisecond})
	name := cfg.Listen[0].Name
	counts := func() map[farmwatch.Status]int { return a.Farm().Counts()[name] }
	deadline := time.Now().Add(testenv.Timeout)
	for counts()[farmwatch.Online] != 5 {
		if time.Now().After(deadline) {
			t.Fatalf("miners not online: %v", counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
	down.Stop()
	for counts()[farmwatch.Offline] != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("stopped miners not offline: %v", counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv := New(Options{Source: a, Version: "test", Log: testenv.Logger(t)})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	dom := renderDOM(t, "http://"+srv.Addr().String()+"/")
	es := elements(dom)
	if !regexp.MustCompile(`<body[^>]*data-ready="1"`).MatchString(dom) {
		t.Fatalf("dashboard did not finish loading; DOM:\n%s", dom)
	}
	for id, want := range map[string]int{"farm-offline": 2, "farm-online": 3, "farm-slow": 0, "farm-idle": 0} {
		e := byID(es, id)
		if e == nil {
			t.Fatalf("#%s missing", id)
		}
		if got := numAttr(t, id, e["data-value"]); got != float64(want) {
			t.Errorf("#%s shows %v, want %d", id, got, want)
		}
	}
	// The problem table ends at #problems-more; fieldsIn would run past
	// the last row into the rest of the page.
	end := slices.IndexFunc(es, func(e element) bool { return e["id"] == "problems-more" })
	if end < 0 {
		t.Fatal("#problems-more missing")
	}
	offline := a.Farm().Miners(farmwatch.Offline)
	for _, m := range offline {
		got := fieldsIn(es[:end], "data-problem", m.Worker)
		if got["status"] != "offline" || got["address"] != m.Address || !strings.HasPrefix(m.Address, "127.0.0.1:") {
			t.Errorf("row for %s: %v, want offline at %s", m.Worker, got, m.Address)
		}
	}
	rows := 0
	for _, e := range es {
		if _, ok := e["data-problem"]; ok {
			rows++
		}
	}
	if rows != 2 || len(offline) != 2 {
		t.Errorf("%d problem rows, %d offline miners; want 2", rows, len(offline))
	}
}
