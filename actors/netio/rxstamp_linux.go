//go:build linux && !netio_portable

package netio

import (
	"syscall"
	"unsafe"
)

// rxStamp is the loop's recvmsg state when receive timestamps are on: one
// message header, iovec and control buffer, reused for every read, so a
// stamped read allocates nothing.
type rxStamp struct {
	msg  syscall.Msghdr
	iov  syscall.Iovec
	ctrl [64]byte // room for SCM_TIMESTAMPNS (16 + 16 bytes) and one more
}

func newRxStamp(buf []byte) *rxStamp {
	r := &rxStamp{}
	r.iov.Base = &buf[0]
	r.iov.SetLen(len(buf))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
	r.msg.Control = &r.ctrl[0]
	return r
}

// recv reads fd into the loop's buffer and returns the byte count and the
// receive time of the newest segment read (unix nanoseconds; 0 if the
// kernel sent none).
func (r *rxStamp) recv(fd int) (uintptr, int64, syscall.Errno) {
	r.msg.SetControllen(len(r.ctrl))
	n, _, errno := syscall.RawSyscall(syscall.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&r.msg)), 0)
	if errno != 0 {
		return 0, 0, errno
	}
	return n, timestampNS(r.ctrl[:r.msg.Controllen]), 0
}

// timestampNS finds SCM_TIMESTAMPNS among control messages, by hand
// because syscall.ParseSocketControlMessage allocates per call.
func timestampNS(b []byte) int64 {
	const hdr = syscall.SizeofCmsghdr
	for len(b) >= hdr {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hdr || l > len(b) {
			return 0
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS && l >= hdr+int(unsafe.Sizeof(syscall.Timespec{})) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&b[hdr]))
			return ts.Nano()
		}
		// Control messages are aligned to the platform word.
		step := (l + int(unsafe.Sizeof(uintptr(0))) - 1) &^ (int(unsafe.Sizeof(uintptr(0))) - 1)
		if step >= len(b) {
			return 0
		}
		b = b[step:]
	}
	return 0
}
