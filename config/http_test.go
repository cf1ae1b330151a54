package config

import (
	"strings"
	"testing"
)

const httpTail = `
[[listen]]
port = 3333
pool_user = "demo"

  [[listen.pool]]
  host = "127.0.0.1"
  port = 3334
`

func TestIsLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:80": true, "[::1]:8080": true, "localhost:8080": true, "LocalHost:1": true,
		"0.0.0.0:8080": false, ":8080": false, "[::]:8080": false, "192.168.1.5:8080": false, "agent.lan:8080": false, "8080": false,
	} {
		if got := IsLoopbackListen(addr); got != want {
			t.Errorf("IsLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// A short token is refused beyond loopback and only warned about on it; an
// empty token beyond loopback is a warning (metrics on a trusted LAN).
func TestHTTPTokenLength(t *testing.T) {
	for _, tc := range []struct {
		listen, token string
		err, warn     string
	}{
		{"0.0.0.0:8080", "short", "at least 16 are required", ""},
		{"192.168.1.5:8080", "fifteen-chars-x", "at least 16 are required", ""},
		{"0.0.0.0:8080", "sixteen-chars-xx", "", ""},
		{"127.0.0.1:8080", "x", "", "http_token has 1 characters"},
		{"localhost:8080", "x", "", "http_token has 1 characters"},
		{"127.0.0.1:8080", "", "", ""},
		{"0.0.0.0:8080", "", "", "http_token is empty"},
		{"", "x", "", ""}, // HTTP off: nothing to protect
	} {
		src := "http_listen = \"" + tc.listen + "\"\nhttp_token = \"" + tc.token + "\"\n" + httpTail
		c, err := Parse([]byte(src), "t.toml")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "t.toml:2: ") {
				t.Errorf("listen %q token %q: error %v, want t.toml:2: ...%s", tc.listen, tc.token, err, tc.err)
			}
			if err != nil && tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error prints the token: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("listen %q token %q: %v", tc.listen, tc.token, err)
			continue
		}
		w := strings.Join(c.Warnings(), "\n")
		if tc.warn == "" && w != "" || tc.warn != "" && !strings.Contains(w, tc.warn) {
			t.Errorf("listen %q token %q: warnings %q, want %q", tc.listen, tc.token, w, tc.warn)
		}
	}
}

func TestHTTPAllowedHosts(t *testing.T) {
	c, err := Parse([]byte(`http_allowed_hosts = ["agent.farm.lan", "10.0.0.5", "[fd00::5]", "fd00::6"]
http_max_connections = 8
`+httpTail), "t.toml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.HTTPAllowedHosts, ",") != "agent.farm.lan,10.0.0.5,[fd00::5],fd00::6" || c.HTTPMaxConns != 8 {
		t.Fatalf("decoded %q, max %d", c.HTTPAllowedHosts, c.HTTPMaxConns)
	}
	if Default().HTTPMaxConns != 64 || len(Default().HTTPAllowedHosts) != 0 {
		t.Fatalf("defaults: %+v", Default())
	}
	for _, bad := range []string{"", "*.farm.lan", "a b", "-x", ".lan", "host/path"} {
		if _, err := Parse([]byte(`http_allowed_hosts = ["`+bad+`"]`+"\n"+httpTail), "t.toml"); err == nil || !strings.HasPrefix(err.Error(), "t.toml:1: http_allowed_hosts[0]") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
