// Package api is btcagent's HTTP side: Prometheus metrics at /metrics, a
// read-only JSON API under /api/v1/, and a dashboard at / made of embedded
// static files (no build step, no CDN: farms are often offline).
//
// Everything is computed when a request arrives, from the atomic counters
// the actors publish (package stats) and one snapshot request per listener
// coordinator; nothing here costs anything per share. The only state of its
// own is a ring of per-minute samples for the hashrate chart.
//
// The server binds to loopback unless configured otherwise, and answers
// only to Host names that name it (hosts.go: DNS rebinding). With a token
// configured every endpoint requires "Authorization: Bearer <token>"; the
// dashboard may instead be opened once as /?token=<token>, which sets a
// signed, expiring session cookie (auth.go). Wrong tokens are throttled per
// client address (throttle.go) and concurrent connections are capped
// (connlimit.go). No pool password or miner password is ever held by the
// agent's stats, so none can leak through this package.
package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/internal/farmwatch"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
)

// Source is what the server reports on; *agent.Agent implements it. The
// listener list is fetched on every request because a reload may change it.
type Source interface {
	Listeners() []*agent.Listener
	Sessions() int
	Farm() *farmwatch.Watcher // known miners and their statuses; may be nil
}

// Options configure a Server.
type Options struct {
	Source          Source
	Version         string
	Token           string // "" = no authentication
	Log             *logrus.Logger
	HistoryInterval time.Duration    // hashrate chart resolution; default 1 minute
	HistorySize     int              // samples kept; default 1440 (24 hours of minutes)
	SnapshotTimeout time.Duration    // per coordinator; default 2 s
	AllowedHosts    []string         // http_allowed_hosts: Host names answered besides loopback and the listen host
	MaxConns        int              // concurrent connections; default 64
	Now             func() time.Time // clock for sessions and the throttle; default time.Now (tests)
	AuthBurst       int              // wrong tokens a client address may send at once; default 10
	AuthRefill      time.Duration    // then one more per AuthRefill; default 6 s
}

// The default failed-token budget per client address: authBurst wrong
// tokens at once, then one more every authRefill. A 16-character token
// stays far out of reach (about 14,000 guesses a day); an operator who
// mistypes a few times is not held up, and a scraper with a stale token
// every 15 s keeps getting 401, not 429.
const (
	authBurst     = 10
	authRefill    = 6 * time.Second
	authClientMax = 4096 // addresses tracked; see throttle
)

// Server serves the metrics, the API and the dashboard.
type Server struct {
	opts     Options
	log      *logrus.Logger
	limiter  *logging.RateLimited
	token    atomic.Pointer[tokenState]
	throttle *throttle
	now      func() time.Time
	hosts    atomic.Pointer[hostPolicy]
	maxConns atomic.Int64
	registry *prometheus.Registry
	hist     *history
	handler  http.Handler
	started  time.Time
	reloads  reloadStatus

	hostMu       sync.Mutex // guards allowedHosts, listenHost
	allowedHosts []string
	listenHost   string

	mu      sync.Mutex // guards srv, ln, done
	srv     *http.Server
	ln      *limitListener
	done    chan struct{} // closes the history sampler
	sampler sync.WaitGroup
}

// New builds a server; Start binds it.
func New(opts Options) *Server {
	if opts.HistoryInterval <= 0 {
		opts.HistoryInterval = time.Minute
	}
	if opts.HistorySize <= 0 {
		opts.HistorySize = 1440
	}
	if opts.SnapshotTimeout <= 0 {
		opts.SnapshotTimeout = 2 * time.Second
	}
	if opts.Log == nil {
		opts.Log = logrus.New()
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AuthBurst <= 0 {
		opts.AuthBurst = authBurst
	}
	if opts.AuthRefill <= 0 {
		opts.AuthRefill = authRefill
	}
	s := &Server{opts: opts, log: opts.Log, started: time.Now(), hist: newHistory(opts.HistorySize, opts.HistoryInterval), now: opts.Now}
	s.limiter = logging.NewRateLimited(opts.Log, time.Minute)
	s.throttle = newThrottle(opts.AuthBurst, opts.AuthRefill, authClientMax)
	s.SetToken(opts.Token)
	s.SetAllowedHosts(opts.AllowedHosts)
	s.maxConns.Store(int64(opts.MaxConns))
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", noStore(promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: promLog{s.log}, ErrorHandling: promhttp.ContinueOnError})))
	mux.HandleFunc("GET /api/v1/summary", s.handleSummary)
	mux.HandleFunc("GET /api/v1/miners", s.handleMiners)
	mux.HandleFunc("GET /api/v1/upstreams", s.handleUpstreams)
	mux.HandleFunc("GET /api/v1/history", s.handleHistory)
	mux.HandleFunc("GET /api/v1/farm", s.handleFarm)
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	mux.Handle("GET /", staticHandler())
	s.handler = s.secure(mux)
	return s
}

// Handler is the whole HTTP surface with authentication applied.
func (s *Server) Handler() http.Handler { return s.handler }

// Start binds addr and serves in the background; it also starts the history
// sampler the first time. Calling it again with another address moves the
// server: the new address is bound first, so a failure leaves the old one
// serving.
func (s *Server) Start(addr string) error {
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	ln := newLimitListener(raw, int(s.maxConns.Load()))
	if host, _, err := net.SplitHostPort(addr); err == nil {
		s.hostMu.Lock()
		s.listenHost = host
		s.rebuildHosts()
		s.hostMu.Unlock()
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	s.mu.Lock()
	oldSrv := s.srv
	s.srv, s.ln = srv, ln
	if s.done == nil {
		s.done = make(chan struct{})
		s.sampler.Add(1)
		go s.sampleLoop(s.done)
	}
	s.mu.Unlock()
	if oldSrv != nil {
		shutdown(oldSrv)
	}
	if !isLoopback(ln.Addr()) && s.token.Load().empty() {
		s.log.WithField("addr", ln.Addr().String()).Warn("http: serving beyond loopback without http_token; anyone on the network can read miner and pool details")
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.WithError(err).Error("http: server stopped")
		}
	}()
	return nil
}

// SetMaxConns changes the cap on concurrent connections (http_max_connections)
// while serving; connections above a lowered cap finish normally.
func (s *Server) SetMaxConns(n int) {
	if n <= 0 {
		n = 64
	}
	s.maxConns.Store(int64(n))
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.setMax(n)
	}
}

// Addr is the bound address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops serving and the sampler.
func (s *Server) Close() {
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv, s.ln, s.done = nil, nil, nil
	s.mu.Unlock()
	if srv != nil {
		shutdown(srv)
	}
	if done != nil {
		close(done)
		s.sampler.Wait()
	}
	s.limiter.Flush()
}

func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		_ = srv.Close()
	}
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// noStore keeps responses that describe the farm out of browser and proxy
// caches, as writeJSON does for the API.
func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// promLog adapts the logger for promhttp's collection errors.
type promLog struct{ log *logrus.Logger }

func (p promLog) Println(v ...any) { p.log.Warn(append([]any{"metrics: "}, v...)...) }

// ---- reloads ----

type reloadStatus struct {
	mu      sync.Mutex
	ok      int64
	failed  int64
	last    time.Time // last successful reload
	lastTry time.Time
	lastErr string
}

// RecordReload notes the outcome of a config reload for /metrics and the
// summary, so that an operator can see a refused reload without the log.
func (s *Server) RecordReload(at time.Time, err error) {
	r := &s.reloads
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastTry = at
	if err != nil {
		r.failed++
		r.lastErr = err.Error()
		return
	}
	r.ok++
	r.last = at
	r.lastErr = ""
}
