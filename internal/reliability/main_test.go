// Package reliability holds end-to-end fault tests: the pool simulator, the
// agent and simulated miners run in this process (the partition test puts
// the pool's socket in a network namespace of its own), faults are injected,
// and every test checks both that the fault was handled and that healthy
// miners kept getting shares accepted. docs/RELIABILITY.md lists them.
//
// Every address used is on loopback, except the partition test's veth pair
// between this host and a namespace the test creates itself. Name lookups go
// to a DNS stub on loopback installed by TestMain, so no query ever leaves
// the machine (the host's resolv.conf may name a real server).
package reliability

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// dnsLog records the A questions the loopback DNS stub answered, by name:
// one per lookup, which is how tests count dial attempts at a name that
// does not resolve.
var dnsLog = struct {
	sync.Mutex
	byName map[string][]time.Time
}{byName: map[string][]time.Time{}}

// dnsLookups returns when name (without the final dot) was looked up.
func dnsLookups(name string) []time.Time {
	dnsLog.Lock()
	defer dnsLog.Unlock()
	return append([]time.Time(nil), dnsLog.byName[strings.ToLower(name)]...)
}

func TestMain(m *testing.M) {
	stop, err := installLoopbackResolver()
	if err != nil {
		panic(err)
	}
	code := m.Run()
	stop()
	os.Exit(code)
}

// installLoopbackResolver makes net.DefaultResolver (which the agent's pool
// dialer uses) speak only to a stub on 127.0.0.1 that answers every
// question with NXDOMAIN. /etc/hosts is still read first, so "localhost"
// resolves as usual. It is installed before any test runs, so no goroutine
// can race with the change.
func installLoopbackResolver() (func(), error) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go serveNXDOMAIN(pc)
	stub := pc.LocalAddr().String()
	net.DefaultResolver.PreferGo = true
	net.DefaultResolver.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", stub) // whatever server resolv.conf names
	}
	return func() { _ = pc.Close() }, nil
}

// serveNXDOMAIN answers each DNS query with its own question and rcode 3.
func serveNXDOMAIN(pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 12 {
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		q[2] = 0x80 | q[2]&0x79 // QR=1, keep opcode and RD
		q[3] = 0x80 | 3         // RA=1, rcode NXDOMAIN
		// no answer, authority or additional records (drops any EDNS OPT record)
		q[6], q[7], q[8], q[9], q[10], q[11] = 0, 0, 0, 0, 0, 0
		// keep only the header and the first question
		end := 12
		for end < len(q) && q[end] != 0 {
			end += int(q[end]) + 1
		}
		end += 5 // root label, qtype, qclass
		if end > len(q) {
			continue
		}
		if q[end-4] == 0 && q[end-3] == 1 { // type A
			dnsLog.Lock()
			name := qname(q[12:])
			dnsLog.byName[name] = append(dnsLog.byName[name], time.Now())
			dnsLog.Unlock()
		}
		_, _ = pc.WriteTo(q[:end], from)
	}
}

// qname decodes the first question's name (lower case, no final dot).
func qname(b []byte) string {
	var parts []string
	for i := 0; i < len(b) && b[i] != 0; i += int(b[i]) + 1 {
		if i+1+int(b[i]) > len(b) {
			break
		}
		parts = append(parts, string(b[i+1:i+1+int(b[i])]))
	}
	return strings.ToLower(strings.Join(parts, "."))
}
