// Command minersim simulates a farm of Stratum V1 miners against a btcagent or
// a pool: thousands of cheap fast-mode miners for load tests, or a few real CPU
// miners whose shares meet the difficulty. It prints a JSON summary on stdout
// when it ends (after -duration, or on SIGINT/SIGTERM) and can also write it
// to a file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/sim/minersim"
	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/lesismal/nbio/logging"
	"github.com/sirupsen/logrus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// options are the command-line settings that are not part of minersim.Config.
type options struct {
	duration   time.Duration
	summary    string
	statsEvery time.Duration
	stamp      string
	logLevel   string
	mask       string
}

// newFlags binds every flag to cfg and opts.
func newFlags(cfg *minersim.Config, opts *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("minersim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: minersim -target host:port [flags]

Simulates Stratum V1 miners. Each miner connects, optionally sends
mining.configure (version rolling), subscribes, authorizes as
<user>.<worker-prefix><n> and submits shares on the newest job:
random plausible shares every -interval (fast mode), or real shares found
by CPU hashing (-hash). The JSON summary goes to stdout at the end.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:3333", "`host:port` of the agent or pool (a stratum+tcp:// prefix is accepted)")
	fs.IntVar(&cfg.Miners, "miners", 1, "number of miners (connections); about 19,900 fit a 20,000-descriptor limit")
	fs.IntVar(&cfg.ConnectRate, "rate", 0, "new connections per second (0 = as fast as the dialers go)")
	fs.StringVar(&cfg.User, "user", "minersim", "account name: miners authorize as <user>.<worker-prefix><n>")
	fs.StringVar(&cfg.WorkerPrefix, "worker-prefix", "w", "worker name prefix; n is zero-padded to the width of miners-1, at least 3 digits")
	fs.StringVar(&cfg.Password, "password", "x", "password sent in mining.authorize")
	fs.StringVar(&cfg.UserAgent, "user-agent", "cgminer/4.10.0", "user agent sent in mining.subscribe")
	fs.BoolVar(&cfg.VersionRolling, "version-rolling", false, "send mining.configure (BIP310) and roll version bits inside the granted mask")
	fs.StringVar(&opts.mask, "version-mask", "1fffe000", "version-rolling mask to request, in hex")
	fs.DurationVar(&cfg.ShareInterval, "interval", 10*time.Second, "fast mode: time between shares of one miner")
	fs.Float64Var(&cfg.Jitter, "jitter", 0.2, "fast mode: relative spread of -interval (0 = none)")
	fs.BoolVar(&cfg.Hash, "hash", false, "hash mode: really mine and submit only shares that meet the difficulty")
	fs.IntVar(&cfg.HashThreads, "hash-threads", 1, "hash mode: hashing goroutines shared by all miners")
	fs.IntVar(&cfg.MaxSharesPerMiner, "max-shares", 0, "stop each miner after this many submits (0 = no limit)")
	fs.StringVar(&opts.stamp, "stamp", "poolsim", "where jobs carry the pool's write time, for fan-out latency: poolsim, none, or hex:MARKER")
	fs.StringVar(&cfg.Transport, "transport", minersim.TransportNetio, "socket handling: netio (the agent's own epoll loop, cheapest), nbio (nbio's epoll loops) or goroutine (one reader per connection)")
	fs.IntVar(&cfg.Pollers, "pollers", 1, "epoll loops of the netio and nbio transports")
	fs.BoolVar(&cfg.KernelArrival, "kernel-arrival", true, "netio transport: also measure the fan-out to the kernel's receive time in each miner's socket (SO_TIMESTAMPNS), which does not include this simulator's wait for a core")
	fs.IntVar(&cfg.DialConcurrency, "dialers", 32, "parallel dials")
	fs.DurationVar(&cfg.ReconnectMin, "reconnect-min", 250*time.Millisecond, "first reconnect backoff after a dropped connection (doubles per failure)")
	fs.DurationVar(&cfg.ReconnectMax, "reconnect-max", 30*time.Second, "largest reconnect backoff")
	fs.DurationVar(&cfg.HandshakeTimeout, "handshake-timeout", 30*time.Second, "drop and reconnect a miner not authorized within this time")
	fs.DurationVar(&opts.duration, "duration", 0, "stop after this long (0 = run until SIGINT or SIGTERM)")
	fs.StringVar(&opts.summary, "summary", "", "also write the JSON summary to this `file`")
	fs.DurationVar(&opts.statsEvery, "stats-every", 10*time.Second, "log a progress line to stderr this often (0 = never)")
	fs.StringVar(&opts.logLevel, "log-level", "warning", "log level: debug, info, warning, error")
	return fs
}

// run is main without the process exit, for tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var cfg minersim.Config
	var opts options
	fs := newFlags(&cfg, &opts, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "minersim: unexpected arguments %q\n", fs.Args())
		return 2
	}
	log := logrus.New()
	log.SetOutput(stderr)
	lvl, err := logrus.ParseLevel(opts.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "minersim: -log-level: %v\n", err)
		return 2
	}
	log.SetLevel(lvl)
	cfg.Logger = log
	// nbio logs to stdout by default, which would corrupt the JSON summary.
	logging.Output = stderr
	logging.SetLevel(logging.LevelWarn)

	mask, err := parseMask(opts.mask)
	if err != nil {
		fmt.Fprintf(stderr, "minersim: -version-mask: %v\n", err)
		return 2
	}
	cfg.VersionMask = mask
	if cfg.JobTimestamp, err = stampFunc(opts.stamp); err != nil {
		fmt.Fprintf(stderr, "minersim: -stamp: %v\n", err)
		return 2
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = -1 // the flag's 0 means none; the Config's 0 means default
	}

	if cfg.Transport == minersim.TransportNetio || cfg.Transport == "" {
		tuneProcs(max(cfg.Pollers, 1))
	}

	if opts.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.duration)
		defer cancel()
	}
	sim, err := minersim.Start(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "minersim: %v\n", err)
		return 1
	}
	log.Infof("minersim: %d miners -> %s (%s mode, %s transport)", cfg.Miners, cfg.Target, mode(cfg), sim.Stats().Transport)

	var tick <-chan time.Time
	if opts.statsEvery > 0 {
		t := time.NewTicker(opts.statsEvery)
		defer t.Stop()
		tick = t.C
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick:
			s := sim.Stats()
			fmt.Fprintf(stderr, "minersim: %s connected %d authorized %d sent %d accepted %d rejected %d unanswered %d notifies %d fan-out p99 %v cpu %.2f\n",
				s.Elapsed.Round(time.Second), s.Connected, s.Authorized, s.SharesSent, s.SharesAccepted,
				s.SharesSent-s.SharesAccepted-s.SharesUnanswered, s.SharesUnanswered, s.Notifies, s.FanoutP99, s.SelfCPU)
		}
	}
	sum := sim.Stop()
	out, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		fmt.Fprintf(stderr, "minersim: encoding summary: %v\n", err)
		return 1
	}
	out = append(out, '\n')
	if _, err := stdout.Write(out); err != nil {
		fmt.Fprintf(stderr, "minersim: writing summary: %v\n", err)
		return 1
	}
	if opts.summary != "" {
		if err := os.WriteFile(opts.summary, out, 0o644); err != nil {
			fmt.Fprintf(stderr, "minersim: writing summary: %v\n", err)
			return 1
		}
	}
	return 0
}

// defaultProcs is the runtime's own choice of GOMAXPROCS, taken before
// tuneProcs changes it, so that repeated runs (tests) do not add up.
var defaultProcs = runtime.GOMAXPROCS(0)

// tuneProcs gives the runtime one P more per netio event loop. On Linux
// each loop waits in epoll_pwait through RawSyscall and so keeps its P while
// it waits (actors/netio/loop_linux.go); without the extra P the scheduler,
// the dialers, the share timer goroutine and the GC would have a core less
// than the machine has, and would queue behind a loop that is mostly asleep
// in the kernel. The daemon does the same (cmd/btcagent). The extra P costs
// no CPU: its thread sleeps in the kernel. GOMAXPROCS in the environment
// wins, and elsewhere the portable loop blocks the ordinary way.
func tuneProcs(loops int) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOOS != "linux" {
		return
	}
	runtime.GOMAXPROCS(defaultProcs + loops)
}

func mode(cfg minersim.Config) string {
	if cfg.Hash {
		return "hash"
	}
	return "fast"
}

func parseMask(s string) (uint32, error) {
	var v uint32
	s = strings.TrimPrefix(strings.ToLower(s), "0x")
	if len(s) == 0 || len(s) > 8 {
		return 0, fmt.Errorf("%q is not a 32-bit hex mask", s)
	}
	if _, err := fmt.Sscanf(s, "%x", &v); err != nil {
		return 0, fmt.Errorf("%q is not a 32-bit hex mask: %w", s, err)
	}
	return v, nil
}

// stampFunc picks the job timestamp extractor named by -stamp.
func stampFunc(s string) (func(string) (time.Time, bool), error) {
	switch {
	case s == "poolsim":
		return poolsim.JobTimestamp, nil
	case s == "none" || s == "":
		return nil, nil
	case strings.HasPrefix(s, "hex:") && len(s) > len("hex:"):
		return minersim.HexStamp(strings.TrimPrefix(s, "hex:")), nil
	}
	return nil, fmt.Errorf("unknown stamp format %q (want poolsim, none or hex:MARKER)", s)
}
