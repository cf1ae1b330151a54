package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/btcagent/btcagent/sim/poolsim"
	"github.com/sirupsen/logrus"
)

// FloorReaderEnv, set to "1" in a process's environment, makes the agentbench
// binary (or a test binary, see TestMain) run as the floor's reader
// (ServeFloorReader) instead of doing its usual work. A variable rather than
// a flag keeps the mode out of -h and out of flag parsing.
const FloorReaderEnv = "AGENTBENCH_FLOOR_READER"

// FloorOptions configure MeasureFloor.
type FloorOptions struct {
	Conns   int           // loopback connections, one per simulated miner
	Bytes   int           // one write of this many bytes per connection and broadcast
	Writers []int         // writer goroutine counts to measure, default {2, 1}
	Rounds  int           // broadcasts per writer count, default 7
	Pause   time.Duration // quiet time between rounds once the reader has drained, default 200ms
	Exe     string        // binary to start as the reader, default os.Executable()
	Env     []string      // extra KEY=VALUE for the reader (tests)
	Timeout time.Duration // longest wait for one step of the reader, default 60s
	LogPath string        // the reader's stderr; empty: discarded
}

func (o FloorOptions) withDefaults() (FloorOptions, error) {
	if len(o.Writers) == 0 {
		o.Writers = []int{2, 1}
	}
	if o.Rounds == 0 {
		o.Rounds = 7
	}
	if o.Pause == 0 {
		o.Pause = 200 * time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("floor: locate own binary for the reader: %w", err)
		}
		o.Exe = exe
	}
	if o.Conns < 1 || o.Bytes < 1 || o.Rounds < 1 {
		return o, fmt.Errorf("floor: want at least one connection, byte and round (got %d, %d, %d)", o.Conns, o.Bytes, o.Rounds)
	}
	for _, w := range o.Writers {
		if w < 1 || w > o.Conns {
			return o, fmt.Errorf("floor: %d writers for %d connections", w, o.Conns)
		}
	}
	return o, nil
}

// Floor is this machine's broadcast floor: how long the kernel and the Go
// runtime alone need to put one notify-sized write on every one of N
// loopback connections, with nothing of the agent involved. The agent's
// fan-out cannot beat it on the same machine, so fan-out figures divided
// by it say how much of a broadcast is the agent's own.
type Floor struct {
	Conns     int        `json:"conns"`
	Bytes     int        `json:"bytes"` // per write
	Rounds    int        `json:"rounds"`
	Runs      []FloorRun `json:"runs"`       // one per writer count, in the order measured
	ReadBytes int64      `json:"read_bytes"` // everything the reader received
}

// FloorRun is the broadcasts of one writer count. A broadcast is timed from
// the first write's start to the last write's return, and again to the
// reader's read of the last bytes (drained): the first is the floor of an
// agent's broadcast, the second of a fan-out measured where the simulated
// miners read, by a reader that shares the cores with the writers.
type FloorRun struct {
	Writers         int       `json:"writers"`
	RoundsMs        []float64 `json:"rounds_ms"`
	MedianMs        float64   `json:"median_ms"`
	MinMs           float64   `json:"min_ms"`
	MaxMs           float64   `json:"max_ms"`
	DrainedMs       []float64 `json:"drained_ms,omitempty"`
	DrainedMedianMs float64   `json:"drained_median_ms,omitempty"`
	WriteErrors     int       `json:"write_errors"`
}

// Run returns the run with w writers.
func (f *Floor) Run(w int) (FloorRun, bool) {
	if f == nil {
		return FloorRun{}, false
	}
	for _, r := range f.Runs {
		if r.Writers == w {
			return r, true
		}
	}
	return FloorRun{}, false
}

// MeasureFloor opens o.Conns loopback connections to a reader in a child
// process and times o.Rounds broadcasts per writer count. The reader is a
// separate process because both ends of 10,000 connections in one process
// would pass a 20,000 open-files limit, and because the miners are a
// separate process in the load runs too. Writer counts alternate round by
// round so that a noisy spell on the shared machine hits both alike.
func MeasureFloor(ctx context.Context, o FloorOptions) (f Floor, err error) {
	if o, err = o.withDefaults(); err != nil {
		return f, err
	}
	f = Floor{Conns: o.Conns, Bytes: o.Bytes, Rounds: o.Rounds}
	rd, err := startFloorReader(o)
	if err != nil {
		return f, err
	}
	var conns []net.Conn
	defer func() {
		// The reader goes first: it then does the active close, so the
		// TIME_WAIT entries sit on its listening port and use none of the
		// ephemeral ports the miners of the next run dial from.
		read, rerr := rd.finish(o.Timeout)
		for _, c := range conns {
			c.Close()
		}
		if rerr != nil {
			err = errors.Join(err, rerr)
			return
		}
		f.ReadBytes = read.bytes
		failed := 0
		for _, r := range f.Runs {
			failed += r.WriteErrors
		}
		// A failed write leaves its connection short; it is reported as a
		// write error, not as a reader that lost data.
		if err == nil && (read.accepted != o.Conns || (failed == 0 && read.minConn != read.maxConn)) {
			err = fmt.Errorf("floor: reader saw %d connections, %d to %d bytes each; want %d with the same count", read.accepted, read.minConn, read.maxConn, o.Conns)
		}
	}()

	var d net.Dialer
	conns = make([]net.Conn, 0, o.Conns)
	for range o.Conns {
		c, err := d.DialContext(ctx, "tcp", rd.addr)
		if err != nil {
			return f, fmt.Errorf("floor: connection %d of %d: %w", len(conns)+1, o.Conns, err)
		}
		conns = append(conns, c)
	}
	if _, err := rd.sync(ctx, o.Conns, 0, o.Timeout); err != nil {
		return f, err
	}

	line := floorLine(o.Bytes)
	runs := make([]FloorRun, len(o.Writers))
	for i, w := range o.Writers {
		runs[i].Writers = w
	}
	var written int64
	pause := time.NewTimer(0)
	defer pause.Stop()
	for range o.Rounds {
		for i, w := range o.Writers {
			select {
			case <-pause.C:
			case <-ctx.Done():
				return f, ctx.Err()
			}
			first, d, n, errs := broadcast(conns, line, w)
			written += n
			runs[i].RoundsMs = append(runs[i].RoundsMs, float64(d)/float64(time.Millisecond))
			runs[i].WriteErrors += errs
			// The next round starts on empty socket buffers and an idle
			// reader, as a pool job does: 30 s apart.
			last, err := rd.sync(ctx, o.Conns, written, o.Timeout)
			if err != nil {
				return f, err
			}
			if last > 0 {
				runs[i].DrainedMs = append(runs[i].DrainedMs, float64(last-first.UnixNano())/float64(time.Millisecond))
			}
			pause.Reset(o.Pause)
		}
	}
	for i := range runs {
		r := &runs[i]
		r.MedianMs, r.MinMs, r.MaxMs = Median(r.RoundsMs), slices.Min(r.RoundsMs), slices.Max(r.RoundsMs)
		if len(r.DrainedMs) > 0 {
			r.DrainedMedianMs = Median(r.DrainedMs)
		}
	}
	f.Runs = runs
	return f, nil
}

// floorLine is a stand-in for a notify line: printable, newline-terminated.
func floorLine(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = "0123456789abcdef"[i%16]
	}
	b[n-1] = '\n'
	return b
}

// broadcast writes line once to every connection from w goroutines, each
// taking a contiguous share, and returns the first write's start, the time
// from it to the last write's return, the bytes written and the failed
// writes.
// The goroutines are all parked before any starts, so their start-up is
// not timed, and each reads the clock itself so that the scheduling of the
// release is not timed either.
func broadcast(conns []net.Conn, line []byte, w int) (time.Time, time.Duration, int64, int) {
	type span struct {
		start, end time.Time
		n          int64
		errs       int
	}
	spans := make([]span, w)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for k := range w {
		part := conns[k*len(conns)/w : (k+1)*len(conns)/w]
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			s := &spans[k]
			s.start = time.Now()
			for _, c := range part {
				// net.Conn.Write returns only once all of line is written
				// or the connection failed.
				n, err := c.Write(line)
				s.n += int64(n)
				if err != nil {
					s.errs++
				}
			}
			s.end = time.Now()
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	first, last := spans[0].start, spans[0].end
	var n int64
	var errs int
	for _, s := range spans {
		if s.start.Before(first) {
			first = s.start
		}
		if s.end.After(last) {
			last = s.end
		}
		n += s.n
		errs += s.errs
	}
	return first, last.Sub(first), n, errs
}

// floorReader is the parent's handle on the reader process. The protocol
// is line-based over its stdin and stdout (see ServeFloorReader).
type floorReader struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // the reader's stdout, closed at its end
	addr  string
	log   *os.File
}

func startFloorReader(o FloorOptions) (_ *floorReader, err error) {
	cmd := exec.Command(o.Exe)
	cmd.Env = append(append(os.Environ(), o.Env...), FloorReaderEnv+"=1")
	r := &floorReader{cmd: cmd, lines: make(chan string, 4)}
	if o.LogPath != "" {
		if r.log, err = os.Create(o.LogPath); err != nil {
			return nil, fmt.Errorf("floor: reader log: %w", err)
		}
		cmd.Stderr = r.log
	}
	defer func() {
		if err != nil && r.log != nil {
			r.log.Close()
		}
	}()
	if r.in, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("floor: reader stdin: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("floor: reader stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("floor: start reader %s: %w", o.Exe, err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
	}()
	line, err := r.next(context.Background(), o.Timeout)
	if err == nil {
		var ok bool
		if r.addr, ok = strings.CutPrefix(line, "listen "); !ok {
			err = fmt.Errorf("floor: reader said %q, want its address", line)
		}
	}
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	return r, nil
}

// next is the reader's next stdout line.
func (r *floorReader) next(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case line, ok := <-r.lines:
		if !ok {
			return "", errors.New("floor: reader ended early (see its log)")
		}
		if msg, bad := strings.CutPrefix(line, "error "); bad {
			return "", fmt.Errorf("floor: reader: %s", msg)
		}
		return line, nil
	case <-t.C:
		return "", fmt.Errorf("floor: reader silent for %v", timeout)
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// sync waits until the reader has accepted conns connections and read
// bytes bytes in all, and returns when it read the newest of them (unix
// nanoseconds; 0 if it read nothing yet).
func (r *floorReader) sync(ctx context.Context, conns int, bytes int64, timeout time.Duration) (int64, error) {
	if _, err := fmt.Fprintf(r.in, "sync %d %d\n", conns, bytes); err != nil {
		return 0, fmt.Errorf("floor: ask reader: %w", err)
	}
	line, err := r.next(ctx, timeout)
	if err != nil {
		return 0, fmt.Errorf("waiting for %d connections and %d bytes: %w", conns, bytes, err)
	}
	var gotConns int
	var gotBytes, last int64
	if _, err := fmt.Sscanf(line, "ok %d %d %d", &gotConns, &gotBytes, &last); err != nil {
		return 0, fmt.Errorf("floor: reader said %q, want ok <conns> <bytes> <last read>", line)
	}
	return last, nil
}

// readerTotals is the reader's final report.
type readerTotals struct {
	accepted         int
	bytes            int64
	minConn, maxConn int64 // bytes of the connection that got the fewest and the most
}

// finish closes the reader's stdin, which ends it, and returns its report.
func (r *floorReader) finish(timeout time.Duration) (readerTotals, error) {
	var t readerTotals
	r.in.Close()
	line, err := r.next(context.Background(), timeout)
	if err == nil {
		_, err = fmt.Sscanf(line, "done %d %d %d %d", &t.accepted, &t.bytes, &t.minConn, &t.maxConn)
		if err != nil {
			err = fmt.Errorf("floor: reader's report %q: %w", line, err)
		}
	}
	if err != nil {
		_ = r.cmd.Process.Kill()
	}
	// Drain so that the stdout goroutine ends and Wait can return.
	for range r.lines {
	}
	if werr := r.cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("floor: reader: %w", werr)
	}
	if r.log != nil {
		r.log.Close()
	}
	return t, err
}

// NotifyLineSize is the size of the notify line miners receive in the
// workload o describes: a job of a pool simulator configured as in Run,
// rebuilt the way the agent rebuilds it for miners (its generation prefix
// on the job id, the pool's 4-byte extranonce1 appended to coinb1).
func NotifyLineSize(o Options) (int, error) {
	o = o.withDefaults()
	log := logrus.New()
	log.SetOutput(io.Discard)
	pool, err := poolsim.Start(poolConfig(o, log))
	if err != nil {
		return 0, fmt.Errorf("pool simulator for the notify size: %w", err)
	}
	defer pool.Close()
	n := pool.CurrentJob()
	n.JobID = "1." + n.JobID
	// A job that is not a new block is the common case: clean_jobs false.
	return len(n.AppendLine(nil, "00000000", false)), nil
}

// floorCommand parses one command line of the parent.
func floorCommand(line string) (conns int, bytes int64, err error) {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "sync" {
		return 0, 0, fmt.Errorf("unknown command %q", line)
	}
	if conns, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("command %q: %w", line, err)
	}
	if bytes, err = strconv.ParseInt(f[2], 10, 64); err != nil {
		return 0, 0, fmt.Errorf("command %q: %w", line, err)
	}
	return conns, bytes, nil
}

// FloorFor measures the floor for one size of o's workload: o.Miners
// connections, writes the size of its notify line, after the same wait for a
// quiet machine as a run. The reader's log goes to o.Dir.
func FloorFor(ctx context.Context, o Options) (*Floor, error) {
	o = o.withDefaults()
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("floor: create directory: %w", err)
	}
	size, err := NotifyLineSize(o)
	if err != nil {
		return nil, err
	}
	if err := waitQuiet(ctx, o); err != nil {
		return nil, err
	}
	f, err := MeasureFloor(ctx, FloorOptions{Conns: o.Miners, Bytes: size, LogPath: filepath.Join(o.Dir, "floor-reader.log")})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// String is the floor in one line for the terminal.
func (f *Floor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s connections × %d B, %d rounds:", format(float64(f.Conns), 0), f.Bytes, f.Rounds)
	for _, r := range f.Runs {
		fmt.Fprintf(&b, " %d writer(s) median %.1f ms (%.1f–%.1f)", r.Writers, r.MedianMs, r.MinMs, r.MaxMs)
		if r.WriteErrors > 0 {
			fmt.Fprintf(&b, ", %d write errors", r.WriteErrors)
		}
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}
