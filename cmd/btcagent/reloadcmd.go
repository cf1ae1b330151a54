package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/btcagent/btcagent/plugins"
)

// reloadCmd asks a running agent to re-read its config by sending it SIGHUP.
// The process is found through -pidfile, or else (Linux) by looking for the
// one other btcagent process that runs as an agent. With -c the file is
// checked first, so a typo is reported here instead of only in the agent's
// log (the agent would refuse it too, and keep running).
func reloadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("btcagent reload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pidFile := fs.String("pidfile", "", "pid file the agent was started with (-pidfile); empty: look for the running agent")
	cfgPath := fs.String("c", "", "check this config file before signalling (the agent re-reads the file it was started with)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *cfgPath != "" {
		cfg, _, err := loadConfig(*cfgPath)
		if err == nil {
			err = plugins.Validate(cfg.Plugins, ports(cfg))
		}
		if err != nil {
			fmt.Fprintf(stderr, "btcagent reload: not signalling, the config is invalid: %v\n", err)
			return 1
		}
	}
	pid, err := findAgent(*pidFile)
	if err != nil {
		fmt.Fprintf(stderr, "btcagent reload: %v\n", err)
		return 1
	}
	p, err := os.FindProcess(pid)
	if err == nil {
		err = p.Signal(syscall.SIGHUP)
	}
	if err != nil {
		fmt.Fprintf(stderr, "btcagent reload: signal pid %d: %v\n", pid, err)
		return 1
	}
	fmt.Fprintf(stdout, "sent SIGHUP to btcagent (pid %d); the result is in its log and in /api/v1/summary (reload)\n", pid)
	return 0
}

func findAgent(pidFile string) (int, error) {
	if pidFile != "" {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return 0, fmt.Errorf("pid file: %w", err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			return 0, fmt.Errorf("pid file %s does not hold a process id", pidFile)
		}
		return pid, nil
	}
	self, _ := os.Executable()
	if resolved, err := filepath.EvalSymlinks(self); err == nil {
		self = resolved
	}
	pids, err := agentProcesses("/proc", os.Getpid(), self)
	if err != nil {
		return 0, fmt.Errorf("cannot look for the agent (%v); pass -pidfile", err)
	}
	switch len(pids) {
	case 0:
		return 0, errors.New("no running btcagent found; pass -pidfile")
	case 1:
		return pids[0], nil
	}
	return 0, fmt.Errorf("several btcagent processes run (pids %v); pass -pidfile to choose", pids)
}

// agentProcesses lists processes under procRoot named btcagent whose command
// line is the agent itself (flags only, no subcommand), leaving out self.
// The name comes from comm, which any user may read. exe is readable only
// for our own user's processes (or as root): where it is, it must be
// selfExe, so that a test build or a second installation elsewhere is
// never signalled by mistake.
func agentProcesses(procRoot string, self int, selfExe string) ([]int, error) {
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != "btcagent" {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if !isAgentCmdline(strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")) {
			continue
		}
		if exe, err := os.Readlink(filepath.Join(procRoot, e.Name(), "exe")); err == nil && selfExe != "" &&
			strings.TrimSuffix(exe, " (deleted)") != selfExe {
			continue
		}
		out = append(out, pid)
	}
	return out, nil
}

// isAgentCmdline tells `btcagent -c x.toml` (the agent) from `btcagent
// demo` or `btcagent reload`: the agent's arguments are all flags and
// their values.
func isAgentCmdline(argv []string) bool {
	if len(argv) < 2 {
		return true
	}
	return strings.HasPrefix(argv[1], "-")
}
