//go:build linux

package poolsim

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// readTCPInfo asks the kernel for the connection's TCP_INFO counters.
func readTCPInfo(c *conn) (ConnTCP, bool) {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return ConnTCP{}, false
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return ConnTCP{}, false
	}
	var info *unix.TCPInfo
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		info, serr = unix.GetsockoptTCPInfo(int(fd), syscall.IPPROTO_TCP, unix.TCP_INFO)
	})
	if cerr != nil || serr != nil || info == nil {
		return ConnTCP{}, false
	}
	return ConnTCP{
		SegsIn:        uint64(info.Segs_in),
		SegsOut:       uint64(info.Segs_out),
		DataSegsIn:    uint64(info.Data_segs_in),
		DataSegsOut:   uint64(info.Data_segs_out),
		BytesReceived: info.Bytes_received,
		BytesAcked:    info.Bytes_acked,
		TotalRetrans:  uint64(info.Total_retrans),
		RTT:           time.Duration(info.Rtt) * time.Microsecond,
	}, true
}
