package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// child is a process the harness started: the agent or a miner simulator.
// Its stderr goes to a log file, line by line through an optional callback
// (minersim's progress lines are the harness's live view of the miners).
type child struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has exited and its output is flushed
	err  error         // Wait's result, valid after done
}

// startChild runs bin with args and, added to this process's environment,
// env. Stdout goes to stdoutPath, stderr to logPath; onLine (may be nil)
// sees every complete stderr line.
func startChild(name, logPath, stdoutPath string, onLine func(string), env []string, bin string, args ...string) (*child, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("%s: create log: %w", name, err)
	}
	outf, err := os.Create(stdoutPath)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("%s: create stdout file: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = outf
	cmd.Stderr = &lineWriter{w: logf, onLine: onLine}
	// A grandchild holding the pipes must not keep Wait blocked forever.
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		logf.Close()
		outf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logf, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		outf.Close()
		logf.Close()
		close(c.done)
	}()
	return c, nil
}

// Pid is the process id, for /proc readings.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (c *child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// ExitError describes how the process ended, for error messages.
func (c *child) ExitError() error {
	if !c.Exited() {
		return nil
	}
	if c.err == nil {
		return fmt.Errorf("%s exited", c.name)
	}
	return fmt.Errorf("%s exited: %w", c.name, c.err)
}

// Stop asks the process to end with SIGTERM (both the agent and minersim
// shut down cleanly on it; minersim writes its summary) and kills it if it
// is still running after grace. It returns the exit error of a process that
// had to be killed, or nil.
func (c *child) Stop(grace time.Duration) error {
	if c.Exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	_ = c.cmd.Process.Kill()
	k := time.NewTimer(10 * time.Second)
	defer k.Stop()
	select {
	case <-c.done:
		return fmt.Errorf("%s did not stop within %v of SIGTERM and was killed", c.name, grace)
	case <-k.C:
		return fmt.Errorf("%s (pid %d) survived SIGKILL for 10s", c.name, c.Pid())
	}
}

// lineWriter splits a stream into lines for a callback while copying it to
// w. os/exec writes from a single goroutine, so it needs no lock for the
// buffer; the mutex only guards against misuse.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	onLine func(string)
	buf    []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(p); err != nil {
		return 0, err
	}
	if l.onLine == nil {
		return len(p), nil
	}
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.onLine(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	// A runaway line without a newline must not grow without bound.
	if len(l.buf) > 64<<10 {
		l.buf = l.buf[:0]
	}
	return len(p), nil
}
