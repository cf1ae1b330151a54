// Command poolsim runs the btcpool sserver stand-in of package sim/poolsim:
// plain Stratum V1 for miners and the BTCAgent protocol for btccom agents,
// with real or structural share validation, vardiff and per-connection
// statistics. Run "poolsim -h" for the flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "poolsim:", err)
		os.Exit(1)
	}
}

// run parses the flags, runs the pool until SIGINT or SIGTERM and shuts it
// down; usage and flag errors go to stderr.
func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("poolsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: poolsim [flags]

A btcpool sserver stand-in for testing and benchmarking btcagent. Miners speak
Stratum V1; connections whose mining.subscribe user agent starts with
"btccom-agent/" get the BTCAgent protocol (ex-messages, SET_DIFF, subres).
Every job carries its send time in coinb1 ("/ps:<unix-nano hex>/") so that a
miner simulator can measure job fan-out latency. With -sv2-listen it also
speaks Stratum V2 (Noise, extended and standard channels) on a second address
and logs the authority public key clients must configure.

Flags:
`)
		fs.PrintDefaults()
	}
	var cfg poolsim.Config
	finish := cfg.RegisterFlags(fs)
	logLevel := fs.String("log-level", "info", "log level: debug (every pool event), info, warn, error")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	finish()
	lvl, err := logrus.ParseLevel(*logLevel)
	if err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := logrus.New()
	log.SetOutput(stderr)
	log.SetLevel(lvl)
	cfg.Logger = log

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	p, err := poolsim.Start(cfg)
	if err != nil {
		return err
	}
	fields := logrus.Fields{"addr": p.Addr()}
	if a := p.StatsAddr(); a != "" {
		fields["stats"] = "http://" + a + "/stats"
	}
	log.WithFields(fields).Info("poolsim running")
	<-ctx.Done()
	log.Info("poolsim stopping")
	// Close writes the stats file one last time.
	if err := p.Close(); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
