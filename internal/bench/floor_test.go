package bench

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestMain lets the test binary act as the floor's reader process, as the
// agentbench binary does in a real run.
func TestMain(m *testing.M) {
	if os.Getenv(FloorReaderEnv) == "1" {
		os.Exit(ServeFloorReader())
	}
	os.Exit(m.Run())
}

func TestMeasureFloor(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the floor reader uses epoll")
	}
	const conns, size, rounds = 200, 1400, 3
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logPath := filepath.Join(t.TempDir(), "reader.log")
	f, err := MeasureFloor(ctx, FloorOptions{
		Conns: conns, Bytes: size, Rounds: rounds, Pause: time.Millisecond,
		Timeout: 30 * time.Second, LogPath: logPath,
	})
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("MeasureFloor: %v\nreader log:\n%s", err, log)
	}
	// MeasureFloor itself fails unless every connection got the same byte
	// count; the total pins that count to every write.
	if want := int64(conns * size * rounds * 2); f.ReadBytes != want {
		t.Errorf("reader got %d bytes, want %d", f.ReadBytes, want)
	}
	if f.Conns != conns || f.Bytes != size || f.Rounds != rounds {
		t.Errorf("floor describes %d conns × %d bytes × %d rounds", f.Conns, f.Bytes, f.Rounds)
	}
	if len(f.Runs) != 2 {
		t.Fatalf("got %d runs, want W=2 and W=1", len(f.Runs))
	}
	for i, w := range []int{2, 1} {
		r, ok := f.Run(w)
		if !ok || f.Runs[i].Writers != w {
			t.Fatalf("run %d: writers %d, want %d", i, f.Runs[i].Writers, w)
		}
		if len(r.RoundsMs) != rounds {
			t.Errorf("W=%d: %d rounds timed, want %d", w, len(r.RoundsMs), rounds)
		}
		for _, ms := range r.RoundsMs {
			if ms <= 0 {
				t.Errorf("W=%d: round of %v ms", w, ms)
			}
		}
		if !(r.MinMs > 0 && r.MinMs <= r.MedianMs && r.MedianMs <= r.MaxMs) {
			t.Errorf("W=%d: min %v, median %v, max %v: not ordered", w, r.MinMs, r.MedianMs, r.MaxMs)
		}
		// Timed to the reader's last read as well: every round, and never
		// before the round began.
		if len(r.DrainedMs) != rounds || !(r.DrainedMedianMs > 0) {
			t.Errorf("W=%d: drained %v (median %v), want %d positive times", w, r.DrainedMs, r.DrainedMedianMs, rounds)
		}
		for _, ms := range r.DrainedMs {
			if ms <= 0 {
				t.Errorf("W=%d: drained after %v ms", w, ms)
			}
		}
		if r.WriteErrors != 0 {
			t.Errorf("W=%d: %d write errors", w, r.WriteErrors)
		}
	}
}

func TestMeasureFloorOptions(t *testing.T) {
	for _, o := range []FloorOptions{
		{Conns: 0, Bytes: 10},
		{Conns: 10, Bytes: 0},
		{Conns: 2, Bytes: 10, Writers: []int{3}},
	} {
		if _, err := MeasureFloor(context.Background(), o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}

// TestNotifyLineSize checks the size of the reference workload's notify:
// about 1.4 KB with 12 branches, and 67 bytes (64 hex digits, quotes, comma)
// per branch.
func TestNotifyLineSize(t *testing.T) {
	n12, err := NotifyLineSize(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n12 < 1200 || n12 > 1600 {
		t.Errorf("12 branches: %d bytes, want about 1.4 KB", n12)
	}
	n13, err := NotifyLineSize(Options{Branches: 13})
	if err != nil {
		t.Fatal(err)
	}
	if n13-n12 != 67 {
		t.Errorf("one more branch adds %d bytes, want 67", n13-n12)
	}
}
