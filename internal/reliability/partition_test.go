//go:build linux

package reliability

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"golang.org/x/sys/unix"
)

// testNet is a network namespace of the test's own, joined to this host by
// a veth pair with a /30 from 198.51.100.0/24 (TEST-NET-2) that exists only
// on that pair.
type testNet struct {
	t         *testing.T
	ns        string
	hostIf    string
	nsIf      string
	hostIP    string
	nsIP      string
	nsPath    string
	partition bool
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newTestNet creates the namespace and the veth pair, or skips the test
// when that is not possible here (not root, no ip or tc, no netns support).
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2): %v", tool, err)
		}
	}
	id := randHex(3)
	k := rand.IntN(64) * 4
	n := &testNet{t: t, ns: "btcrel-" + id, hostIf: "brh" + id, nsIf: "brn" + id,
		hostIP: fmt.Sprintf("198.51.100.%d", k+1), nsIP: fmt.Sprintf("198.51.100.%d", k+2)}
	n.nsPath = "/var/run/netns/" + n.ns
	if err := run("ip", "netns", "add", n.ns); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() { _ = run("ip", "netns", "del", n.ns) })
	steps := [][]string{
		{"ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", n.nsIf},
		{"ip", "link", "set", n.nsIf, "netns", n.ns},
		{"ip", "addr", "add", n.hostIP + "/30", "dev", n.hostIf},
		{"ip", "link", "set", n.hostIf, "up"},
		{"ip", "netns", "exec", n.ns, "ip", "addr", "add", n.nsIP + "/30", "dev", n.nsIf},
		{"ip", "netns", "exec", n.ns, "ip", "link", "set", n.nsIf, "up"},
		{"ip", "netns", "exec", n.ns, "ip", "link", "set", "lo", "up"},
	}
	for i, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			t.Skipf("cannot set up the test network: %v", err)
		}
		if i == 0 {
			t.Cleanup(func() { _ = run("ip", "link", "del", n.hostIf) })
		}
	}
	t.Cleanup(func() {
		if n.partition {
			n.heal()
		}
	})
	return n
}

// cut drops every packet both ways (a queue of length zero on each end of
// the pair): nothing is closed, nothing answers, as with a dead uplink.
func (n *testNet) cut() {
	n.t.Helper()
	for _, s := range [][]string{
		{"tc", "qdisc", "add", "dev", n.hostIf, "root", "pfifo", "limit", "0"},
		{"ip", "netns", "exec", n.ns, "tc", "qdisc", "add", "dev", n.nsIf, "root", "pfifo", "limit", "0"},
	} {
		if err := run(s[0], s[1:]...); err != nil {
			n.t.Skipf("cannot drop packets with tc here: %v", err)
		}
	}
	n.partition = true
}

func (n *testNet) heal() {
	n.t.Helper()
	for _, s := range [][]string{
		{"tc", "qdisc", "del", "dev", n.hostIf, "root"},
		{"ip", "netns", "exec", n.ns, "tc", "qdisc", "del", "dev", n.nsIf, "root"},
	} {
		if err := run(s[0], s[1:]...); err != nil {
			n.t.Errorf("heal: %v", err)
		}
	}
	n.partition = false
}

// inNetns runs fn on an OS thread that has joined the namespace, so that
// the sockets fn creates (a pool simulator's listener) live there. The
// thread returns to this host's namespace afterwards; if it cannot, it is
// left locked and Go discards it when the goroutine ends.
func (n *testNet) inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(n.nsPath)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := setns(target.Fd()); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		ferr := fn()
		if err := setns(self.Fd()); err != nil {
			errc <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func setns(fd uintptr) error { return unix.Setns(int(fd), unix.CLONE_NEWNET) }

// A network partition between the agent and its pool (packets dropped, not
// connections closed): the link is declared dead within dead_after, the
// partitioned listener's miners are handled per the outage policy (wait:
// kept, no work) while another listener's miners keep getting shares
// accepted, every in-flight share is answered, and after the partition
// heals work resumes with no share sent twice.
func TestPartitionInNamespace(t *testing.T) {
	tn := newTestNet(t)
	var pool *poolsim.Pool
	if err := tn.inNetns(func() (err error) {
		pool, err = poolsim.Start(poolsim.Config{Listen: tn.nsIP + ":0", JSONDiff: 0.00001, NotifyInterval: 300 * time.Millisecond, Branches: 4})
		return err
	}); err != nil {
		t.Skipf("cannot start a pool inside the namespace: %v", err)
	}
	t.Cleanup(func() { _ = pool.Close() })
	local := testenv.Pool(t, poolsim.Config{NotifyInterval: 300 * time.Millisecond})

	const dead = 1500 * time.Millisecond
	cfg := baseConfig(t, pool.Addr())
	cfg.Listen[0].Name = "partitioned"
	addListener(t, cfg, "healthy", 2, poolAt(t, local.Addr()))
	cfg.Upstream.DeadAfter = dead
	cfg.Upstream.DialTimeout = time.Second
	cfg.Upstream.HandshakeTimeout = time.Second
	cfg.Outage.Policy = config.OutageWait
	cfg.Outage.Wait = time.Minute
	a, logs := startAgent(t, cfg, agent.Options{}, "partitioned", "healthy")
	const n = 4
	ctx := ctxFor(t, 90*time.Second)
	cut := farm(t, listener(a, "partitioned").Addr().String(), n)
	ok := farm(t, listener(a, "healthy").Addr().String(), n)
	moreAccepted(t, ctx, cut, 2*n, "through the veth before the partition")
	moreAccepted(t, ctx, ok, 2*n, "before the partition")

	t0 := time.Now()
	tn.cut()
	e, err := logs.WaitMsg(ctx, "pool link lost")
	if err != nil {
		t.Fatalf("partition not detected: %v\n%s", err, logs.Dump())
	}
	took := e.At.Sub(t0)
	t.Logf("partition detected after %v: %s", took, e.Msg)
	if !strings.Contains(e.Msg, "silent") || !strings.Contains(e.Text, "partitioned") {
		t.Errorf("detected as %q", e.Text)
	}
	if took < dead-400*time.Millisecond || took > dead+time.Second {
		t.Errorf("partition detected after %v; dead_after is %v", took, dead)
	}
	// both links of the partitioned listener are declared dead
	if err := logs.WaitFor(ctx, func(es []logEntry) bool {
		k := 0
		for _, e := range es {
			if strings.Contains(e.Msg, "pool link lost") && strings.Contains(e.Text, "listener=partitioned") {
				k++
			}
		}
		return k >= 2
	}); err != nil {
		t.Fatalf("second link not declared dead: %v", err)
	}
	// the other listener is not affected; the partitioned miners are kept
	// (policy wait) and every share they had in flight is answered
	moreAccepted(t, ctx, ok, 2*n, "on the healthy listener during the partition")
	if err := cut.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesUnanswered == 0 }); err != nil {
		t.Errorf("in-flight shares of the partitioned miners never answered: %v", err)
	}
	if s := cut.Stats(); s.Disconnects != 0 {
		t.Errorf("partitioned miners disconnected under the wait policy: %+v", s)
	}

	tn.heal()
	poolAccepts(t, ctx, pool, 2*n, "after the partition healed")
	moreAccepted(t, ctx, cut, 2*n, "after the partition healed")
	noDuplicates(t, pool, local)
	if s := cut.Stats(); s.Disconnects != 0 {
		t.Errorf("partitioned miners disconnected: %+v", s)
	}
}
