package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/btcagent/btcagent/codec"
	"github.com/btcagent/btcagent/sim/minersim"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if rc := run(context.Background(), []string{"-h"}, &stdout, &stderr); rc != 0 {
		t.Fatalf("-h exited %d", rc)
	}
	var cfg minersim.Config
	var opts options
	n := 0
	newFlags(&cfg, &opts, &bytes.Buffer{}).VisitAll(func(f *flag.Flag) {
		n++
		if !strings.Contains(stderr.String(), "-"+f.Name) || strings.TrimSpace(f.Usage) == "" {
			t.Errorf("flag -%s is not documented in -h", f.Name)
		}
	})
	if n < 20 || stdout.Len() != 0 {
		t.Errorf("%d flags, stdout %q", n, stdout.String())
	}
}

func TestBadArguments(t *testing.T) {
	for _, args := range [][]string{
		{"-stamp", "sundial"},
		{"-version-mask", "xyz"},
		{"-log-level", "loud"},
		{"stray"},
		{"-no-such-flag"},
	} {
		var stdout, stderr bytes.Buffer
		if rc := run(context.Background(), args, &stdout, &stderr); rc != 2 || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, rc, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if rc := run(context.Background(), []string{"-transport", "pigeon", "-stats-every", "0"}, &stdout, &stderr); rc != 1 {
		t.Errorf("bad transport: exit %d, stderr %q", rc, stderr.String())
	}
}

// TestRunWritesSummary runs the command against a minimal pool until the
// pool has seen every share, then checks the JSON summary on stdout and in
// the -summary file.
func TestRunWritesSummary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const miners, perMiner = 3, 2
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	var mu sync.Mutex
	submits := 0
	var wg sync.WaitGroup
	// The pool's connections close at the end of the test, not when run's
	// context ends: a close racing the summary would count as a disconnect.
	srvDone := make(chan struct{})
	defer func() {
		cancel()
		close(srvDone)
		_ = ln.Close()
		wg.Wait()
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				go func() { <-srvDone; c.Close() }()
				rd := codec.NewReader(c, 0, false)
				var r codec.Request
				for {
					ch, err := rd.Next()
					if err != nil || codec.ScanRequest(ch.Line, &r) != nil {
						return
					}
					switch string(r.Method) {
					case codec.MethodSubscribe:
						_, _ = c.Write(codec.AppendSubscribeResult(nil, r.ID, "0000abcd", 4))
					case codec.MethodAuthorize:
						_, _ = c.Write(codec.AppendTrue(nil, r.ID))
						_, _ = c.Write([]byte(`{"id":null,"method":"mining.notify","params":["j1","` + strings.Repeat("00", 32) +
							`","01","02",[],"20000000","1d00ffff","6b07071e",true]}` + "\n"))
					case codec.MethodSubmit:
						_, _ = c.Write(codec.AppendTrue(nil, r.ID))
						mu.Lock()
						submits++
						if submits == miners*perMiner {
							cancel() // like SIGINT once the pool has everything
						}
						mu.Unlock()
					}
				}
			}()
		}
	}()

	file := filepath.Join(t.TempDir(), "summary.json")
	var stdout, stderr bytes.Buffer
	rc := run(ctx, []string{"-target", ln.Addr().String(), "-miners", "3", "-user", "cli", "-interval", "5ms",
		"-max-shares", "2", "-stamp", "none", "-stats-every", "0", "-summary", file}, &stdout, &stderr)
	if rc != 0 {
		t.Fatalf("exit %d: %s", rc, stderr.String())
	}
	var sum map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not the JSON summary: %v\n%s", err, stdout.String())
	}
	if sum["miners"] != 3.0 || sum["shares_sent"] != 6.0 || sum["authorized"] != 3.0 ||
		sum["shares_accepted"].(float64)+sum["shares_unanswered"].(float64) != 6 {
		t.Errorf("summary %s", stdout.String())
	}
	saved, err := os.ReadFile(file)
	if err != nil || !bytes.Equal(saved, stdout.Bytes()) {
		t.Errorf("summary file differs from stdout (%v)", err)
	}
}

// TestTuneProcs: one P more per netio loop, from the runtime's own choice,
// however often a process calls run.
func TestTuneProcs(t *testing.T) {
	if runtime.GOOS != "linux" || os.Getenv("GOMAXPROCS") != "" {
		t.Skip("tuneProcs leaves GOMAXPROCS alone here")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	tuneProcs(2)
	tuneProcs(2)
	if got := runtime.GOMAXPROCS(0); got != defaultProcs+2 {
		t.Errorf("GOMAXPROCS %d after two runs with 2 loops, want %d", got, defaultProcs+2)
	}
}
