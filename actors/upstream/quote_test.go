package upstream

import (
	"bufio"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
)

// The handshakes quote the pool user and the user agent as JSON, whatever
// they contain: non-ASCII letters pass through, control characters are
// escaped the JSON way, and invalid UTF-8 becomes U+FFFD instead of a Go
// escape that no pool can parse.
func TestHandshakeQuotesAsJSON(t *testing.T) {
	const user = "ferme.été&co\x01\"\\\xff"
	const ua = "btccom-agent/3 ✓\x7f\t"
	wantUser, wantUA := "ferme.été&co\x01\"\\\uFFFD", "btccom-agent/3 ✓\x7f\t"
	run := map[string]func(net.Conn){
		"agent": func(c net.Conn) {
			_, _ = agentHandshake(user, ua, false).run(c, codec.NewReader(c, 0, true))
		},
		"stratum": func(c net.Conn) {
			_, _ = stratumHandshake(user, ua, 1, "stratum").run(c, codec.NewReader(c, 0, false))
		},
	}
	for name, hs := range run {
		t.Run(name, func(t *testing.T) {
			client, server := net.Pipe()
			done := make(chan struct{})
			go func() { defer close(done); hs(client) }()
			t.Cleanup(func() { server.Close(); <-done })
			_ = server.SetDeadline(time.Now().Add(10 * time.Second))
			sc := bufio.NewScanner(server)
			got := map[string][]any{}
			for len(got) < 4 && sc.Scan() {
				var req struct {
					Method string `json:"method"`
					Params []any  `json:"params"`
				}
				if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
					t.Fatalf("request is not JSON: %v: %s", err, sc.Bytes())
				}
				got[req.Method] = req.Params
				if req.Method == codec.MethodAuthorize && !strings.Contains(sc.Text(), "&co") {
					t.Errorf("'&' escaped in %s; pools with simple parsers would see another name", sc.Bytes())
				}
			}
			if err := sc.Err(); err != nil {
				t.Fatal(err)
			}
			if p := got[codec.MethodAuthorize]; len(p) < 1 || p[0] != wantUser {
				t.Errorf("authorize params %q, want user %q", p, wantUser)
			}
			if p := got[codec.MethodSubscribe]; len(p) < 1 || p[0] != wantUA {
				t.Errorf("subscribe params %q, want user agent %q", p, wantUA)
			}
		})
	}
}
