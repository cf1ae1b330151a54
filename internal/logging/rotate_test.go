package logging

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRotatingFileRotatesAndCapsBackups(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "agent.log")
	r, err := OpenRotating(p, 100, 2)
	if err != nil {
		t.Fatal(err)
	}
	line := func(i int) []byte { return []byte(fmt.Sprintf("line %03d %s\n", i, strings.Repeat("x", 30))) } // 40 bytes
	for i := range 10 {
		if n, err := r.Write(line(i)); err != nil || n != 40 {
			t.Fatalf("write %d: n=%d err=%v", i, n, err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	// 2 lines (80 bytes) fit per file; 10 lines = 5 files, of which the
	// current and two backups remain.
	want := map[string]string{
		"agent.log":   string(line(8)) + string(line(9)),
		"agent.log.1": string(line(6)) + string(line(7)),
		"agent.log.2": string(line(4)) + string(line(5)),
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("files %v, want %d", names, len(want))
	}
	for name, content := range want {
		if got := readFile(t, filepath.Join(dir, name)); got != content {
			t.Errorf("%s = %q, want %q", name, got, content)
		}
	}
	if _, err := r.Write([]byte("late\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
}

func TestRotatingFileAppendsToExistingAndKeepsOversizedLines(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.log")
	if err := os.WriteFile(p, []byte("previous run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := OpenRotating(p, 20, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	big := strings.Repeat("y", 50) + "\n"
	if _, err := r.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	// The existing 13 bytes counted toward the limit, so the big line went
	// to a fresh file, whole; the next line rotates again.
	if got := readFile(t, p+".1"); got != "previous run\n" {
		t.Errorf(".1 = %q", got)
	}
	if got := readFile(t, p); got != big {
		t.Errorf("current = %q", got)
	}
	if _, err := r.Write([]byte("z\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, p+".1"); got != big {
		t.Errorf(".1 after second rotation = %q", got)
	}
	if _, err := os.Stat(p + ".2"); !os.IsNotExist(err) {
		t.Errorf(".2 exists though keep=1: %v", err)
	}
}

func TestRotatingFileKeepZero(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	r, err := OpenRotating(p, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Write([]byte("12345678\n"))
	r.Write([]byte("abcdefgh\n"))
	if got := readFile(t, p); got != "abcdefgh\n" {
		t.Errorf("current = %q", got)
	}
	if _, err := os.Stat(p + ".1"); !os.IsNotExist(err) {
		t.Errorf("backup kept with keep=0")
	}
}

func TestRotatingFileConcurrentWritesStayWhole(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.log")
	r, err := OpenRotating(p, 1000, 100)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				fmt.Fprintf(r, "g%d-%02d %s\n", g, i, strings.Repeat("=", 20))
			}
		}()
	}
	wg.Wait()
	r.Close()
	var all bytes.Buffer
	files, _ := filepath.Glob(p + "*")
	for _, f := range files {
		b := readFile(t, f)
		if len(b) > 1000 {
			t.Errorf("%s has %d bytes, limit 1000", f, len(b))
		}
		all.WriteString(b)
	}
	lines := strings.Split(strings.TrimSuffix(all.String(), "\n"), "\n")
	if len(lines) != 400 {
		t.Fatalf("%d lines, want 400", len(lines))
	}
	for _, l := range lines {
		if len(l) != 26 {
			t.Fatalf("torn line %q", l)
		}
	}
}

func TestNewFileOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	l, c, err := New(Options{Level: "debug", Format: "json", Dir: dir, MaxSizeMB: 1, MaxFiles: 2, Name: "agent"})
	if err != nil {
		t.Fatal(err)
	}
	l.WithField("miner", "m1").Debug("hello")
	// Past 1 MiB the file rotates.
	pad := strings.Repeat("p", 1000)
	for range 1100 {
		l.Info(pad)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	first := readFile(t, filepath.Join(dir, "agent.log.1"))
	if !strings.HasPrefix(first, `{"level":"debug","miner":"m1","msg":"hello","time":"`) {
		t.Errorf("first line: %.80q", first)
	}
	if st, err := os.Stat(filepath.Join(dir, "agent.log")); err != nil || st.Size() == 0 || st.Size() > 1<<20 {
		t.Errorf("current file: %v %v", st, err)
	}
}

func TestNewOptions(t *testing.T) {
	l, c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Level.String() != "info" || l.Out != os.Stderr || c.Close() != nil {
		t.Errorf("defaults: level %v out %v", l.Level, l.Out)
	}
	l, _, err = New(Options{Level: "warn", Format: "text", Dir: "stderr"})
	if err != nil || l.Level.String() != "warning" || l.Out != os.Stderr {
		t.Errorf("warn/stderr: %v %v", l, err)
	}
	if _, _, err := New(Options{Level: "loud"}); err == nil {
		t.Error("bad level accepted")
	}
	if _, _, err := New(Options{Format: "xml"}); err == nil {
		t.Error("bad format accepted")
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	if _, _, err := New(Options{Dir: file}); err == nil {
		t.Error("a file as log dir accepted")
	}
}
