package upstream

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/msg"
)

// Dial failures say which stage failed, by the stage and not by the text of
// the error: a TLS pool whose TCP connect succeeded but whose TLS handshake
// did not (here: the peer hangs up) is a TLS failure, whatever the error.
func TestDialFailureStages(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	for _, c := range []struct {
		name   string
		pool   msg.PoolAddr
		reason string
	}{
		{"TLS handshake cut", msg.PoolAddr{Host: "127.0.0.1", Port: port, TLS: true}, "TLS handshake failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, _, err := dialConn(context.Background(), c.pool, 5*time.Second, nil)
			if err == nil {
				conn.Close()
				t.Fatal("dial succeeded")
			}
			var he *HandshakeError
			if !errors.As(err, &he) || he.Reason != c.reason || he.Err == nil {
				t.Fatalf("got %v, want reason %q with its cause", err, c.reason)
			}
		})
	}
}
