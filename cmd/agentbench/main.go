// Command agentbench measures btcagent end to end on one machine: a pool
// simulator inside this process, the agent as its own process, and thousands
// of simulated miners in a third (see package internal/bench for the method).
//
//	agentbench -miners 1000,10000 -window 120s -out docs/bench-results.json -md docs/BENCHMARKS.md
//	agentbench -miners 10000 -soak 30m -pool-restart-every 5m -reconnect-percent 1
//	agentbench -miners 10000 -ref /path/to/cpp/btcagent -ref-kind cpp -runs 3
//
// With -ref it measures this agent and a reference agent (btccom's C++
// agent, or another build of this one) back to back under the same workload
// and reports both sides' medians and the ratios ours/ref.
//
// Without -bin it builds ./cmd/btcagent and ./cmd/minersim with the go tool
// into a temporary directory first, so `go run ./cmd/agentbench` works from
// a fresh checkout. Everything runs on 127.0.0.1 and stops by itself.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/btcagent/btcagent/internal/bench"
)

func main() {
	// The broadcast floor's reader is this binary started again: one
	// process cannot hold both ends of 10,000 connections.
	if os.Getenv(bench.FloorReaderEnv) == "1" {
		os.Exit(bench.ServeFloorReader())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// options are the command-line settings.
type options struct {
	miners           string
	runs             int
	bin              string
	agentBin         string
	minersimBin      string
	workDir          string
	keep             bool
	out              string
	md               string
	flush            string
	soak             time.Duration
	restartEvery     time.Duration
	reconnectPercent float64
	reconnectEvery   time.Duration
	ref              string
	refKind          string
	refLabel         string
	refRev           string
	order            string
	firstSides       []string // -order, parsed
	floor            bool
	bench.Options
}

func newFlags(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("agentbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: agentbench [flags]

Benchmarks btcagent with simulated miners and a simulated pool on 127.0.0.1:
agent RSS and CPU, pool-link bytes and TCP segments, job fan-out latency and
shares lost, for each -miners size; or, with -soak, a long run with pool
restarts and reconnecting miners; or, with -ref, this agent and a reference
agent back to back, with ratios ours/ref. Prints a table; -out and -md keep
results.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.miners, "miners", "1000", "miner counts to measure, comma-separated (at most ~19,900: each miner is a descriptor in the agent)")
	fs.IntVar(&o.runs, "runs", 1, "repetitions per size; reports show medians (maxima for losses)")
	fs.DurationVar(&o.Window, "window", 120*time.Second, "steady measurement window")
	fs.DurationVar(&o.Settle, "settle", 20*time.Second, "wait after all miners are in (and at least one job) before measuring")
	fs.DurationVar(&o.RampTimeout, "ramp-timeout", 5*time.Minute, "all miners must be authorized within this")
	fs.DurationVar(&o.SampleEvery, "sample-every", 0, "agent RSS sampling period (default 5s, 30s with -soak)")
	fs.Float64Var(&o.QuietBelow, "quiet-below", 0.25, "before each run, wait until fewer than this many cores are busy with other work")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 2*time.Minute, "longest wait for a quiet machine before measuring anyway (0: don't wait)")
	fs.IntVar(&o.Connections, "connections", 0, "agent upstream links (0: the agent's default)")
	fs.StringVar(&o.flush, "flush", "", "agent upstream.flush_interval, e.g. 20ms or 0 (empty: the agent's default)")
	fs.DurationVar(&o.ShareInterval, "share-interval", 10*time.Second, "time between shares of one miner")
	fs.Float64Var(&o.Jitter, "jitter", 0.2, "relative spread of -share-interval (0: none)")
	fs.DurationVar(&o.NotifyInterval, "notify-interval", 30*time.Second, "pool job period")
	fs.IntVar(&o.BlockEvery, "block-every", 10, "every Nth job is a new block")
	fs.IntVar(&o.Branches, "branches", 12, "merkle branches per job (12 gives a ~1.4 KB notify)")
	fs.Uint64Var(&o.Diff, "diff", 16384, "fixed share difficulty at the pool (power of two)")
	fs.IntVar(&o.Pollers, "minersim-pollers", 0, "epoll loops in minersim (0: its default of 1); more spread the miners' reads over cores")
	fs.StringVar(&o.Transport, "minersim-transport", "", "minersim's socket layer: netio, nbio or goroutine (empty: its default)")
	fs.IntVar(&o.DialRate, "rate", 0, "new miner connections per second (0: as fast as minersim dials)")
	fs.Func("agent-env", "`KEY=VALUE` added to the agent's environment, e.g. GOGC=50 (repeatable; such rows are kept apart from default ones)", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return fmt.Errorf("%q is not KEY=VALUE", v)
		}
		o.AgentEnv = append(o.AgentEnv, v)
		return nil
	})
	fs.StringVar(&o.bin, "bin", "", "directory with prebuilt btcagent and minersim (e.g. bin after make build); empty: build them")
	fs.StringVar(&o.agentBin, "agent", "", "btcagent binary to measure (overrides -bin)")
	fs.StringVar(&o.minersimBin, "minersim", "", "minersim binary (overrides -bin)")
	fs.StringVar(&o.workDir, "workdir", "", "directory for configs, logs and summaries (default: a temporary one, removed after a clean run)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory after a clean run")
	fs.StringVar(&o.out, "out", "", "results JSON file to update (entries with the same size and link settings are replaced)")
	fs.StringVar(&o.md, "md", "", "markdown file whose generated section is rewritten from the results")
	fs.DurationVar(&o.soak, "soak", 0, "soak mode: run this long with the first -miners size instead of a load run")
	fs.DurationVar(&o.restartEvery, "pool-restart-every", 0, "soak: restart the pool this often (0: never)")
	fs.Float64Var(&o.reconnectPercent, "reconnect-percent", 0, "soak: percentage of miners that disconnect and reconnect every -reconnect-every")
	fs.DurationVar(&o.reconnectEvery, "reconnect-every", time.Minute, "soak: period of the reconnecting miners")
	fs.StringVar(&o.ref, "ref", "", "reference agent binary: measure it and this agent back to back under the same workload and report ours/ref")
	fs.StringVar(&o.refKind, "ref-kind", bench.KindCpp, "what -ref is: cpp (btccom's C++ agent: legacy JSON config, -l log directory, 5 links) or go (another build of this agent)")
	fs.StringVar(&o.refLabel, "ref-label", "", "name of the reference in reports, e.g. 'C++ btcagent d61642c' (default: by -ref-kind)")
	fs.StringVar(&o.refRev, "ref-rev", "", "revision the reference was built from, recorded with the results (Go builds carry their own)")
	fs.BoolVar(&o.floor, "floor", true, "before each size's first run, measure this machine's broadcast floor (one notify-sized write to each of N loopback connections, 2 and 1 writers) and report fan-out in multiples of it")
	fs.StringVar(&o.order, "order", "ours,ref", "with -ref: which side runs first in run 1; later runs alternate")
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlags(&o, stderr)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "agentbench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	sizes, err := parseSizes(o.miners)
	if err == nil {
		err = o.check(sizes)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentbench: %v\n", err)
		return 2
	}
	logf := func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	o.Logf = logf
	if o.Jitter == 0 {
		o.Jitter = -1 // the flag's 0 means none; Options' 0 means the default
	}

	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "agentbench-"); err != nil {
			fmt.Fprintf(stderr, "agentbench: %v\n", err)
			return 1
		}
	}
	clean := false
	defer func() {
		if clean && !o.keep && o.workDir == "" {
			os.RemoveAll(work)
		} else {
			logf("logs, configs and summaries kept in %s", work)
		}
	}()
	if err := o.binaries(ctx, work, logf); err != nil {
		fmt.Fprintf(stderr, "agentbench: %v\n", err)
		return 1
	}
	machine := bench.ThisMachine()
	agentInfo := bench.ReadBinaryInfo(o.AgentBin)
	if agentInfo.Revision == "" && o.agentBin == "" {
		// Builds made with -buildvcs=false (a common GOFLAGS setting) carry
		// no revision; the checkout they were built from is the next best.
		agentInfo.Revision = headRevision(ctx)
		agentInfo.Checkout = agentInfo.Revision != ""
	}
	if agentInfo.GoVersion != "" {
		machine.GoVersion = agentInfo.GoVersion
	}
	command := commandLine(args)
	logf("agentbench on %s", machine)

	switch {
	case o.ref != "":
		err = o.runCompare(ctx, sizes, work, machine, agentInfo, command, stdout)
	case o.soak > 0:
		err = o.runSoak(ctx, sizes[0], work, machine, agentInfo, command, stdout)
	default:
		err = o.runLoad(ctx, sizes, work, machine, agentInfo, command, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "agentbench: %v\n", err)
		return 1
	}
	clean = true
	return 0
}

func (o *options) check(sizes []int) error {
	if o.runs < 1 || o.runs > 20 {
		return fmt.Errorf("-runs %d: want 1..20", o.runs)
	}
	if o.Window < time.Second || o.Window > 2*time.Hour {
		return fmt.Errorf("-window %v: want 1s..2h", o.Window)
	}
	if o.soak < 0 || o.soak > 48*time.Hour {
		return fmt.Errorf("-soak %v: want at most 48h", o.soak)
	}
	if o.reconnectPercent < 0 || o.reconnectPercent > 100 {
		return fmt.Errorf("-reconnect-percent %g: want 0..100", o.reconnectPercent)
	}
	if o.soak > 0 && o.reconnectPercent > 0 && o.reconnectEvery < 10*time.Second {
		return fmt.Errorf("-reconnect-every %v: want at least 10s so that the miners get back in between", o.reconnectEvery)
	}
	if o.ref != "" {
		if o.soak > 0 {
			return errors.New("-ref compares load runs; it cannot be combined with -soak")
		}
		if o.refKind != bench.KindCpp && o.refKind != bench.KindGo {
			return fmt.Errorf("-ref-kind %q: want %s or %s", o.refKind, bench.KindCpp, bench.KindGo)
		}
		if o.refKind == bench.KindCpp && o.Diff > math.MaxUint32 {
			// It reads mining.set_difficulty into a uint32; a larger value
			// would be truncated and every share mis-targeted.
			return fmt.Errorf("-diff %d: the C++ agent takes at most %d", o.Diff, uint64(math.MaxUint32))
		}
		sides, err := parseOrder(o.order)
		if err != nil {
			return err
		}
		o.firstSides = sides
	}
	if o.flush != "" {
		d, err := time.ParseDuration(o.flush)
		if err != nil {
			return fmt.Errorf("-flush: %w", err)
		}
		o.Flush = &d
	}
	if o.SampleEvery == 0 {
		o.SampleEvery = 5 * time.Second
		if o.soak > 0 {
			o.SampleEvery = 30 * time.Second
		}
	}
	if lim := openFilesLimit(); lim > 0 {
		for _, n := range sizes {
			// The agent needs a descriptor per miner plus its links, listener,
			// log and runtime; minersim likewise.
			if uint64(n)+100 > lim {
				return fmt.Errorf("-miners %d: the open-files hard limit is %d; at most %d miners fit", n, lim, lim-100)
			}
		}
	}
	return nil
}

// parseSizes reads "1000,10000,19000".
func parseSizes(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.ReplaceAll(strings.TrimSpace(f), "_", "")
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-miners: %q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("-miners: no size given")
	}
	return out, nil
}

// binaries locates or builds btcagent and minersim.
func (o *options) binaries(ctx context.Context, work string, logf func(string, ...any)) error {
	o.AgentBin, o.MinersimBin = o.agentBin, o.minersimBin
	if o.bin != "" {
		if o.AgentBin == "" {
			o.AgentBin = filepath.Join(o.bin, "btcagent")
		}
		if o.MinersimBin == "" {
			o.MinersimBin = filepath.Join(o.bin, "minersim")
		}
	}
	if o.AgentBin == "" || o.MinersimBin == "" {
		dir := filepath.Join(work, "bin")
		if err := build(ctx, dir, logf); err != nil {
			return err
		}
		if o.AgentBin == "" {
			o.AgentBin = filepath.Join(dir, "btcagent")
		}
		if o.MinersimBin == "" {
			o.MinersimBin = filepath.Join(dir, "minersim")
		}
	}
	for _, p := range []string{o.AgentBin, o.MinersimBin, o.ref} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
	}
	return nil
}

// build compiles the agent and the miner simulator from the module that
// contains the working directory.
func build(ctx context.Context, dir string, logf func(string, ...any)) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD (is the go tool installed?): %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return errors.New("not inside the btcagent module: run from the repository or pass -bin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create build directory: %w", err)
	}
	logf("building btcagent and minersim into %s", dir)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+string(filepath.Separator), "./cmd/btcagent", "./cmd/minersim")
	cmd.Dir = filepath.Dir(mod)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	return nil
}

// headRevision is the commit checked out in the working directory, or "".
// rev-parse only reads the repository.
func headRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// commandLine is the command as a user would retype it.
func commandLine(args []string) string {
	name := args[0]
	if strings.Contains(name, "go-build") {
		name = "go run ./cmd/agentbench"
	}
	parts := []string{name}
	for _, a := range args[1:] {
		if strings.ContainsAny(a, " \t'\"$`\\") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func (o *options) runLoad(ctx context.Context, sizes []int, work string, m bench.Machine, agent bench.BinaryInfo, command string, stdout io.Writer) error {
	var entries []bench.Entry
	var failure error
	for _, n := range sizes {
		var runs []bench.Result
		floor, err := o.measureFloor(ctx, n, work)
		if err != nil {
			failure = err
			break
		}
		for k := 1; k <= o.runs && failure == nil; k++ {
			ro := o.Options
			ro.Miners = n
			ro.Floor = floor
			ro.Dir = filepath.Join(work, fmt.Sprintf("miners-%d-run-%d", n, k))
			o.Logf("%d miners, run %d/%d (logs in %s)", n, k, o.runs, ro.Dir)
			r, err := bench.Run(ctx, ro)
			if err != nil {
				failure = fmt.Errorf("%d miners, run %d: %w", n, k, err)
				break
			}
			runs = append(runs, r)
			_ = bench.WriteTable(os.Stderr, []bench.Result{r})
		}
		if len(runs) == o.runs {
			entries = append(entries, bench.NewEntry(runs, time.Now().UTC().Truncate(time.Second), command, m, agent))
		}
		if failure != nil {
			break
		}
	}
	if len(entries) > 0 {
		if o.runs > 1 {
			fmt.Fprintf(stdout, "\nmedians of %d runs (maxima for losses):\n", o.runs)
		}
		sums := make([]bench.Result, len(entries))
		for i, e := range entries {
			sums[i] = e.Result
		}
		fmt.Fprintln(stdout)
		if err := bench.WriteTable(stdout, sums); err != nil {
			return err
		}
		for _, e := range entries {
			for _, n := range e.Notes {
				fmt.Fprintf(stdout, "note (%d miners): %s\n", e.Result.Miners, n)
			}
		}
		if err := o.save(func(db *bench.DB) {
			for _, e := range entries {
				db.Add(e)
			}
		}); err != nil {
			return errors.Join(failure, err)
		}
	}
	return failure
}

func (o *options) runSoak(ctx context.Context, n int, work string, m bench.Machine, agent bench.BinaryInfo, command string, stdout io.Writer) error {
	so := bench.SoakOptions{
		Options: o.Options, Duration: o.soak, RestartEvery: o.restartEvery,
		ReconnectPercent: o.reconnectPercent, ReconnectEvery: o.reconnectEvery,
	}
	so.Miners = n
	so.Dir = filepath.Join(work, fmt.Sprintf("soak-%d", n))
	o.Logf("soak: %s (logs in %s)", so, so.Dir)
	r, err := bench.Soak(ctx, so)
	if err != nil {
		return fmt.Errorf("soak: %w", err)
	}
	fmt.Fprintf(stdout, "\nsoak: %d miners for %.1f min, %d pool restarts, %d cycles of %d reconnecting miners\n",
		r.Miners, r.DurationS/60, r.PoolRestarts, r.ChurnCycles, r.ChurnMiners)
	fmt.Fprintf(stdout, "agent RSS %.1f -> %.1f MiB (max %.1f, HWM %.1f, drift %.0f KiB/min, %.0f in the second half), CPU %.3f cores, threads max %d\n",
		r.RSSFirstMiB, r.RSSLastMiB, r.RSSMaxMiB, r.HWMMiB, r.RSSSlopeKiBPerMin, r.RSSLateKiBPerMin, r.AgentCPU, r.ThreadsMax)
	fmt.Fprintf(stdout, "shares sent %d, accepted %d, rejected %d, dropped %d, lost %d\n",
		r.SharesSent, r.PoolAccepted, r.PoolRejected, r.PoolDropped, r.SharesLost)
	fmt.Fprintf(stdout, "stable miners dropped %d (reconnects %d); churn cycles incomplete %d; unplanned churn disconnects %d\n",
		r.StableDisconnects, r.StableReconnects, r.ChurnIncomplete, r.ChurnDisconnects)
	for _, e := range r.Errors {
		fmt.Fprintf(stdout, "error during soak: %s\n", e)
	}
	return o.save(func(db *bench.DB) {
		db.AddSoak(bench.SoakEntry{Date: time.Now().UTC().Truncate(time.Second), Command: command, Machine: m, Agent: agent, Result: r})
	})
}

// save merges new results into -out and regenerates -md from it (or from
// the new results alone when there is no -out).
func (o *options) save(add func(*bench.DB)) error {
	var db bench.DB
	var err error
	if o.out != "" {
		if db, err = bench.LoadDB(o.out); err != nil {
			return err
		}
	}
	add(&db)
	if o.out != "" {
		if err := bench.SaveDB(o.out, db); err != nil {
			return err
		}
	}
	if o.md != "" {
		if err := bench.UpdateMarkdown(o.md, bench.RenderMarkdown(db)); err != nil {
			return err
		}
	}
	return nil
}

// parseOrder reads -order: "ours,ref" or "ref,ours".
func parseOrder(s string) ([]string, error) {
	var sides []string
	for f := range strings.SplitSeq(s, ",") {
		sides = append(sides, strings.TrimSpace(f))
	}
	if slices.Equal(sides, []string{bench.SideOurs, bench.SideRef}) || slices.Equal(sides, []string{bench.SideRef, bench.SideOurs}) {
		return sides, nil
	}
	return nil, fmt.Errorf("-order %q: want %s,%s or %s,%s", s, bench.SideOurs, bench.SideRef, bench.SideRef, bench.SideOurs)
}

// runOrder is the sequence of sides for runs repetitions: first as given,
// then alternating, so neither agent always runs on a machine that has just
// been loaded by the other (or always first after an idle period).
func runOrder(first []string, runs int) []string {
	out := make([]string, 0, 2*runs)
	for k := range runs {
		if k%2 == 0 {
			out = append(out, first[0], first[1])
		} else {
			out = append(out, first[1], first[0])
		}
	}
	return out
}

// measureFloor measures the broadcast floor for n miners unless -floor=false
// (then it returns nil). A floor that cannot be measured leaves the runs
// without it rather than stopping them; only an interrupt is an error.
func (o *options) measureFloor(ctx context.Context, n int, work string) (*bench.Floor, error) {
	if !o.floor {
		return nil, nil
	}
	fo := o.Options
	fo.Miners = n
	fo.Dir = filepath.Join(work, fmt.Sprintf("miners-%d-floor", n))
	o.Logf("%d miners: broadcast floor (logs in %s)", n, fo.Dir)
	f, err := bench.FloorFor(ctx, fo)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%d miners, floor: %w", n, err)
		}
		o.Logf("  warning: broadcast floor not measured: %v", err)
		return nil, nil
	}
	o.Logf("  floor: %s", f)
	return f, nil
}

// refSide describes the reference agent for reports.
func (o *options) refSide() bench.CompareSide {
	s := bench.CompareSide{Kind: o.refKind, Label: o.refLabel, Bin: o.ref, Build: bench.ReadBinaryInfo(o.ref)}
	if o.refRev != "" {
		s.Build.Revision = o.refRev
	}
	return s
}

// runCompare measures this agent and the reference alternately, -runs
// times each per size, and reports both sides' medians and their ratios.
// Both sides get the same Options (pool, miners, windows); only the agent
// binary and kind differ, and -agent-env applies to ours only.
func (o *options) runCompare(ctx context.Context, sizes []int, work string, m bench.Machine, agent bench.BinaryInfo, command string, stdout io.Writer) error {
	var failure error
	for _, n := range sizes {
		ours := bench.CompareSide{Kind: bench.KindGo, Label: "this agent", Bin: o.AgentBin, Build: agent}
		ref := o.refSide()
		order := runOrder(o.firstSides, o.runs)
		floor, err := o.measureFloor(ctx, n, work)
		if err != nil {
			failure = err
			break
		}
		for i, side := range order {
			k := i/2 + 1
			ro := o.Options
			ro.Miners = n
			ro.Floor = floor
			ro.Dir = filepath.Join(work, fmt.Sprintf("miners-%d-run-%d-%s", n, k, side))
			if side == bench.SideRef {
				ro.AgentBin, ro.AgentKind, ro.AgentEnv = o.ref, o.refKind, nil
			}
			o.Logf("%d miners, run %d/%d, %s (logs in %s)", n, k, o.runs, side, ro.Dir)
			r, err := bench.Run(ctx, ro)
			if err != nil {
				failure = fmt.Errorf("%d miners, run %d, %s: %w", n, k, side, err)
				break
			}
			if side == bench.SideRef {
				ref.Raw = append(ref.Raw, r)
			} else {
				ours.Raw = append(ours.Raw, r)
			}
			_ = bench.WriteTable(os.Stderr, []bench.Result{r})
		}
		if len(ours.Raw) > 0 && len(ref.Raw) > 0 {
			c := bench.NewComparison(ours, ref, order[:len(ours.Raw)+len(ref.Raw)], time.Now().UTC().Truncate(time.Second), command, m)
			fmt.Fprintln(stdout)
			if err := bench.WriteComparison(stdout, c); err != nil {
				return errors.Join(failure, err)
			}
			if err := o.save(func(db *bench.DB) { db.AddComparison(c) }); err != nil {
				return errors.Join(failure, err)
			}
		}
		if failure != nil {
			break
		}
	}
	return failure
}
