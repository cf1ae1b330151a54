package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("1000, 10_000,19000")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1000, 10000, 19000}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"", "0", "-5", "1000,,2000", "ten"} {
		if _, err := parseSizes(bad); err == nil {
			t.Errorf("parseSizes(%q) accepted", bad)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"bin/agentbench", "-miners", "1000", "-agent-env", "GOGC=50 x"})
	if want := `bin/agentbench -miners 1000 -agent-env 'GOGC=50 x'`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got := commandLine([]string{"/tmp/go-build123/b001/exe/agentbench", "-window", "30s"}); got != "go run ./cmd/agentbench -window 30s" {
		t.Fatalf("go run form: %s", got)
	}
}

// TestFlagErrors checks that bad flags stop the tool before it builds or
// starts anything.
func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-miners", "abc"},
		{"-runs", "0"},
		{"-window", "10ms"},
		{"-flush", "soon"},
		{"-agent-env", "NOEQUALS"},
		{"-soak", "1m", "-reconnect-percent", "150"},
		{"-ref", "/bin/true", "-soak", "1m"},
		{"-ref", "/bin/true", "-ref-kind", "rust"},
		{"-ref", "/bin/true", "-order", "ref,ref"},
		{"-ref", "/bin/true", "-diff", "8589934592"},
		{"extra"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"agentbench"}, args...), &out, &errOut)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, errOut.String())
		}
		if strings.Contains(errOut.String(), "building") {
			t.Errorf("%v: started building", args)
		}
	}
}

func TestParseOrder(t *testing.T) {
	for in, want := range map[string][]string{"ours,ref": {"ours", "ref"}, " ref , ours": {"ref", "ours"}} {
		got, err := parseOrder(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseOrder(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "ours", "ours,ours", "ours,ref,ours", "ref;ours"} {
		if _, err := parseOrder(bad); err == nil {
			t.Errorf("parseOrder(%q) accepted", bad)
		}
	}
}

// TestRunOrder checks that the sides alternate which one goes first, so
// that neither always runs on a machine just warmed (or loaded) by the other.
func TestRunOrder(t *testing.T) {
	got := runOrder([]string{"ours", "ref"}, 3)
	if want := []string{"ours", "ref", "ref", "ours", "ours", "ref"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := runOrder([]string{"ref", "ours"}, 1); !slices.Equal(got, []string{"ref", "ours"}) {
		t.Fatalf("got %v", got)
	}
}

// TestFloorFlag checks that the floor is measured unless -floor=false, and
// that skipping it leaves the runs without one.
func TestFloorFlag(t *testing.T) {
	var on options
	if err := newFlags(&on, io.Discard).Parse(nil); err != nil || !on.floor {
		t.Fatalf("default: floor %v, err %v", on.floor, err)
	}
	var off options
	if err := newFlags(&off, io.Discard).Parse([]string{"-floor=false"}); err != nil || off.floor {
		t.Fatalf("-floor=false: floor %v, err %v", off.floor, err)
	}
	f, err := off.measureFloor(context.Background(), 1000, t.TempDir())
	if err != nil || f != nil {
		t.Fatalf("skipped floor gave %+v, %v", f, err)
	}
}
