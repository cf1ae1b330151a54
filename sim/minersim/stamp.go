package minersim

import (
	"strconv"
	"strings"
	"time"
)

// HexStamp returns a Config.JobTimestamp for pools that write their send
// time into coinb1 as marker followed by 16 hex digits of Unix nanoseconds
// (big-endian). The marker keeps the stamp findable wherever the pool puts it
// in the coinbase script, and survives the agent appending its extranonce1.
func HexStamp(marker string) func(coinb1Hex string) (time.Time, bool) {
	marker = strings.ToLower(marker)
	return func(coinb1 string) (time.Time, bool) {
		i := strings.Index(coinb1, marker)
		if i < 0 || len(coinb1) < i+len(marker)+16 {
			return time.Time{}, false
		}
		v, err := strconv.ParseUint(coinb1[i+len(marker):i+len(marker)+16], 16, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(0, int64(v)), true
	}
}

// AppendHexStamp appends marker and t in the HexStamp format, for servers and
// tests that stamp their jobs.
func AppendHexStamp(dst []byte, marker string, t time.Time) []byte {
	dst = append(dst, strings.ToLower(marker)...)
	v := uint64(t.UnixNano())
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(v>>uint(shift))&15])
	}
	return dst
}
