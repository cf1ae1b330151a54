package api

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"
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
