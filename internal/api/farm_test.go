package api

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// A farm is the known scenario the API tests look at: a pool simulator, an
// agent with two listeners ("main" with three hashing miners that stop after
// two accepted shares each, "spare" with none), and the HTTP server.
type farm struct {
	pool   *poolsim.Pool
	agent  *agent.Agent
	sim    *minersim.Sim
	srv    *Server
	base   string
	token  string
	logBuf *testenv.SyncBuffer
}

const (
	farmMiners    = 3
	farmShares    = 2
	minerPassword = "hunter2-miner-secret"
	poolUser      = "farm"
)

func newFarm(t *testing.T, token string) *farm {
	t.Helper()
	return newFarmWith(t, token, nil)
}

// newFarmWith lets a test adjust the server's options before it starts.
func newFarmWith(t *testing.T, token string, adjust func(*Options)) *farm {
	t.Helper()
	f := &farm{token: token, logBuf: &testenv.SyncBuffer{}}
	f.pool = testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, poolUser, f.pool.Addr())
	cfg.Listen[0].Name = "main"
	spare := testenv.Config(t, "spare-user", f.pool.Addr()).Listen[0]
	spare.Name = "spare"
	cfg.Listen = append(cfg.Listen, spare)

	// The agent logs at debug level into a buffer, so that tests can check
	// that no miner password reaches the log either.
	log := logrus.New()
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(f.logBuf)
	a, err := agent.New(cfg, log, agent.Options{TickInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	f.agent = a
	ctx := testenv.Ctx(t)
	if err := a.WaitReady(ctx, cfg.Upstream.Connections); err != nil {
		t.Fatalf("pool links not ready: %v", err)
	}
	f.sim = testenv.Miners(t, minersim.Config{
		Target: a.Listeners()[0].Addr().String(), Miners: farmMiners, Hash: true, HashThreads: 2,
		MaxSharesPerMiner: farmShares, Password: minerPassword, User: "john",
	})
	if err := f.sim.WaitFor(ctx, func(s *minersim.Summary) bool {
		return s.Authorized == farmMiners && s.SharesAccepted >= farmMiners*farmShares
	}); err != nil {
		t.Fatalf("miners did not get their shares accepted: %v (%+v)", err, f.sim.Stats())
	}

	opts := Options{Source: a, Version: "test", Token: token, Log: log}
	if adjust != nil {
		adjust(&opts)
	}
	f.srv = New(opts)
	if err := f.srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.srv.Close)
	f.base = "http://" + f.srv.Addr().String()
	return f
}

// get fetches path with the farm's token (if any) and returns status and body.
func (f *farm) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	return f.getAuth(t, path, f.token)
}

func (f *farm) getAuth(t *testing.T, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// getJSON fetches path, requires 200 and decodes into v.
func (f *farm) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	code, body := f.get(t, path)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", path, err, body)
	}
}
