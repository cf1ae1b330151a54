package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/actors/agent"
	"github.com/btcagent/btcagent/config"
	"github.com/btcagent/btcagent/internal/logging"
	"github.com/btcagent/btcagent/plugins"
	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// demoCmd is the quick start: the embedded pool simulator on the address of
// the config's first pool, the agent with that config, and a few CPU miners
// doing real (tiny-difficulty) work through it, with a status line every few
// seconds. Nothing leaves this machine.
func demoCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("btcagent demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("c", "config.toml", "agent config; its first listener's first pool is where the simulator listens")
	miners := fs.Int("miners", 8, "simulated CPU miners")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	every := fs.Duration("every", 5*time.Second, "status line interval")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	log, closer, err := logging.New(logging.Options{Level: cfg.LogLevel, Format: cfg.LogFormat, Dir: cfg.LogDir, MaxSizeMB: cfg.LogMaxSizeMB, MaxFiles: cfg.LogMaxFiles, Name: "btcagent"})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	defer closer.Close()
	lc := cfg.Listen[0]
	p0 := lc.Pools[0]
	pool, err := poolsim.Start(poolsim.Config{
		Listen: net.JoinHostPort(p0.Host, strconv.Itoa(p0.Port)), JSONDiff: 0.0001,
		NotifyInterval: 30 * time.Second, Branches: 12, Logger: log.WithField("component", "poolsim"),
	})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: start the pool simulator at %s:%d: %v\n", p0.Host, p0.Port, err)
		return 1
	}
	defer pool.Close()
	if err := plugins.Validate(cfg.Plugins, ports(cfg)); err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	a, err := agent.New(cfg, log, agent.Options{StatsInterval: time.Minute})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	if err := a.Start(); err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	defer a.Stop()
	// The dashboard and SIGHUP reload work in the demo as in production.
	d, err := startDaemon(cfg, log, a, daemonOptions{})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	defer d.close()
	if addr := d.httpAddr(); addr != "" {
		fmt.Fprintf(stdout, "demo: dashboard at http://%s/\n", addr)
	}
	target := a.Listeners()[0].Addr().String()
	if host, port, _ := net.SplitHostPort(target); host == "0.0.0.0" || host == "::" {
		target = net.JoinHostPort("127.0.0.1", port)
	}
	sim, err := minersim.Start(context.Background(), minersim.Config{
		Target: target, Miners: *miners, User: "demo", Hash: true, HashThreads: 1, VersionRolling: true,
		Logger: log.WithField("component", "minersim"),
	})
	if err != nil {
		fmt.Fprintf(stderr, "btcagent demo: %v\n", err)
		return 1
	}
	defer sim.Stop()
	fmt.Fprintf(stdout, "demo: pool simulator %s <- agent %s (pool user %q) <- %d CPU miners; Ctrl-C to stop\n", pool.Addr(), target, lc.PoolUser, *miners)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	var end <-chan time.Time
	if *duration > 0 {
		end = time.After(*duration)
	}
	t := time.NewTicker(*every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			printDemoStatus(stdout, pool, sim, a)
		case <-sig:
			printDemoStatus(stdout, pool, sim, a)
			return 0
		case <-end:
			printDemoStatus(stdout, pool, sim, a)
			return 0
		}
	}
}

func printDemoStatus(w io.Writer, pool *poolsim.Pool, sim *minersim.Sim, a *agent.Agent) {
	ps := pool.Stats()
	ms := sim.Stats()
	var rej uint64
	for _, v := range ps.Totals.Rejected {
		rej += v
	}
	fmt.Fprintf(w, "%s miners authorized %d | shares sent %d, accepted by pool %d, rejected %d | pool sees %d workers over %d agent link(s), %d B up\n",
		time.Now().Format("15:04:05"), ms.Authorized, ms.SharesSent, ps.Totals.Accepted, rej,
		ps.Totals.RegisteredWorkers, ps.Totals.AgentConns, a.Listeners()[0].Stats.BytesUp.Load())
}

var _ = logrus.InfoLevel
