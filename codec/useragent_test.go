package codec

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestPrintableUA(t *testing.T) {
	long := strings.Repeat("a", 15000)
	for _, tc := range []struct{ name, in, want string }{
		{"plain", "bmminer/2.0.0", "bmminer/2.0.0"},
		{"empty", "", ""},
		{"space kept", "cgminer 4.10", "cgminer 4.10"},
		{"exactly max", strings.Repeat("x", MaxUserAgentLen), strings.Repeat("x", MaxUserAgentLen)},
		{"long cut", long, long[:MaxUserAgentLen]},
		{"NUL", "bm\x00miner", "bm?miner"},
		{"newline and tab", "a\nb\tc\r", "a?b?c?"},
		{"DEL and C1", "a\x7fb\u0085c", "a?b?c"},
		{"RTL override", "miner\u202egpj.exe", "miner?gpj.exe"},
		{"bidi isolates and marks", "\u2066x\u2069\u200f\u061c", "?x???"},
		{"zero width and BOM", "a\u200bb\ufeff", "a?b?"},
		{"invalid UTF-8", "ok\xff\xfe", "ok??"},
		{"non-ASCII printable kept", "矿机/1.0 ü", "矿机/1.0 ü"},
		// A multi-byte character that would straddle the limit is left out
		// whole rather than cut into invalid UTF-8.
		{"cut at rune boundary", strings.Repeat("x", MaxUserAgentLen-1) + "é", strings.Repeat("x", MaxUserAgentLen-1)},
		{"hostile and long", "\u202e" + long + "\x00", "?" + long[:MaxUserAgentLen-1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := PrintableUA(tc.in)
			if got != tc.want {
				t.Fatalf("PrintableUA(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if len(got) > MaxUserAgentLen || !utf8.ValidString(got) || strings.ContainsFunc(got, func(r rune) bool { return !unicode.IsPrint(r) }) {
				t.Fatalf("PrintableUA(%q) = %q is not bounded and printable", tc.in, got)
			}
			if again := PrintableUA(got); again != got {
				t.Fatalf("not idempotent: %q -> %q", got, again)
			}
		})
	}
}

// The common case, a short clean string, must not allocate: it runs once
// per miner subscribe and once per row the API returns.
func TestPrintableUANoAllocClean(t *testing.T) {
	s := "bmminer/2.0.0"
	if n := testing.AllocsPerRun(100, func() { _ = PrintableUA(s) }); n != 0 {
		t.Fatalf("%v allocations for a clean user agent", n)
	}
}
