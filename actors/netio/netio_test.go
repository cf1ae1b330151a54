package netio_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/netio"
	"github.com/sirupsen/logrus"
)

const wait = 10 * time.Second

// echo answers every chunk with the same bytes and records the close.
type echo struct {
	mu     sync.Mutex
	conn   *netio.Conn
	closed chan error
	got    bytes.Buffer
}

func newEcho() *echo { return &echo{closed: make(chan error, 1)} }

func (h *echo) OnData(c *netio.Conn, data []byte) {
	h.mu.Lock()
	h.got.Write(data)
	h.mu.Unlock()
	_ = c.Write(data)
}

func (h *echo) OnClose(_ *netio.Conn, err error) { h.closed <- err }

func engine(t *testing.T, cfg netio.Config) *netio.Engine {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cfg.Log = log
	e, err := netio.NewEngine(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

// pair returns a client connection whose server end is on the engine.
func pair(t *testing.T, e *netio.Engine, h netio.Handler) (net.Conn, *netio.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			acc <- c
		}
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	var server net.Conn
	select {
	case server = <-acc:
	case <-time.After(wait):
		t.Fatal("accept timed out")
	}
	c, err := e.Add(server, h)
	if err != nil {
		t.Fatal(err)
	}
	return client, c
}

func waitClosed(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatal("OnClose was not called")
		return nil
	}
}

func TestEchoAndPeerClose(t *testing.T) {
	e := engine(t, netio.Config{})
	h := newEcho()
	client, c := pair(t, e, h)
	msg := []byte(`{"id":1,"method":"mining.subscribe","params":[]}` + "\n")
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(wait))
	line, err := bufio.NewReader(client).ReadBytes('\n')
	if err != nil || !bytes.Equal(line, msg) {
		t.Fatalf("echo: %q %v", line, err)
	}
	if c.Remote().Addr().String() != "127.0.0.1" {
		t.Fatalf("remote %v", c.Remote())
	}
	_ = client.Close()
	if err := waitClosed(t, h.closed); err != nil {
		t.Fatalf("peer close reported as %v, want nil (EOF)", err)
	}
	// Counted by the loop after the write returned; OnClose came after it.
	if c.BytesRead() != int64(len(msg)) || c.BytesWritten() != int64(len(msg)) {
		t.Fatalf("counters read %d written %d, want %d", c.BytesRead(), c.BytesWritten(), len(msg))
	}
	if err := c.Write(msg); !errors.Is(err, netio.ErrClosed) {
		t.Fatalf("write after close: %v, want ErrClosed", err)
	}
}

// A peer that never reads fills its queue; the write that passes the cap
// fails with ErrWriteOverflow and the connection is closed, once.
func TestOverflowClosesSlowPeer(t *testing.T) {
	e := engine(t, netio.Config{MaxWriteBuffered: 16 * 1024})
	h := newEcho()
	_, c := pair(t, e, h)
	chunk := bytes.Repeat([]byte("x"), 1400)
	var err error
	for i := 0; i < 10000 && err == nil; i++ {
		err = c.Write(chunk)
	}
	if !errors.Is(err, netio.ErrWriteOverflow) {
		t.Fatalf("writes to a peer that does not read ended with %v, want overflow", err)
	}
	waitClosed(t, h.closed)
	select {
	case err := <-h.closed:
		t.Fatalf("OnClose called twice (%v)", err)
	default:
	}
}

// Close from another goroutine ends the connection through the loop.
func TestCloseFromAnotherGoroutine(t *testing.T) {
	e := engine(t, netio.Config{})
	h := newEcho()
	client, c := pair(t, e, h)
	go func() { _ = c.Close() }()
	waitClosed(t, h.closed)
	_ = client.SetReadDeadline(time.Now().Add(wait))
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Fatal("client still connected after Close")
	}
}

// CloseAfter delivers its last message before the connection ends.
func TestCloseAfterDeliversLastMessage(t *testing.T) {
	e := engine(t, netio.Config{})
	h := newEcho()
	client, c := pair(t, e, h)
	last := []byte(`{"id":null,"method":"client.reconnect","params":[]}` + "\n")
	c.CloseAfter(last)
	_ = client.SetReadDeadline(time.Now().Add(wait))
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, last) {
		t.Fatalf("got %q (%v), want the last message then EOF", got, err)
	}
	waitClosed(t, h.closed)
}

// flusher counts flushes; due is set by the test.
type flusher struct {
	due     atomic.Int64
	flushed chan time.Time
}

func (f *flusher) Due() int64 { return f.due.Load() }
func (f *flusher) Flush(now time.Time) {
	f.due.Store(0)
	f.flushed <- now
}

// The loop's own wait brings a flusher due: with no I/O at all and a long
// MaxWait, a flush due in 5 ms still runs about then, and one due "now"
// (a block candidate) runs at once.
func TestFlusherRunsOnTheLoopsDeadline(t *testing.T) {
	e := engine(t, netio.Config{MaxWait: 5 * time.Second})
	f := &flusher{flushed: make(chan time.Time, 4)}
	e.AddFlusher(f)
	// Wake the loop so it sees the flusher, with a connection's bytes.
	h := newEcho()
	client, _ := pair(t, e, h)
	armed := time.Now()
	f.due.Store(armed.Add(5 * time.Millisecond).UnixNano())
	if _, err := client.Write([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-f.flushed:
		if d := at.Sub(armed); d < 5*time.Millisecond || d > time.Second {
			t.Fatalf("flushed %v after arming for 5 ms", d)
		}
	case <-time.After(wait):
		t.Fatal("flusher never ran")
	}
	e.RemoveFlusher(f)
	f.due.Store(time.Now().UnixNano())
	if _, err := client.Write([]byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-f.flushed:
		t.Fatal("a removed flusher ran")
	case <-time.After(50 * time.Millisecond): // a bounded look for something that must not happen
	}
}

// Stop closes every connection and tells each handler.
func TestStopClosesEverything(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	e, err := netio.NewEngine(netio.Config{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]*echo, 3)
	for i := range hs {
		hs[i] = newEcho()
		pair(t, e, hs[i])
	}
	e.Stop()
	for _, h := range hs {
		waitClosed(t, h.closed)
	}
}
