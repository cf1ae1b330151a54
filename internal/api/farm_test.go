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
	farmDiff      = 0.00001 // the pool's difficulty (testenv.Pool's default, no vardiff)
)

func newFarm(t *testing.T, token string) *farm {
	t.Helper()
	return newFarmWith(t, token, nil)
}

// newFarmWith lets a test adjust the server's options before it starts.
func newFarmWith(t *testing.T, token string, adjust func(*Options)) *farm {
	t.Helper()
	f := &farm{token: token, logBuf: &testenv.SyncBuffer{}}
	f.pool = testenv.Pool(t, poolsim.Config{JSONDiff: farmDiff})
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
	a, err := agent.New(cfg, log, agent.Options{TickInterval: 200 * time.Millisecond, Socket: testenv.Socket})
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

// poolBytes is what the pool simulator wrote to and read from the links
// authorized as user: the independent count the agent's byte counters must
// equal.
func (f *farm) poolBytes(user string) (out, in uint64) {
	for _, c := range f.pool.Stats().Conns {
		if c.User == user {
			out += c.BytesOut
			in += c.BytesIn
		}
	}
	return out, in
}

// settle waits until the agent's byte counters of every listener have
// caught up with the pool's (the last submits may still be in flight when
// the miners have their verdicts). Nothing signals that, so it polls.
func (f *farm) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := true
		for _, l := range f.agent.Listeners() {
			out, in := f.poolBytes(l.Cfg.PoolUser)
			if uint64(l.Stats.BytesDown.Load()) != out || uint64(l.Stats.BytesUp.Load()) != in {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for _, l := range f.agent.Listeners() {
				out, in := f.poolBytes(l.Cfg.PoolUser)
				t.Errorf("%s: agent counted %d down, %d up; the pool wrote %d, read %d", l.Cfg.Name, l.Stats.BytesDown.Load(), l.Stats.BytesUp.Load(), out, in)
			}
			t.FailNow()
		}
		time.Sleep(10 * time.Millisecond)
	}
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
