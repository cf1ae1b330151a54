package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/btcagent/btcagent/internal/testenv"
	"github.com/btcagent/btcagent/sim/poolsim"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionHelpAndUnknown(t *testing.T) {
	if code, out, _ := runCLI("version"); code != 0 || !strings.HasPrefix(out, "btcagent ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := runCLI("-h"); code != 0 || !strings.Contains(errOut, "config check") {
		t.Fatalf("-h: %d %q", code, errOut)
	}
	if code, _, errOut := runCLI("frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	if code, out, errOut := runCLI("config", "check", "../../config.toml"); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("example config: %d %q %q", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[[listen]]\nport = 3333\npool_user = \"x\"\nPools = 1\n"), 0o600)
	code, _, errOut := runCLI("config", "check", bad)
	if code != 1 || !strings.Contains(errOut, "bad.toml:4") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("bad config: %d %q (want one line naming file:line)", code, errOut)
	}
	plug := filepath.Join(t.TempDir(), "plug.toml")
	os.WriteFile(plug, []byte("[[listen]]\nport = 3333\npool_user = \"x\"\n[[listen.pool]]\nhost = \"127.0.0.1\"\nport = 3334\n[[plugins]]\nname = \"no-such-plugin\"\n"), 0o600)
	if code, _, errOut := runCLI("config", "check", plug); code != 1 || !strings.Contains(errOut, "no-such-plugin") {
		t.Fatalf("unknown plugin: %d %q", code, errOut)
	}
}

// config check refuses a short http_token on an address beyond loopback
// and only warns about it on loopback; the token never appears in output.
func TestConfigCheckHTTPToken(t *testing.T) {
	const tail = "[[listen]]\nport = 3333\npool_user = \"x\"\n[[listen.pool]]\nhost = \"127.0.0.1\"\nport = 3334\n"
	dir := t.TempDir()
	public := filepath.Join(dir, "public.toml")
	os.WriteFile(public, []byte("http_listen = \"0.0.0.0:8080\"\nhttp_token = \"hunter2\"\n"+tail), 0o600)
	code, out, errOut := runCLI("config", "check", public)
	if code != 1 || !strings.Contains(errOut, "public.toml:2: http_token has 7 characters; at least 16 are required") || strings.Contains(errOut+out, "hunter2") {
		t.Fatalf("short token on 0.0.0.0: %d %q %q", code, out, errOut)
	}
	loopback := filepath.Join(dir, "loopback.toml")
	os.WriteFile(loopback, []byte("http_listen = \"127.0.0.1:8080\"\nhttp_token = \"hunter2\"\n"+tail), 0o600)
	code, out, errOut = runCLI("config", "check", loopback)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(errOut, "warning: http_token has 7 characters") || strings.Contains(errOut+out, "hunter2") {
		t.Fatalf("short token on loopback: %d %q %q", code, out, errOut)
	}
	long := filepath.Join(dir, "long.toml")
	os.WriteFile(long, []byte("http_listen = \"0.0.0.0:8080\"\nhttp_token = \"0123456789abcdef\"\n"+tail), 0o600)
	if code, out, errOut = runCLI("config", "check", long); code != 0 || errOut != "" {
		t.Fatalf("16-character token on 0.0.0.0: %d %q %q", code, out, errOut)
	}
	noToken := filepath.Join(dir, "open.toml")
	os.WriteFile(noToken, []byte("http_listen = \"0.0.0.0:8080\"\n"+tail), 0o600)
	if code, out, errOut = runCLI("config", "check", noToken); code != 0 || !strings.Contains(errOut, "warning: http_listen \"0.0.0.0:8080\" is not a loopback address and http_token is empty") {
		t.Fatalf("no token on 0.0.0.0: %d %q %q", code, out, errOut)
	}
}

func TestConfigConvertLegacy(t *testing.T) {
	matches, _ := filepath.Glob("../../testdata/config/legacy/*.json")
	if len(matches) == 0 {
		t.Skip("no legacy examples")
	}
	code, out, errOut := runCLI("config", "convert", matches[0])
	if code != 0 || !strings.Contains(out, "[[listen]]") || !strings.Contains(out, "[[listen.pool]]") {
		t.Fatalf("convert: %d %q %q", code, out, errOut)
	}
	conv := filepath.Join(t.TempDir(), "converted.toml")
	os.WriteFile(conv, []byte(out), 0o600)
	if code, _, errOut := runCLI("config", "check", conv); code != 0 {
		t.Fatalf("converted config does not load: %q", errOut)
	}
}

// The daemon runs from its config, and SIGTERM stops it cleanly (exit 0)
// within a few seconds, closing its pool links.
func TestDaemonStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "btcagent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	pool := testenv.Pool(t, poolsim.Config{})
	cfg := testenv.Config(t, "farm", pool.Addr())
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.toml")
	f, _ := os.Create(path)
	if err := cfg.WriteTOML(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(bin, "-c", path)
	testenv.Release(cfg.Listen[0].Port) // the daemon is another process: it binds the port itself
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Ctx(t)
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.AgentConns == 2 }); err != nil {
		cmd.Process.Kill()
		t.Fatalf("agent never connected: %v\n%s", err, logs.String())
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("did not stop within 10 s\n%s", logs.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stop took %v", d)
	}
	if err := pool.WaitFor(ctx, func(s *poolsim.Stats) bool { return s.Totals.AgentConns == 0 }); err != nil {
		t.Fatal("pool links still open after exit")
	}
	if !strings.Contains(logs.String(), "stopping") {
		t.Fatalf("no stop log line:\n%s", logs.String())
	}
}

// A multi-user listener passes `config check` with a warning, but the
// agent refuses to serve it until per-sub-account links are wired: it
// would otherwise log every miner in under an empty sub-account.
// Multi-user listeners are served: config check passes them without a
// warning, the btccom Go agent's shipped file (multi-user on) converts with
// only the warning about names without a dot, and a pool-route plugin on
// such a listener is refused with one line.
func TestMultiUserConfigCheck(t *testing.T) {
	path := filepath.Join(t.TempDir(), "multi.toml")
	listen := "[[listen]]\nname = \"hosting\"\nport = 3333\nmulti_user = true\n[[listen.pool]]\nhost = \"127.0.0.1\"\nport = 3334\n"
	os.WriteFile(path, []byte(listen), 0o600)
	code, out, errOut := runCLI("config", "check", path)
	if code != 0 || !strings.Contains(out, "OK") || errOut != "" {
		t.Fatalf("config check: %d %q %q", code, out, errOut)
	}
	code, out, errOut = runCLI("config", "check", "../../testdata/config/legacy/agent_conf_default.json")
	if code != 0 || !strings.Contains(out, "OK (1 listener(s), 2 plugin(s))") || strings.Contains(errOut, "not served") ||
		!strings.Contains(errOut, "multi_user_mode: a miner whose name has no dot (no sub-account) is refused") {
		t.Fatalf("legacy default: %d %q %q", code, out, errOut)
	}
	route := listen + "[[plugins]]\nname = \"pool-route\"\nsplit = { default = 50, b = 50 }\n[[plugins.route]]\nname = \"b\"\npool_user = \"x\"\npools = [\"127.0.0.1:3335\"]\n"
	os.WriteFile(path, []byte(route), 0o600)
	code, _, errOut = runCLI("config", "check", path)
	if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "plugins[0] (pool-route): cannot run on multi-user listener hosting") {
		t.Fatalf("pool-route on a multi-user listener: %d %q", code, errOut)
	}
}
