package api

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
)

const testToken = "s3cret-token-for-tests"

// With a token, every endpoint needs it; the dashboard login turns
// ?token= into a cookie that then opens the API; nothing but GET/HEAD works.
func TestTokenRequired(t *testing.T) {
	// This test sends more wrong tokens than the default throttle allows.
	f := newFarmWith(t, testToken, func(o *Options) { o.AuthBurst = 100 })
	for _, path := range []string{"/", "/app.js", "/metrics", "/api/v1/summary", "/api/v1/miners", "/api/v1/upstreams", "/api/v1/history"} {
		if code, _ := f.getAuth(t, path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without token: %d, want 401", path, code)
		}
		if code, _ := f.getAuth(t, path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: %d, want 401", path, code)
		}
		if code, _ := f.getAuth(t, path, testToken+"x"); code != http.StatusUnauthorized {
			t.Errorf("%s with a longer token: %d, want 401", path, code)
		}
		if code, _ := f.getAuth(t, path, testToken); code != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, code)
		}
	}
	// The scheme is case-insensitive, as RFC 9110 says.
	req, _ := http.NewRequest(http.MethodGet, f.base+"/api/v1/summary", nil)
	req.Header.Set("Authorization", "bearer "+testToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("lower-case scheme: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// Read-only: POST is refused even with the token.
	req, _ = http.NewRequest(http.MethodPost, f.base+"/api/v1/summary", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d, want 405", res.StatusCode)
	}
}

func TestDashboardLoginCookie(t *testing.T) {
	f := newFarm(t, testToken)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}

	res, err := client.Get(f.base + "/?token=wrong")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || len(jar.Cookies(res.Request.URL)) != 0 {
		t.Fatalf("wrong token: %d, cookies %v", res.StatusCode, jar.Cookies(res.Request.URL))
	}

	res, err = client.Get(f.base + "/?token=" + testToken)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	// Redirected to / without the token in the address, page served via the cookie.
	if res.StatusCode != http.StatusOK || res.Request.URL.RawQuery != "" || !strings.Contains(string(page), "app.js") {
		t.Fatalf("login: %d at %s", res.StatusCode, res.Request.URL)
	}
	cookies := jar.Cookies(res.Request.URL)
	if len(cookies) != 1 || strings.Contains(cookies[0].Value, testToken) {
		t.Fatalf("cookies %v: want one, not holding the token itself", cookies)
	}
	res, err = client.Get(f.base + "/api/v1/summary")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("API with the cookie: %d", res.StatusCode)
	}

	// A new token (reload) invalidates the cookie.
	f.srv.SetToken("another-token")
	res, err = client.Get(f.base + "/api/v1/summary")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("API with a cookie of the old token: %d, want 401", res.StatusCode)
	}
	f.srv.SetToken("")
	if code, _ := f.getAuth(t, "/api/v1/summary", ""); code != http.StatusOK {
		t.Fatalf("token removed: %d, want 200", code)
	}
}

// Security headers are on every response.
func TestSecurityHeaders(t *testing.T) {
	f := newFarm(t, "")
	res, err := http.Get(f.base + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		"Referrer-Policy":        "no-referrer",
	} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
}
