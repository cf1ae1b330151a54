// Command btcagent is the mining-farm pool agent: it serves thousands of
// Stratum V1 miners on the farm's LAN and forwards their work to a
// btcpool-family pool over a few BTCAgent-protocol connections.
//
//	btcagent [-c config.toml] [-l logdir]   run the agent
//	btcagent reload [-pidfile FILE]         make the running agent re-read its config (SIGHUP)
//	btcagent demo                           run a local pool simulator, the agent and a few CPU miners
//	btcagent config check FILE              validate a config (exit 0 or one precise error)
//	btcagent config convert agent_conf.json print the legacy JSON config as TOML
//	btcagent plugins                        list the registered plugins
//	btcagent version                        print the version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/btcagent/btcagent/plugins"
	_ "github.com/btcagent/btcagent/plugins/all" // built-in plugins
	"github.com/sirupsen/logrus"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, `btcagent %s: a mining-farm pool agent (Stratum V1 miners -> BTCAgent protocol pool)

Usage:
  btcagent [-c config.toml] [-l logdir]    run the agent
  btcagent reload [-pidfile FILE] [-c F]   make the running agent re-read its config (SIGHUP)
  btcagent demo [flags]                    local demo: pool simulator + agent + CPU miners
  btcagent config check FILE               validate a config file (.toml, or legacy .json)
  btcagent config convert agent_conf.json  print a legacy JSON config as TOML
  btcagent plugins                         list the registered plugins
  btcagent version                         print the version

Flags:
`, version)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("btcagent", flag.ContinueOnError)
	cfgPath := fs.String("c", "config.toml", "config file (TOML, or the legacy btcagent JSON when it ends in .json)")
	logDir := fs.String("l", "", `log directory ("stderr" or empty: log to stderr; overrides log_dir)`)
	pidFile := fs.String("pidfile", "", "write the process id here (for `btcagent reload`)")
	fs.Usage = func() { usage(stderr, fs) }
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		switch args[0] {
		case "version":
			fmt.Fprintf(stdout, "btcagent %s\n", version)
			return 0
		case "plugins":
			for _, p := range plugins.List() {
				fmt.Fprintf(stdout, "%-18s %s\n", p.Name, p.Description)
			}
			return 0
		case "config":
			return configCmd(args[1:], stdout, stderr)
		case "demo":
			return demoCmd(args[1:], stdout, stderr)
		case "reload":
			return reloadCmd(args[1:], stdout, stderr)
		case "help":
			usage(stdout, fs)
			return 0
		default:
			fmt.Fprintf(stderr, "btcagent: unknown command %q (see btcagent -h)\n", args[0])
			return 2
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, warnings, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "btcagent: %v\n", err)
		return 1
	}
	if *logDir != "" {
		cfg.LogDir = *logDir
	}
	log, closer, err := logging.New(logging.Options{Level: cfg.LogLevel, Format: cfg.LogFormat, Dir: cfg.LogDir, MaxSizeMB: cfg.LogMaxSizeMB, MaxFiles: cfg.LogMaxFiles, Name: "btcagent"})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent: %v\n", err)
		return 1
	}
	defer closer.Close()
	for _, w := range warnings {
		log.Warn("config: " + w)
	}
	if err := serve(cfg, log, daemonOptions{PIDFile: *pidFile, LogDir: *logDir}, nil); err != nil {
		log.WithError(err).Error("btcagent stopped")
		return 1
	}
	return 0
}

// loadConfig loads a TOML or legacy JSON config; the warnings are the
// legacy conversion's and the settings that are accepted but unsafe.
func loadConfig(path string) (*config.Config, []string, error) {
	var (
		cfg      *config.Config
		warnings []string
		err      error
	)
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		cfg, warnings, err = config.LoadLegacyJSON(path)
	} else {
		cfg, err = config.Load(path)
	}
	if err != nil {
		return nil, nil, err
	}
	return cfg, append(warnings, cfg.Warnings()...), nil
}

// serve runs the agent until SIGINT/SIGTERM (or until stop is closed), with
// the HTTP server and SIGHUP reload around it (daemon.go).
func serve(cfg *config.Config, log *logrus.Logger, opts daemonOptions, stop <-chan struct{}) error {
	if err := plugins.Validate(cfg.Plugins, ports(cfg)); err != nil {
		return err
	}
	// Signals first: a SIGTERM while the pool links come up must stop the
	// agent cleanly, not kill it with the default action.
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	soft, hard := raiseFileLimit()
	gc := tuneGC()
	procs := tuneProcs()
	log.WithFields(logrus.Fields{"soft": soft, "hard": hard, "gc_percent": gc, "gomaxprocs": procs, "version": version}).Info("btcagent starting (open-files limit)")
	a, err := agent.New(cfg, log, agent.Options{})
	if err != nil {
		return err
	}
	if err := a.Start(); err != nil {
		return err
	}
	// After start-up, which touches much of the binary once.
	trimTextRSS()
	d, err := startDaemon(cfg, log, a, opts)
	if err != nil {
		a.Stop()
		return err
	}
	defer d.close()
	select {
	case s := <-sig:
		log.WithField("signal", s.String()).Info("stopping: no new miners, unregistering, closing pool links")
	case <-stop:
	}
	done := make(chan struct{})
	go func() { a.Stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		log.Warn("shutdown took longer than 5 s; exiting anyway")
	}
	return nil
}

func ports(cfg *config.Config) []int {
	out := make([]int, 0, len(cfg.Listen))
	for _, l := range cfg.Listen {
		out = append(out, l.Port)
	}
	return out
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: btcagent config check FILE | btcagent config convert agent_conf.json")
		return 2
	}
	switch args[0] {
	case "check":
		cfg, warnings, err := loadConfig(args[1])
		if err == nil {
			err = plugins.Validate(cfg.Plugins, ports(cfg))
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		fmt.Fprintf(stdout, "%s: OK (%d listener(s), %d plugin(s))\n", args[1], len(cfg.Listen), len(cfg.Plugins))
		return 0
	case "convert":
		data, err := os.ReadFile(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		out, warnings, err := config.ConvertLegacyJSON(data, args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		for _, w := range warnings {
			fmt.Fprintln(stderr, "warning:", w)
		}
		_, _ = stdout.Write(out)
		return 0
	}
	fmt.Fprintf(stderr, "btcagent config: unknown subcommand %q\n", args[0])
	return 2
}

// defaultGCPercent trades a little GC work for memory: the agent's heap is
// almost all long-lived per-miner state, and the share path allocates
// nothing, so the heap grows by a few hundred KB between collections. At
// 10% growth instead of Go's 100% a collection comes every few seconds at
// 10,000 miners for ~10 ms of CPU, and RSS stays close to the live heap,
// which matters on small routers (10,000 miners, 60 s: 35.6 MiB and 0.054
// core at 10 against 36.3 MiB and 0.060 core at 25, within the noise of
// the CPU figure; docs/BENCHMARKS.md). GOGC in the environment wins.
const defaultGCPercent = 10

func tuneGC() int {
	if v := os.Getenv("GOGC"); v != "" {
		return -1 // the runtime already applied it
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

// tuneProcs gives the runtime one P more than it would take by default when
// the miner event loop is the Linux epoll loop: that loop waits in
// epoll_pwait through RawSyscall and keeps its P while it waits (see
// actors/netio/loop_linux.go), so without the extra P the link actors, the
// job fan-out and the GC would have one core less than the machine has. The
// loop's thread sleeps in the kernel, so the extra P costs no CPU.
// GOMAXPROCS in the environment wins.
func tuneProcs() int {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOOS != "linux" {
		return runtime.GOMAXPROCS(0)
	}
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}
