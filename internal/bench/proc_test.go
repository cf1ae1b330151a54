package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	line := "4242 (btc agent) (x)) S 1 4242 4242 0 -1 4194304 100 0 0 0 1234 567 0 0 20 0 9 0 273967 3133440 386 18446744073709551615 0\n"
	s, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.UTime != 1234 || s.STime != 567 || s.Threads != 9 {
		t.Fatalf("got %+v, want utime 1234 stime 567 threads 9", s)
	}
	if got, want := s.CPU(), 18010*time.Millisecond; got != want {
		t.Fatalf("CPU() = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "1 (x", "1 (x) S 1 2 3", "1 (x) S 1 2 3 4 5 6 7 8 9 10 abc 5 0 0 0 0 1 0"} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q) succeeded", bad)
		}
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tbtcagent\nUmask:\t0022\nVmPeak:\t 1300000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   36412 kB\nRssAnon:\t   30000 kB\nRssFile:\t    6412 kB\nThreads:\t7\n"
	s, err := ParseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if s.VmRSS != 36412*1024 || s.VmHWM != 40960*1024 || s.RssAnon != 30000*1024 || s.RssFile != 6412*1024 || s.Threads != 7 {
		t.Fatalf("got %+v", s)
	}
	// Kernel threads and zombies have no Vm lines.
	if _, err := ParseStatus([]byte("Name:\tkworker/0:1\nThreads:\t1\n")); err == nil {
		t.Error("status without VmRSS accepted")
	}
	if _, err := ParseStatus([]byte("VmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("unit other than kB accepted")
	}
}

// TestReadProcSelf checks the parsers against the running kernel's format.
func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS == 0 || s.HWM < s.RSS || s.Threads < 1 {
		t.Fatalf("implausible sample %+v", s)
	}
}

func TestCoresBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := ProcSample{Time: t0, CPU: time.Second}
	b := ProcSample{Time: t0.Add(10 * time.Second), CPU: 1500 * time.Millisecond}
	if got := CoresBetween(a, b); got != 0.05 {
		t.Fatalf("CoresBetween = %v, want 0.05", got)
	}
	if got := CoresBetween(b, b); got != 0 {
		t.Fatalf("zero interval gave %v", got)
	}
}

func TestParseMachineCPU(t *testing.T) {
	data := "cpu  511107 242 227234 454845 1069 0 42927 2015 300 7\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	m, err := ParseMachineCPU([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(511107 + 242 + 227234 + 0 + 42927 + 2015); m.Busy != want || m.Idle != 454845+1069 || m.SoftIRQ != 42927 {
		t.Fatalf("got %+v, want busy %d idle %d", m, want, 454845+1069)
	}
	if _, err := ParseMachineCPU([]byte("intr 1 2 3\n")); err == nil {
		t.Error("file without cpu line accepted")
	}
	t0 := time.Unix(0, 0)
	a := MachineCPU{Time: t0, Busy: 1000}
	b := MachineCPU{Time: t0.Add(2 * time.Second), Busy: 1300}
	if got := BusyCores(a, b); got != 1.5 {
		t.Errorf("BusyCores = %v, want 1.5", got)
	}
}
