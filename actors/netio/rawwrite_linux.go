//go:build linux

package netio

import (
	"syscall"
	"unsafe"
)

// RawWrite writes what a non-blocking socket takes now, through RawSyscall,
// so that the event loop calling it stays out of the scheduler's sight
// (loop_linux.go). EAGAIN is not an error: the caller keeps the rest. The
// pool links' inline flushes use it too.
func RawWrite(fd uintptr, b []byte) (int, error) {
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
