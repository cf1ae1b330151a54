package bench

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestParseProgress(t *testing.T) {
	line := "minersim: 16s connected 200 authorized 199 sent 319 accepted 318 rejected 1 unanswered 0 notifies 800 fan-out p99 6.488064ms cpu 0.01"
	p, ok := ParseProgress(line)
	if !ok {
		t.Fatal("progress line not recognised")
	}
	want := Progress{Elapsed: 16 * time.Second, Connected: 200, Authorized: 199, Sent: 319, Accepted: 318, Rejected: 1,
		Notifies: 800, FanoutP99: 6488064 * time.Nanosecond, CPU: 0.01}
	if p != want {
		t.Fatalf("got %+v\nwant %+v", p, want)
	}
	for _, other := range []string{
		"minersim: -log-level: unknown level",
		"minersim: 3s something went wrong",
		`time="..." level=warning msg="dial failed"`,
		"",
	} {
		if _, ok := ParseProgress(other); ok {
			t.Errorf("%q parsed as progress", other)
		}
	}
}

func TestLineWriter(t *testing.T) {
	var copyBuf bytes.Buffer
	var lines []string
	w := &lineWriter{w: &copyBuf, onLine: func(s string) { lines = append(lines, s) }}
	for _, chunk := range []string{"one\ntw", "o\n", "three", "\nfour"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"one", "two", "three"}; !slices.Equal(lines, want) {
		t.Fatalf("lines %q, want %q", lines, want)
	}
	if copyBuf.String() != "one\ntwo\nthree\nfour" {
		t.Fatalf("copy %q", copyBuf.String())
	}
}
