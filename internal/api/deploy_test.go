package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/internal/testenv"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The ops files in deploy/ are checked against the code that serves the
// metrics, so that an alert or a Grafana panel cannot silently point at a
// metric that was renamed.

const deployDir = "../../deploy"

// promtool finds Prometheus's rule checker (Debian package prometheus), or
// skips: CI installs it (.ci/run).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (apt-get install prometheus); the alert rule checks need it")
	}
	return p
}

// deploy/prometheus/alerts.yml is valid for Prometheus, and its unit tests
// (alerts_test.yml) pass: each alert fires on the series it is meant for.
func TestPrometheusAlertRules(t *testing.T) {
	bin := promtool(t)
	dir := filepath.Join(deployDir, "prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var metricRE = regexp.MustCompile(`\bbtcagent_[a-zA-Z0-9_]+`)

// metricNames returns every btcagent metric named in file.
func metricNames(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range metricRE.FindAllString(string(data), -1) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// scrapeFamilies reads /metrics of a running agent.
func scrapeFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	f := newFarm(t, "")
	// One share on a job that does not exist, so that the per-reason reject
	// series exists too.
	if err := f.sim.SubmitRaw(0, []byte(`{"id":9001,"method":"mining.submit","params":["john.w000","nojob","0000000000000000","00000000","00000000"]}`)); err != nil {
		t.Fatal(err)
	}
	st := f.agent.Listeners()[0].Stats
	deadline := time.Now().Add(testenv.Timeout)
	for len(st.RejectCounts()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the bad share was never rejected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	code, body := f.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// exported says whether name is a series of the scrape: a family, or a
// histogram's _bucket, _sum or _count.
func exported(fams map[string]*dto.MetricFamily, name string) bool {
	if fams[name] != nil {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f := fams[base]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}

// Every metric the Grafana dashboard and the alert rules query exists in
// the agent's /metrics.
func TestDeployMetricsExported(t *testing.T) {
	dash := filepath.Join(deployDir, "grafana", "btcagent.json")
	var parsed struct {
		Panels []json.RawMessage `json:"panels"`
	}
	data, err := os.ReadFile(dash)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &parsed); err != nil || len(parsed.Panels) == 0 {
		t.Fatalf("%s: not a dashboard with panels (%v)", dash, err)
	}
	fams := scrapeFamilies(t)
	for _, file := range []string{dash, filepath.Join(deployDir, "prometheus", "alerts.yml")} {
		names := metricNames(t, file)
		if len(names) < 5 {
			t.Fatalf("%s: only %d metric names found", file, len(names))
		}
		for _, n := range names {
			if !exported(fams, n) {
				t.Errorf("%s queries %s, which /metrics does not export", filepath.Base(file), n)
			}
		}
	}
	// The farm-watch statuses are there for every listener, zeros included.
	fam := fams["btcagent_farm_miners"]
	if fam == nil || len(fam.Metric) != 2*4 {
		t.Fatalf("btcagent_farm_miners: %v", fam)
	}
}
