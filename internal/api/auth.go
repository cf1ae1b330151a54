package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// tokenState holds what requests are compared against: the SHA-256 of the
// token (so that the comparison takes the same time whatever the length of
// the guess) and the key that signs session cookies. A cookie is its issue
// time and an HMAC of that time under the token, so the browser never
// stores the token itself, changing the token invalidates old cookies, and
// a stolen cookie stops working after sessionMaxAge even if the token stays.
type tokenState struct {
	sum [sha256.Size]byte
	key []byte
}

func (t *tokenState) empty() bool { return t == nil }

const (
	cookieName    = "btcagent_session"
	sessionMaxAge = 30 * 24 * time.Hour
	// cookieSkew tolerates a clock stepped back after a cookie was issued.
	cookieSkew = 5 * time.Minute
)

// SetToken replaces the token ("" turns authentication off). Safe to call
// while serving, which is how a reload applies a new http_token.
func (s *Server) SetToken(token string) {
	if token == "" {
		s.token.Store(nil)
		return
	}
	s.token.Store(&tokenState{sum: sha256.Sum256([]byte(token)), key: []byte(token)})
}

func (t *tokenState) matchToken(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], t.sum[:]) == 1
}

func (t *tokenState) cookieMAC(issued int64) string {
	mac := hmac.New(sha256.New, t.key)
	mac.Write([]byte("btcagent dashboard session v2\x00" + strconv.FormatInt(issued, 10)))
	return hex.EncodeToString(mac.Sum(nil))
}

// cookie is the session cookie value for a login at issued.
func (t *tokenState) cookie(issued time.Time) string {
	sec := issued.Unix()
	return strconv.FormatInt(sec, 10) + "." + t.cookieMAC(sec)
}

// validCookie checks the signature first, so that nothing about the
// cookie's age is revealed for a forged one.
func (t *tokenState) validCookie(v string, now time.Time) bool {
	ts, mac, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || subtle.ConstantTimeCompare([]byte(mac), []byte(t.cookieMAC(sec))) != 1 {
		return false
	}
	issued := time.Unix(sec, 0)
	return now.Sub(issued) <= sessionMaxAge && issued.Sub(now) <= cookieSkew
}

// authorize decides a request when a token is set; it has answered the
// request itself when it returns false.
//
// A bearer token is a guess until proven right, so each one costs an
// attempt from the client's throttle budget before it is compared, and a
// right one gives it back: concurrent guesses cannot overtake the count,
// and a scraper with the right token never runs out. A cookie is checked
// without the throttle: guessing a 256-bit HMAC is hopeless, and this keeps
// a logged-in dashboard working while another program on the same host
// burns that host's budget.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, t *tokenState) bool {
	now := s.now()
	if h := r.Header.Get("Authorization"); h != "" {
		key := clientKey(r.RemoteAddr)
		b, wait := s.throttle.take(key, now)
		if b == nil {
			s.tooMany(w, r, wait)
			return false
		}
		scheme, cred, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && t.matchToken(strings.TrimSpace(cred)) {
			s.throttle.refund(key, b, now)
			return true
		}
		s.unauthorized(w, r, "missing or wrong bearer token")
		return false
	}
	if c, err := r.Cookie(cookieName); err == nil && t.validCookie(c.Value, now) {
		return true
	}
	s.unauthorized(w, r, "missing or wrong bearer token")
	return false
}

// unauthorized answers 401 and closes the connection: a client without the
// token has no reason to keep a socket (and a connection slot) open.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	s.limiter.Warn("http-unauthorized", logrus.Fields{"remote": r.RemoteAddr, "path": r.URL.Path}, "http: request without a valid token refused")
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("WWW-Authenticate", `Bearer realm="btcagent"`)
	if r.URL.Path == "/" {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "btcagent: this dashboard needs the http_token from the agent's config: open /?token=<http_token> once.")
		return
	}
	writeError(w, http.StatusUnauthorized, msg)
}

// tooMany answers a client that has used up its budget of wrong tokens.
func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, wait time.Duration) {
	s.limiter.Warn("http-throttled", logrus.Fields{"remote": r.RemoteAddr}, "http: too many wrong tokens from this address; refusing its attempts for a while")
	h := w.Header()
	h.Set("Connection", "close")
	h.Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	writeError(w, http.StatusTooManyRequests, "too many wrong tokens from this address; retry later")
}

// login turns /?token=... into a cookie and redirects to / so the token
// leaves the address bar and the browser history. It spends the throttle
// budget like a bearer token.
func (s *Server) login(w http.ResponseWriter, r *http.Request, t *tokenState) {
	now := s.now()
	key := clientKey(r.RemoteAddr)
	b, wait := s.throttle.take(key, now)
	if b == nil {
		s.tooMany(w, r, wait)
		return
	}
	if !t.matchToken(r.URL.Query().Get("token")) {
		s.limiter.Warn("http-bad-token", logrus.Fields{"remote": r.RemoteAddr}, "http: dashboard login with a wrong token")
		w.Header().Set("Connection", "close")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, "btcagent: wrong token.")
		return
	}
	s.throttle.refund(key, b, now)
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: t.cookie(now), Path: "/", MaxAge: int(sessionMaxAge / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https",
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// secure wraps every response with the security headers, the Host check
// and, when a token is set, authentication. Only GET and HEAD exist: the API
// is read-only, which also leaves nothing for a forged cross-site request to
// do.
func (s *Server) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		if !s.hostAllowed(r) {
			s.misdirected(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "read-only API: only GET and HEAD")
			return
		}
		if t := s.token.Load(); t != nil {
			if r.URL.Path == "/" && r.URL.Query().Has("token") {
				s.login(w, r, t)
				return
			}
			if !s.authorize(w, r, t) {
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
