package upstream_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

const wait = 10 * time.Second

// logRec keeps every warning the agent logs, so tests can assert on the
// one-line explanations operators see.
type logRec struct {
	mu    sync.Mutex
	lines []string
	ch    chan struct{}
}

func (r *logRec) Levels() []logrus.Level { return logrus.AllLevels }

func (r *logRec) Fire(e *logrus.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	line := e.Message
	for k, v := range e.Data {
		line += fmt.Sprintf(" %s=%v", k, v)
	}
	r.lines = append(r.lines, line)
	if r.ch != nil {
		close(r.ch)
		r.ch = nil
	}
	return nil
}

// waitFor blocks until a logged line contains all the parts.
func (r *logRec) waitFor(t *testing.T, parts ...string) string {
	t.Helper()
	deadline := time.After(testenv.Timeout)
	for {
		r.mu.Lock()
		for _, l := range r.lines {
			ok := true
			for _, p := range parts {
				if !strings.Contains(l, p) {
					ok = false
					break
				}
			}
			if ok {
				r.mu.Unlock()
				return l
			}
		}
		if r.ch == nil {
			r.ch = make(chan struct{})
		}
		ch := r.ch
		r.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no log line with %q", parts)
		}
	}
}

// startAgent is testenv.Agent with a logger whose lines the test can read.
func startAgent(t *testing.T, cfg *config.Config) (*agent.Agent, *logRec) {
	t.Helper()
	log := testenv.Logger(t)
	log.SetLevel(logrus.InfoLevel)
	if !testing.Verbose() {
		log.SetOutput(io.Discard)
	}
	rec := &logRec{}
	log.AddHook(rec)
	t.Cleanup(func() {
		if t.Failed() {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for _, l := range rec.lines {
				t.Log("agent: " + l)
			}
		}
	})
	a, err := agent.New(cfg, log, agent.Options{TickInterval: 200 * time.Millisecond, Socket: testenv.Socket})
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	if err := a.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	t.Cleanup(a.Stop)
	if err := a.WaitReady(testenv.Ctx(t), 1); err != nil {
		t.Fatalf("agent never got a ready pool link: %v", err)
	}
	return a, rec
}

// withProtocols sets the protocol of each pool of the first listener.
func withProtocols(cfg *config.Config, protos ...string) *config.Config {
	for i, p := range protos {
		cfg.Listen[0].Pools[i].Protocol = p
	}
	return cfg
}

func sumRejected(s *minersim.Summary) int64 {
	var n int64
	for _, v := range s.SharesRejected {
		n += v
	}
	return n
}

func poolRejected(s *poolsim.Stats) uint64 {
	var n uint64
	for _, v := range s.Totals.Rejected {
		n += v
	}
	return n
}

// plainConns counts the pool's open connections that are not agent links.
func plainConns(s *poolsim.Stats) int {
	n := 0
	for _, c := range s.Conns {
		if !c.Agent && c.Authorized {
			n++
		}
	}
	return n
}

// allAnswered waits until every miner has submitted want shares and all of
// them are answered, then checks that all were accepted.
func allAccepted(t *testing.T, ctx context.Context, sim *minersim.Sim, want int64) *minersim.Summary {
	t.Helper()
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted+sumRejected(s) >= want }); err != nil {
		t.Fatalf("shares not answered: %v; %+v", err, sim.Stats())
	}
	s := sim.Stats()
	if s.SharesAccepted != want || s.SharesUnanswered != 0 || len(s.SharesRejected) != 0 {
		t.Fatalf("accepted %d of %d, rejected %v, unanswered %d", s.SharesAccepted, want, s.SharesRejected, s.SharesUnanswered)
	}
	return &s
}
