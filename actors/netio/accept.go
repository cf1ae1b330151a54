package netio

import (
	"errors"
	"net"
	"time"

	"github.com/sirupsen/logrus"
)

// AcceptLoop accepts until the listener is closed, handing each connection
// to handle. Temporary errors — above all EMFILE/ENFILE when the open-files
// limit is reached — back off (5 ms doubling to 1 s) instead of spinning a
// core, and are logged at most once per backoff run; miners already connected
// are not affected because nothing else waits on this loop.
func AcceptLoop(ln net.Listener, log logrus.FieldLogger, handle func(net.Conn)) error {
	var delay time.Duration
	logged := false
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			if !logged {
				log.WithError(err).Warn("accept failed; backing off (open-files limit reached?)")
				logged = true
			}
			time.Sleep(delay) // backoff pacing, not synchronisation
			continue
		}
		delay, logged = 0, false
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
			_ = tc.SetKeepAlive(true)
			_ = tc.SetKeepAlivePeriod(60 * time.Second)
		}
		handle(nc)
	}
}
