//go:build linux

package upstream

import (
	"syscall"
	"unsafe"
)

// rawWrite writes what a non-blocking socket takes now, through RawSyscall
// so that the event loop calling it stays out of the scheduler's sight (see
// actors/netio). EAGAIN is not an error: the caller queues the rest.
func rawWrite(fd uintptr, b []byte) (int, error) {
	total := 0
	for total < len(b) {
		n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[total])), uintptr(len(b)-total))
		switch errno {
		case 0:
			total += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return total, nil
		default:
			return total, errno
		}
	}
	return total, nil
}

const haveRawWrite = true
