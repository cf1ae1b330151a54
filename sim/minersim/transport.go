package minersim

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/btcagent/btcagent/actors/netio"
	"github.com/btcagent/btcagent/codec"
	"github.com/lesismal/nbio"
	"github.com/sirupsen/logrus"
)

// link is one TCP connection of one miner. A miner gets a new link for every
// (re)connect; events from an old link are recognised by pointer and ignored.
// Fields other than the immutable connection handles are guarded by the
// miner's mutex.
type link struct {
	m   *miner
	gen uint32
	nc  net.Conn    // goroutine transport
	nb  *nbio.Conn  // nbio transport
	nt  *netio.Conn // netio transport

	split     codec.Splitter
	gotJob    bool // a notify arrived on this link (the first is not a fan-out sample)
	dead      bool // the transport reported the close
	counted   bool // included in the Connected gauge
	closeOnce sync.Once
}

// writeTimeout bounds a blocking write on the goroutine transport; a peer
// that stops reading for this long is treated as gone. nbio writes never
// block (it queues the rest itself).
const writeTimeout = 10 * time.Second

func (l *link) write(b []byte) error {
	if l.nt != nil {
		if err := l.nt.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	}
	if l.nb != nil {
		if _, err := l.nb.Write(b); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	}
	if err := l.nc.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	if _, err := l.nc.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (l *link) close() {
	l.closeOnce.Do(func() {
		switch {
		case l.nt != nil:
			_ = l.nt.Close()
		case l.nb != nil:
			_ = l.nb.Close()
		default:
			_ = l.nc.Close()
		}
	})
}

// transport turns a dialed net.Conn into a link whose incoming bytes reach
// miner.onData and whose end reaches miner.onLinkClosed.
type transport interface {
	attach(l *link) error
	stop()
}

// goroutineTransport runs one reader goroutine per connection.
type goroutineTransport struct {
	wg sync.WaitGroup
}

// readBufSize is the per-connection read buffer. Stratum lines are a few
// hundred bytes; longer notifies simply arrive in two reads and the splitter
// keeps the tail.
const readBufSize = 1024

func (t *goroutineTransport) attach(l *link) error {
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		buf := make([]byte, readBufSize)
		for {
			n, err := l.nc.Read(buf)
			if n > 0 {
				l.m.onData(l, buf[:n], arrival{now: time.Now()})
			}
			if err != nil {
				l.m.onLinkClosed(l, err)
				return
			}
		}
	}()
	return nil
}

func (t *goroutineTransport) stop() { t.wg.Wait() }

// nbioTransport hands every socket to a few epoll loops.
type nbioTransport struct {
	engine *nbio.Engine
}

// nbioReadBuf is the read buffer of each poller (shared by its connections).
const nbioReadBuf = 32 * 1024

func newNbioTransport(pollers int) (*nbioTransport, error) {
	e := nbio.NewEngine(nbio.Config{
		Name:           "minersim",
		NPoller:        pollers,
		ReadBufferSize: nbioReadBuf,
	})
	e.OnData(func(c *nbio.Conn, data []byte) {
		if l, ok := c.Session().(*link); ok {
			l.m.onData(l, data, arrival{now: time.Now()})
		}
	})
	e.OnClose(func(c *nbio.Conn, err error) {
		if l, ok := c.Session().(*link); ok {
			l.m.onLinkClosed(l, err)
		}
	})
	if err := e.Start(); err != nil {
		return nil, fmt.Errorf("minersim: starting nbio engine: %w", err)
	}
	return &nbioTransport{engine: e}, nil
}

func (t *nbioTransport) attach(l *link) error {
	// NBConn duplicates the descriptor and closes the net.Conn; the session
	// must be set before AddConn, since data may be delivered right after it.
	nb, err := nbio.NBConn(l.nc)
	if err != nil {
		_ = l.nc.Close()
		return fmt.Errorf("nbio conn: %w", err)
	}
	l.nc = nil
	l.nb = nb
	nb.SetSession(l)
	if _, err := t.engine.AddConn(nb); err != nil {
		return fmt.Errorf("nbio add conn: %w", err)
	}
	return nil
}

func (t *nbioTransport) stop() { t.engine.Stop() }

// netioTransport hands every socket to this repository's own event loop
// (actors/netio), the one the agent reads its miners with. On Linux it calls
// epoll_pwait, read and write through RawSyscall: per notify received that
// is one read and a share of one epoll_pwait, with no netpoller, no sysmon
// hand-off and no scheduler wake-up around them. Each engine's loop keeps
// its P while it waits; cmd/minersim gives the runtime one P per engine more
// for that reason.
type netioTransport struct {
	engines []*netio.Engine
	next    atomic.Uint32
}

const (
	// netioReadBuf is each loop's shared read buffer: one read takes all
	// that a miner has queued (a notify is ~1.4 KB; a miner that fell behind
	// during a broadcast may hold several), and it costs nothing per miner.
	netioReadBuf = 32 * 1024
	// netioMaxQueued caps a miner's unsent output, and is also its socket's
	// SO_SNDBUF. A miner writes a few hundred bytes at a time (handshake,
	// submits), so this holds minutes of shares for a peer that stopped
	// reading; past it the link is dropped and counted as a disconnect, as
	// a write timeout is on the goroutine transport.
	netioMaxQueued = 16 * 1024
)

func newNetioTransport(loops int, stamps bool, log logrus.FieldLogger) (*netioTransport, error) {
	t := &netioTransport{}
	for range max(loops, 1) {
		e, err := netio.NewEngine(netio.Config{ReadBuffer: netioReadBuf, MaxWriteBuffered: netioMaxQueued, ReceiveTimestamps: stamps, Log: log})
		if err != nil {
			t.stop()
			return nil, fmt.Errorf("minersim: starting netio engine: %w", err)
		}
		t.engines = append(t.engines, e)
	}
	return t, nil
}

func (t *netioTransport) attach(l *link) error {
	e := t.engines[int(t.next.Add(1))%len(t.engines)]
	// Add closes the net.Conn whatever happens (the engine keeps a duplicate
	// of its descriptor). Data or a close may be delivered before Add
	// returns; onData and onLinkClosed cope, since l is not yet the miner's
	// current link.
	c, err := e.Add(l.nc, netioHandler{l})
	if err != nil {
		return fmt.Errorf("netio add conn: %w", err)
	}
	l.nc, l.nt = nil, c
	return nil
}

func (t *netioTransport) stop() {
	for _, e := range t.engines {
		e.Stop()
	}
}

// netioHandler delivers one link's events. It is a value holding the link,
// so the engine's interface call needs no allocation and no lookup.
type netioHandler struct{ l *link }

func (h netioHandler) OnData(c *netio.Conn, data []byte) {
	h.l.m.onData(h.l, data, arrival{now: time.Now(), kernel: c.ReceivedAt()})
}

func (h netioHandler) OnClose(_ *netio.Conn, err error) { h.l.m.onLinkClosed(h.l, err) }
