//go:build linux && !netio_portable

package netio

import (
	"encoding/binary"
	"syscall"
	"testing"
)

// cmsg builds one control message as the kernel lays it out on 64-bit
// Linux: length, level, type, then the data padded to a word.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, syscall.SizeofCmsghdr, syscall.CmsgSpace(len(data)))
	binary.LittleEndian.PutUint64(b[0:], uint64(syscall.CmsgLen(len(data))))
	binary.LittleEndian.PutUint32(b[8:], uint32(level))
	binary.LittleEndian.PutUint32(b[12:], uint32(typ))
	b = append(b, data...)
	return b[:cap(b)]
}

func timespec(sec, nsec int64) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[0:], uint64(sec))
	binary.LittleEndian.PutUint64(b[8:], uint64(nsec))
	return b
}

func TestTimestampNSParsesControlMessages(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 || syscall.SizeofCmsghdr != 16 {
		t.Skip("layout built here is for little-endian 64-bit Linux")
	}
	ts := cmsg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, timespec(1_700_000_000, 123))
	other := cmsg(syscall.SOL_IP, 1, []byte{1, 2, 3, 4, 5})
	const want = int64(1_700_000_000)*1e9 + 123
	cases := []struct {
		name string
		b    []byte
		want int64
	}{
		{"alone", ts, want},
		{"after another message", append(append([]byte{}, other...), ts...), want},
		{"none", other, 0},
		{"empty", nil, 0},
		{"truncated header", ts[:10], 0},
		{"length past the buffer", ts[:20], 0},
		{"zero length", make([]byte, 32), 0},
	}
	for _, c := range cases {
		if got := timestampNS(c.b); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}
