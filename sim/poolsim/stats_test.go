package poolsim

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

func TestStatsFileAndHTTP(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool.json")
	p := startPool(t, Config{Validate: ValidateStructural, StatsFile: file, StatsAddr: "127.0.0.1:0"})
	connectMiner(t, p, "demo.rig")

	resp, err := http.Get("http://" + p.StatsAddr() + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats: %d %v", resp.StatusCode, err)
	}
	var s Stats
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if s.Addr != p.Addr() || s.Totals.Connections != 1 || s.Workers["demo.rig"].Name != "demo.rig" {
		t.Fatalf("stats over HTTP: %+v", s.Totals)
	}
	if runtime.GOOS == "linux" && (len(s.TCP) != 1 || s.TCP[0].SegsIn == 0) {
		t.Fatalf("TCP info over HTTP: %+v", s.TCP)
	}

	// Close writes the file one last time, after the connections are gone.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f Stats
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode stats file: %v", err)
	}
	if f.Addr != s.Addr || f.Totals.Connections != 0 || f.Totals.ConnsClosed != 1 || len(f.Closed) != 1 {
		t.Fatalf("final stats file: %+v", f.Totals)
	}
}

func TestTCPInfo(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_INFO is read on Linux only")
	}
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.ping("settled")
	st := p.Stats()
	info := p.TCPInfo()
	if len(info) != 1 || !info[0].Agent || info[0].ID != st.Conns[0].ID {
		t.Fatalf("TCP info %+v", info)
	}
	ti := info[0]
	if ti.SegsIn == 0 || ti.SegsOut == 0 || ti.BytesReceived < st.Conns[0].BytesIn || ti.BytesAcked == 0 {
		t.Fatalf("TCP info %+v against application bytes in %d", ti, st.Conns[0].BytesIn)
	}
}

// Application byte counters match what the client wrote and read. The
// pool sends nothing unasked for an hour, so after the four handshake
// lines the counters are final and exact equality cannot race with later
// output.
func TestByteCounters(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	c := dial(t, p)
	lines := []string{
		`{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1"]}`,
		`{"id":2,"method":"mining.authorize","params":["demo.rig","x"]}`,
	}
	c.send(lines...)
	in := uint64(len(lines[0]) + len(lines[1]) + 2)
	var out uint64
	for range 4 {
		out += uint64(len(c.line()) + 1)
	}
	st := waitFor(t, p, "byte counters", func(s *Stats) bool {
		return len(s.Conns) == 1 && s.Conns[0].BytesIn == in && s.Conns[0].BytesOut == out
	})
	if cs := st.Conns[0]; cs.LinesIn != 2 || cs.LinesOut != 4 {
		t.Fatalf("lines in/out %d/%d", cs.LinesIn, cs.LinesOut)
	}
}

// WaitFor wakes up when only a byte counter changed: output written after
// the pool's state change was signalled (a delayed reply here, a flush
// finishing after the handler returned in general) must still be seen.
func TestWaitForSeesBytesOut(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	p.SetReplyDelay(100 * time.Millisecond)
	c := dial(t, p)
	line := `{"id":1,"method":"mining.subscribe","params":["cgminer/4.11.1"]}`
	c.send(line)
	// The subscribe is handled (and signalled) at once; its reply leaves
	// 100ms later, and nothing else happens on the pool meanwhile.
	waitFor(t, p, "the subscribe", func(s *Stats) bool { return len(s.Conns) == 1 && s.Conns[0].LinesIn == 1 })
	st := waitFor(t, p, "bytes out", func(s *Stats) bool { return len(s.Conns) == 1 && s.Conns[0].BytesOut > 0 })
	if n := uint64(len(c.line()) + 1); st.Conns[0].BytesOut != n {
		t.Fatalf("bytes out %d, the client read %d", st.Conns[0].BytesOut, n)
	}
}

func TestStatsAreDeepCopies(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	a := connectAgent(t, p, "demo", true)
	a.register(1, "w1")
	n := p.CurrentJob()
	a.submit(codec.Share{JobID: jobID(t, n) + 1, SessionID: 1, NTime: n.NTimeValue(), HasTime: true})
	a.expectVerdict(0, codec.StatusJobNotFoundOrStale)
	s := p.Stats()
	s.Totals.Rejected[codec.StatusJobNotFoundOrStale] = 99
	s.Conns[0].Rejected[codec.StatusJobNotFoundOrStale] = 99
	s.Conns[0].FramesIn["REGISTER_WORKER"] = 99
	w := s.Workers["demo.w1"]
	w.Rejected[codec.StatusJobNotFoundOrStale] = 99
	delete(s.Workers, "demo.w1")
	n.Branches[0] = "changed"

	s2 := p.Stats()
	if s2.Totals.Rejected[21] != 1 || s2.Conns[0].Rejected[21] != 1 || s2.Conns[0].FramesIn["REGISTER_WORKER"] != 1 ||
		s2.Workers["demo.w1"].Rejected[21] != 1 {
		t.Fatalf("snapshot aliases pool state: %+v", s2.Totals)
	}
	if p.CurrentJob().Branches[0] == "changed" {
		t.Fatal("CurrentJob aliases pool state")
	}
}

func TestWaitFor(t *testing.T) {
	p := startPool(t, Config{Validate: ValidateStructural})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		done <- p.WaitFor(ctx, func(s *Stats) bool { return s.Totals.JobsSent >= 3 })
	}()
	p.NewJob(false)
	p.NewJob(false)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := p.WaitFor(ctx, func(*Stats) bool { return false }); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("cancelled wait returned %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Validate: "fast"},
		{EN2Size: 9},
		{DefaultDiff: 1000},
		{FixedDiff: 3},
		{JSONDiff: -1},
		{Listen: "256.0.0.1:0"},
		{Listen: "127.0.0.1:0", SV2Listen: "127.0.0.1:0", SV2AuthoritySecret: "not-a-key"},
		{Listen: "127.0.0.1:0", SV2Listen: "256.0.0.1:0"},
	} {
		if p, err := Start(cfg); err == nil {
			p.Close()
			t.Errorf("Start(%+v) succeeded", cfg)
		}
	}
}

// Every flag is documented and lands in its Config field.
func TestRegisterFlags(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("poolsim", flag.ContinueOnError)
	finish := cfg.RegisterFlags(fs)
	args := []string{
		"-listen", "127.0.0.1:0", "-notify-interval", "5s", "-block-every", "4", "-branches", "3",
		"-validate", "structural", "-version-mask", "0x00ffe000", "-en2-size", "4", "-default-diff", "64",
		"-fixed-diff", "128", "-json-diff", "0.001", "-vardiff", "-share-target", "3s", "-subres=false",
		"-stats-file", "x.json", "-stats-interval", "1s", "-stats-addr", "127.0.0.1:0", "-write-timeout", "2s", "-seed", "7",
		"-sv2-listen", "127.0.0.1:0", "-sv2-authority-secret", "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n", "-sv2-cert-validity", "10m",
	}
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	finish()
	want := Config{
		Listen: "127.0.0.1:0", NotifyInterval: 5 * time.Second, BlockEvery: 4, Branches: 3,
		Validate: ValidateStructural, VersionMask: 0x00ffe000, EN2Size: 4, DefaultDiff: 64, FixedDiff: 128,
		JSONDiff: 0.001, Vardiff: true, ShareTarget: 3 * time.Second, NoSubres: true, StatsFile: "x.json",
		StatsInterval: time.Second, StatsAddr: "127.0.0.1:0", WriteTimeout: 2 * time.Second, Seed: 7,
		SV2Listen: "127.0.0.1:0", SV2AuthoritySecret: "mkDLTBBRxdBv998612qipDYoTK3YUrqLe8uWw7gu3iXbSrn2n", SV2CertValidity: 10 * time.Minute,
	}
	if cfg != want {
		t.Fatalf("flags gave\n%+v\nwant\n%+v", cfg, want)
	}
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if len(f.Usage) < 20 {
			t.Errorf("flag -%s is not documented: %q", f.Name, f.Usage)
		}
	})
	if n != len(args)/2+1 { // -vardiff has no value; -subres=false is one arg
		t.Errorf("%d flags bound", n)
	}
}
