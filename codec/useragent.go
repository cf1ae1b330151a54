package codec

import (
	"unicode"
	"unicode/utf8"
)

// MaxUserAgentLen bounds the user agent the agent keeps for a miner. Real
// miner firmware sends a few dozen bytes; anything longer is noise that
// would otherwise be stored per miner and copied into every API response.
const MaxUserAgentLen = 64

// PrintableUA is the form in which a miner's self-declared user agent is
// stored and shown: at most MaxUserAgentLen bytes of valid UTF-8, cut at a
// character boundary, with every character that is not printable (control
// characters, bidi overrides and other format characters, invalid bytes,
// unassigned code points) replaced by '?'. The miner chooses this string,
// so it must not be able to reorder or hide text in a dashboard or a log.
// Strings that already comply are returned as they are, without allocating.
func PrintableUA(s string) string {
	if len(s) <= MaxUserAgentLen && printableASCII(s) {
		return s
	}
	out := make([]byte, 0, min(len(s), MaxUserAgentLen))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || !unicode.IsPrint(r) {
			r = '?'
		}
		if len(out)+utf8.RuneLen(r) > MaxUserAgentLen {
			break
		}
		out = utf8.AppendRune(out, r)
		i += size
	}
	return string(out)
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
