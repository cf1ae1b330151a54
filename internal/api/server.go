// Package api is btcagent's HTTP side: Prometheus metrics at /metrics, a
// read-only JSON API under /api/v1/, and a dashboard at / made of embedded
// static files (no build step, no CDN: farms are often offline).
//
// Everything is computed when a request arrives, from the atomic counters
// the actors publish (package stats) and one snapshot request per listener
// coordinator; nothing here costs anything per share. The only state of its
// own is a ring of per-minute samples for the hashrate chart.
//
// The server binds to loopback unless configured otherwise. With a token
// configured every endpoint requires "Authorization: Bearer <token>"; the
// dashboard may instead be opened once as /?token=<token>, which sets a
// cookie derived from the token. No pool password or miner password is ever
// held by the agent's stats, so none can leak through this package.
package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
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
	HistoryInterval time.Duration // hashrate chart resolution; default 1 minute
	HistorySize     int           // samples kept; default 1440 (24 hours of minutes)
	SnapshotTimeout time.Duration // per coordinator; default 2 s
}

// Server serves the metrics, the API and the dashboard.
type Server struct {
	opts     Options
	log      *logrus.Logger
	limiter  *logging.RateLimited
	token    atomic.Pointer[tokenState]
	registry *prometheus.Registry
	hist     *history
	handler  http.Handler
	started  time.Time
	reloads  reloadStatus

	mu      sync.Mutex // guards srv, ln, done
	srv     *http.Server
	ln      net.Listener
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
	s := &Server{opts: opts, log: opts.Log, started: time.Now(), hist: newHistory(opts.HistorySize, opts.HistoryInterval)}
	s.limiter = logging.NewRateLimited(opts.Log, time.Minute)
	s.SetToken(opts.Token)
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(
		newCollector(s),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{ErrorLog: promLog{s.log}, ErrorHandling: promhttp.ContinueOnError}))
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("http: %w", err)
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

// promLog adapts the logger for promhttp's collection errors.
type promLog struct{ log *logrus.Logger }

func (p promLog) Println(v ...any) { p.log.Warn(append([]any{"metrics: "}, v...)...) }

// ---- authentication ----

// tokenState holds what requests are compared against: the SHA-256 of the
// token (so that the comparison takes the same time whatever the length of
// the guess) and the cookie value, an HMAC of a fixed label under the token,
// so the browser never stores the token itself and changing the token
// invalidates old cookies.
type tokenState struct {
	sum    [sha256.Size]byte
	cookie string
}

func (t *tokenState) empty() bool { return t == nil }

const cookieName = "btcagent_session"

// SetToken replaces the token ("" turns authentication off). Safe to call
// while serving, which is how a reload applies a new http_token.
func (s *Server) SetToken(token string) {
	if token == "" {
		s.token.Store(nil)
		return
	}
	mac := hmac.New(sha256.New, []byte(token))
	mac.Write([]byte("btcagent dashboard session v1"))
	s.token.Store(&tokenState{sum: sha256.Sum256([]byte(token)), cookie: hex.EncodeToString(mac.Sum(nil))})
}

func (t *tokenState) matchToken(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1
}

func (t *tokenState) allowed(r *http.Request) bool {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, cred, ok := strings.Cut(h, " ")
		return ok && strings.EqualFold(scheme, "Bearer") && t.matchToken(strings.TrimSpace(cred))
	}
	if c, err := r.Cookie(cookieName); err == nil {
		return subtle.ConstantTimeCompare([]byte(c.Value), []byte(t.cookie)) == 1
	}
	return false
}

// secure wraps every response with the security headers and, when a token
// is set, authentication. Only GET and HEAD exist: the API is read-only,
// which also leaves nothing for a forged cross-site request to do.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "read-only API: only GET and HEAD")
			return
		}
		t := s.token.Load()
		if t == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/" && r.URL.Query().Has("token") {
			s.login(w, r, t)
			return
		}
		if !t.allowed(r) {
			s.limiter.Warn("http-unauthorized", logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path}, "http: request without a valid token refused")
			h.Set("WWW-Authenticate", `Bearer realm="btcagent"`)
			if r.URL.Path == "/" {
				h.Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprintln(w, "btcagent: this dashboard needs the http_token from the agent's config: open /?token=<http_token> once.")
				return
			}
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// login turns /?token=... into a cookie and redirects to / so the token
// leaves the address bar and the browser history.
func (s *Server) login(w http.ResponseWriter, r *http.Request, t *tokenState) {
	if !t.matchToken(r.URL.Query().Get("token")) {
		s.limiter.Warn("http-bad-token", logrus.Fields{"remote": r.RemoteAddr}, "http: dashboard login with a wrong token")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "btcagent: wrong token.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: t.cookie, Path: "/", MaxAge: 30 * 24 * 3600,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

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
