package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/api"
	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

type listenSpec struct {
	name string
	port int
	user string
	pool string // host:port
}

// writeConfig writes a TOML config with the given listeners.
func writeConfig(t *testing.T, path, level string, ls ...listenSpec) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "log_level = %q\nhttp_listen = \"127.0.0.1:0\"\n\n[upstream]\nreconnect_min = \"50ms\"\nreconnect_max = \"500ms\"\nflush_interval = \"5ms\"\n\n", level)
	for _, l := range ls {
		host, port, _ := net.SplitHostPort(l.pool)
		fmt.Fprintf(&b, "[[listen]]\nname = %q\naddress = \"127.0.0.1\"\nport = %d\npool_user = %q\n\n  [[listen.pool]]\n  host = %q\n  port = %s\n\n", l.name, l.port, l.user, host, port)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// node is a running agent plus daemon, built as serve builds them.
type node struct {
	cfg    *config.Config
	agent  *agent.Agent
	daemon *daemon
	log    *logrus.Logger
	logBuf *testenv.SyncBuffer
	pid    string
	reload chan error
}

func startNode(t *testing.T, path string) *node {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{cfg: cfg, logBuf: &testenv.SyncBuffer{}, pid: filepath.Join(t.TempDir(), "btcagent.pid"), reload: make(chan error, 4)}
	n.log = logrus.New()
	n.log.SetOutput(n.logBuf)
	n.log.SetLevel(logrus.InfoLevel)
	a, err := agent.New(cfg, n.log, agent.Options{TickInterval: 200 * time.Millisecond, Socket: testenv.Socket})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Stop)
	n.agent = a
	if err := a.WaitReady(testenv.Ctx(t), 1); err != nil {
		t.Fatal(err)
	}
	d, err := startDaemon(cfg, n.log, a, daemonOptions{PIDFile: n.pid, OnReload: func(err error) { n.reload <- err }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	n.daemon = d
	return n
}

func (n *node) waitReload(t *testing.T) error {
	t.Helper()
	select {
	case err := <-n.reload:
		return err
	case <-testenv.Ctx(t).Done():
		t.Fatal("no reload happened")
		return nil
	}
}

func (n *node) summary(t *testing.T) api.Summary {
	t.Helper()
	res, err := http.Get("http://" + n.daemon.httpAddr() + "/api/v1/summary")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var s api.Summary
	if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// `btcagent reload` signals the agent through its pid file; the agent
// re-reads the file, changes the log level and the pool list of one
// listener, and the miners of the other listener notice nothing.
func TestReloadCommandAppliesNewConfig(t *testing.T) {
	poolA := testenv.Pool(t, poolsim.Config{})
	poolB1 := testenv.Pool(t, poolsim.Config{})
	poolB2 := testenv.Pool(t, poolsim.Config{})
	path := filepath.Join(t.TempDir(), "config.toml")
	la := listenSpec{"a", testenv.Port(t), "farm", poolA.Addr()}
	lb := listenSpec{"b", testenv.Port(t), "farm2", poolB1.Addr()}
	writeConfig(t, path, "info", la, lb)
	n := startNode(t, path)
	if b, err := os.ReadFile(n.pid); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Fatalf("pid file: %q %v", b, err)
	}

	const miners = 3
	ctx := testenv.Ctx(t)
	simA := testenv.Miners(t, minersim.Config{Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(la.port)), Miners: miners, Hash: true, HashThreads: 2})
	simB := testenv.Miners(t, minersim.Config{Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(lb.port)), Miners: miners, Hash: true, HashThreads: 2, ReconnectMin: 50 * time.Millisecond, ReconnectMax: 200 * time.Millisecond})
	for _, s := range []*minersim.Sim{simA, simB} {
		if err := s.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= miners }); err != nil {
			t.Fatal(err)
		}
	}

	lb.pool = poolB2.Addr()
	writeConfig(t, path, "debug", la, lb)
	var out, errOut bytes.Buffer
	if code := run([]string{"reload", "-pidfile", n.pid, "-c", path}, &out, &errOut); code != 0 {
		t.Fatalf("btcagent reload: exit %d: %s", code, errOut.String())
	}
	if err := n.waitReload(t); err != nil {
		t.Fatalf("reload failed: %v", err)
	}
	if n.log.GetLevel() != logrus.DebugLevel {
		t.Fatalf("log level %v after reload, want debug", n.log.GetLevel())
	}
	if err := poolB2.WaitFor(ctx, func(s *poolsim.Stats) bool {
		return s.Totals.Accepted >= miners && s.Totals.RegisteredWorkers == miners
	}); err != nil {
		t.Fatalf("listener b's miners did not move to the new pool: %+v", poolB2.Stats().Totals)
	}
	mark := poolA.Stats().Totals.Accepted
	if err := poolA.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.Accepted >= mark+miners }); err != nil {
		t.Fatal("listener a stopped working")
	}
	if s := simA.Stats(); s.Disconnects != 0 || s.Reconnects != 0 || s.ReconnectRequests != 0 {
		t.Fatalf("listener a's miners were disturbed: %+v", s)
	}
	sum := n.summary(t)
	if sum.Reload.OK != 1 || sum.Reload.Failed != 0 || sum.Reload.LastSuccess == nil {
		t.Fatalf("summary reload %+v", sum.Reload)
	}
	if !strings.Contains(n.logBuf.String(), "config reloaded") {
		t.Fatal("reload not logged")
	}
}

// A config that does not load, or names an unknown plugin, is refused with
// the error logged; the running config keeps serving the same miners.
func TestReloadRefusesInvalidConfig(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	path := filepath.Join(t.TempDir(), "config.toml")
	l := listenSpec{"main", testenv.Port(t), "farm", pool.Addr()}
	writeConfig(t, path, "info", l)
	n := startNode(t, path)
	before := n.agent.Listeners()
	sim := testenv.Miners(t, minersim.Config{Target: net.JoinHostPort("127.0.0.1", strconv.Itoa(l.port)), Miners: 2, Hash: true, HashThreads: 2})
	ctx := testenv.Ctx(t)
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= 2 }); err != nil {
		t.Fatal(err)
	}

	broken := map[string]string{
		"syntax":         "log_level = \"debug\"\n[[listen]\nport = 1\n",
		"unknown key":    "log_levle = \"debug\"\n",
		"unknown plugin": "",
	}
	for name, text := range broken {
		if name == "unknown plugin" {
			writeConfig(t, path, "debug", l)
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(f, "[[plugins]]\nname = \"no-such-plugin\"\n")
			f.Close()
		} else if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		// The command checks the file first and does not signal.
		var out, errOut bytes.Buffer
		if code := run([]string{"reload", "-pidfile", n.pid, "-c", path}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "invalid") {
			t.Fatalf("%s: btcagent reload exit %d: %s", name, code, errOut.String())
		}
		// A SIGHUP (or a reload without -c) is refused by the agent itself.
		if err := n.daemon.reload(); err == nil {
			t.Fatalf("%s: the agent accepted a broken config", name)
		}
		if err := n.waitReload(t); err == nil {
			t.Fatalf("%s: reload hook saw no error", name)
		}
	}
	if !strings.Contains(n.logBuf.String(), "config reload refused") {
		t.Fatalf("refusal not logged:\n%s", n.logBuf.String())
	}
	if n.log.GetLevel() != logrus.InfoLevel {
		t.Fatalf("log level changed by a refused reload: %v", n.log.GetLevel())
	}
	after := n.agent.Listeners()
	if len(after) != 1 || after[0] != before[0] {
		t.Fatal("listeners changed by a refused reload")
	}
	mark := sim.Stats().SharesAccepted
	if err := sim.WaitFor(ctx, func(s *minersim.Summary) bool { return s.SharesAccepted >= mark+2 }); err != nil {
		t.Fatal("the old config stopped serving")
	}
	if s := sim.Stats(); s.Disconnects != 0 || s.Reconnects != 0 {
		t.Fatalf("miners disturbed: %+v", s)
	}
	sum := n.summary(t)
	if sum.Reload.Failed != int64(len(broken)) || sum.Reload.OK != 0 || sum.Reload.LastError == "" || sum.Miners != 2 {
		t.Fatalf("summary after refused reloads: reload %+v, miners %d", sum.Reload, sum.Miners)
	}
}

func TestPidFileRemovedOnClose(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	path := filepath.Join(t.TempDir(), "config.toml")
	writeConfig(t, path, "info", listenSpec{"main", testenv.Port(t), "farm", pool.Addr()})
	n := startNode(t, path)
	n.daemon.close()
	if _, err := os.Stat(n.pid); !os.IsNotExist(err) {
		t.Fatalf("pid file still there after close: %v", err)
	}
	n.daemon.close() // idempotent: the test cleanup calls it again
}

// Without -pidfile, reload looks for the agent in /proc: a process named
// btcagent whose arguments are flags only, running our own executable
// (when its exe link is readable).
func TestAgentProcessesFromProc(t *testing.T) {
	root := t.TempDir()
	const self = "/usr/local/bin/btcagent"
	proc := func(pid int, comm, cmdline, exe string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644)
		_ = os.WriteFile(filepath.Join(dir, "cmdline"), []byte(strings.ReplaceAll(cmdline, " ", "\x00")+"\x00"), 0o644)
		if exe != "" {
			if err := os.Symlink(exe, filepath.Join(dir, "exe")); err != nil {
				t.Fatal(err)
			}
		}
	}
	proc(100, "btcagent", "/usr/local/bin/btcagent -c /etc/btcagent/config.toml", self)
	proc(101, "btcagent", "btcagent reload", self)
	proc(102, "btcagent", "btcagent demo -miners 4", self)
	proc(103, "bash", "bash -c btcagent", "/bin/bash")
	proc(104, "btcagent", "btcagent", self+" (deleted)")                                  // upgraded in place
	proc(105, "btcagent", "btcagent -c x.toml", "")                                       // another user's: exe unreadable
	proc(106, "btcagent", "/tmp/go-build1/btcagent -c t.toml", "/tmp/go-build1/btcagent") // a test build
	proc(200, "btcagent", "btcagent -c x.toml", self)                                     // ourselves
	if err := os.MkdirAll(filepath.Join(root, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := agentProcesses(root, 200, self)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{100, 104, 105}) {
		t.Fatalf("agent processes %v, want [100 104 105]", got)
	}
}

// A reload applies http_allowed_hosts at once: a name refused before is
// answered after, on the same server.
func TestReloadAppliesAllowedHosts(t *testing.T) {
	pool := testenv.Pool(t, poolsim.Config{})
	path := filepath.Join(t.TempDir(), "agent.toml")
	writeConfig(t, path, "info", listenSpec{name: "main", port: testenv.Port(t), user: "farm", pool: pool.Addr()})
	n := startNode(t, path)
	get := func() int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+n.daemon.httpAddr()+"/api/v1/summary", nil)
		req.Host = "agent.farm.lan"
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := get(); code != http.StatusMisdirectedRequest {
		t.Fatalf("unlisted name: %d, want 421", code)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("http_listen = \"127.0.0.1:0\"\n"), []byte("http_listen = \"127.0.0.1:0\"\nhttp_allowed_hosts = [\"agent.farm.lan\"]\nhttp_max_connections = 8\n"), 1)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.daemon.reload(); err != nil {
		t.Fatal(err)
	}
	if code := get(); code != http.StatusOK {
		t.Fatalf("listed name after reload: %d, want 200", code)
	}
}
