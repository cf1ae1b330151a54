package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ServeFloorReader is the reader side of MeasureFloor, run in its own
// process. It listens on 127.0.0.1, says "listen <addr>" on stdout and then
// drains every connection it accepts from one epoll loop on one thread
// (one simulated farm of miners reading their notifies), reading each ready
// descriptor until EAGAIN. Its stdin carries the parent's "sync <conns>
// <bytes>" requests, answered "ok <conns> <bytes> <last read>" once that
// many connections are accepted and that many bytes read, where the last
// read is the wall-clock time (unix nanoseconds) at which the newest bytes
// were read, so that the parent can time a broadcast to the reader's end
// as well as to its last write; at the end of stdin it says
// "done <accepted> <bytes> <fewest bytes on a connection> <most>" and exits.
// Failures are reported as "error <text>". The return value is the exit
// code.
func ServeFloorReader() int {
	if err := serveFloorReader(os.Stdout); err != nil {
		fmt.Fprintf(os.Stdout, "error %v\n", err)
		fmt.Fprintf(os.Stderr, "floor reader: %v\n", err)
		return 1
	}
	return 0
}

func serveFloorReader(out io.Writer) error {
	lfd, addr, err := floorListen()
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	defer unix.Close(ep)
	const stdin = 0
	for _, fd := range []int{lfd, stdin} {
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
			return fmt.Errorf("epoll_ctl add %d: %w", fd, err)
		}
	}
	if _, err := fmt.Fprintf(out, "listen %s\n", addr); err != nil {
		return fmt.Errorf("announce address: %w", err)
	}

	var (
		perConn  = map[int]int64{} // bytes read per accepted descriptor, kept after EOF
		total    int64
		cmdBuf   []byte
		pending  bool
		wantConn int
		wantRead int64
		lastRead int64 // unix nanoseconds of the newest read that got bytes
		stdinEOF bool
		events   = make([]unix.EpollEvent, 256)
		buf      = make([]byte, 64<<10)
	)
	for !stdinEOF {
		n, err := unix.EpollWait(ep, events, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			switch fd {
			case lfd:
				if err := floorAccept(lfd, ep, perConn); err != nil {
					return err
				}
			case stdin:
				m, err := unix.Read(stdin, buf)
				if err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
					return fmt.Errorf("read commands: %w", err)
				}
				if m == 0 && err == nil {
					stdinEOF = true
					// Deregistered so that the loop below is not woken by
					// the end of stdin again.
					_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, stdin, nil)
					break
				}
				cmdBuf = append(cmdBuf, buf[:max(m, 0)]...)
				for {
					i := bytes.IndexByte(cmdBuf, '\n')
					if i < 0 {
						break
					}
					c, b, err := floorCommand(string(cmdBuf[:i]))
					if err != nil {
						return err
					}
					cmdBuf = cmdBuf[i+1:]
					pending, wantConn, wantRead = true, c, b
				}
			default:
				got, open := floorDrain(fd, buf)
				if got > 0 {
					lastRead = time.Now().UnixNano()
				}
				perConn[fd] += got
				total += got
				if !open {
					_ = unix.EpollCtl(ep, unix.EPOLL_CTL_DEL, fd, nil)
					unix.Close(fd)
				}
			}
		}
		if pending && len(perConn) >= wantConn && total >= wantRead {
			pending = false
			if _, err := fmt.Fprintf(out, "ok %d %d %d\n", len(perConn), total, lastRead); err != nil {
				return fmt.Errorf("answer sync: %w", err)
			}
		}
	}
	lo, hi := int64(-1), int64(0)
	for _, n := range perConn {
		if lo < 0 || n < lo {
			lo = n
		}
		hi = max(hi, n)
	}
	lo = max(lo, 0)
	if _, err := fmt.Fprintf(out, "done %d %d %d %d\n", len(perConn), total, lo, hi); err != nil {
		return fmt.Errorf("final report: %w", err)
	}
	return nil
}

// floorListen opens a non-blocking listening socket on a free loopback
// port. It is a raw descriptor rather than a net.Listener so that the
// accepted connections can be read from this package's own epoll loop
// without the runtime's poller also holding them.
func floorListen() (int, string, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return -1, "", fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return -1, "", fmt.Errorf("bind 127.0.0.1: %w", err)
	}
	// The kernel caps the backlog at net.core.somaxconn; the parent dials
	// one connection at a time, so a short queue only slows the set-up.
	if err := unix.Listen(fd, 4096); err != nil {
		return -1, "", fmt.Errorf("listen: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return -1, "", fmt.Errorf("getsockname: %w", err)
	}
	in4, isIn4 := sa.(*unix.SockaddrInet4)
	if !isIn4 {
		return -1, "", fmt.Errorf("getsockname: unexpected address %T", sa)
	}
	ok = true
	return fd, fmt.Sprintf("127.0.0.1:%d", in4.Port), nil
}

// floorAccept accepts every queued connection and registers it for reading.
func floorAccept(lfd, ep int, perConn map[int]int64) error {
	for {
		fd, _, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
			return nil
		case err != nil:
			return fmt.Errorf("accept (after %d connections): %w", len(perConn), err)
		}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("epoll_ctl add connection: %w", err)
		}
		perConn[fd] = 0
	}
}

// floorDrain reads fd until EAGAIN and says how much it read and whether
// the connection is still open.
func floorDrain(fd int, buf []byte) (int64, bool) {
	var got int64
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return got, true
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil || n == 0:
			return got, false
		}
		got += int64(n)
	}
}
