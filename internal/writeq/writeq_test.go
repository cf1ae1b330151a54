package writeq

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Output the socket does not take inline is drained by one goroutine, and
// the peer sees every byte in the order it was sent, whether it went inline
// or through the queue.
func TestQueueKeepsOrder(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	var mu sync.Mutex
	drained := 0
	q := &Queue{Conn: a, Timeout: 5 * time.Second, Written: func(n int, err error) {
		mu.Lock()
		drained += n
		mu.Unlock()
	}}
	inlined := 0
	// The socket takes the first half of each write inline.
	half := func(p []byte) (int, error) { inlined += len(p) / 2; return a.Write(p[:len(p)/2]) }
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 150)
		_ = b.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _ := io.ReadFull(b, buf)
		got <- buf[:n]
	}()
	for i := 0; i < 50; i++ {
		line := []byte{byte('a' + i%26), byte('0' + i%10), '\n'}
		want.Write(line)
		if err := q.Send(line, half); err != nil {
			t.Fatal(err)
		}
	}
	if g := <-got; !bytes.Equal(g, want.Bytes()) {
		t.Fatalf("peer read %q, want %q", g, want.Bytes())
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Busy() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // the drain goroutine's exit after its last write; bounded
	}
	mu.Lock()
	defer mu.Unlock()
	if drained+inlined != want.Len() || q.Busy() || drained == 0 {
		t.Fatalf("drained %d + inline %d bytes of %d; busy %v", drained, inlined, want.Len(), q.Busy())
	}
}

// Past Max the queue closes with ErrOverflow; afterwards every Send is
// refused with ErrClosed.
func TestQueueOverflowCloses(t *testing.T) {
	a, b := net.Pipe() // nobody reads b: every write blocks
	defer a.Close()
	defer b.Close()
	q := &Queue{Conn: a, Timeout: time.Minute, Max: 10}
	if err := q.Send([]byte("0123456789"), nil); err != nil {
		t.Fatal(err)
	}
	var err error
	for i := 0; i < 3 && err == nil; i++ { // the first may have been taken by the drain already
		err = q.Send([]byte("0123456789X"), nil)
	}
	if !errors.Is(err, ErrOverflow) {
		t.Fatalf("got %v, want ErrOverflow", err)
	}
	if err := q.Send([]byte("x"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("after overflow: %v", err)
	}
}

// A failing inline write closes the queue and is reported; a failing drain
// write is reported to Written.
func TestQueueErrors(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	boom := errors.New("boom")
	q := &Queue{Conn: a, Timeout: time.Second}
	if err := q.Send([]byte("x"), func([]byte) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("inline error: %v", err)
	}
	if q.Close() {
		t.Fatal("Close after an inline error reported the queue open")
	}

	done := make(chan error, 1)
	q2 := &Queue{Conn: a, Timeout: time.Second, Written: func(_ int, err error) {
		if err != nil {
			done <- err
		}
	}}
	_ = a.Close()
	if err := q2.Send([]byte("y"), nil); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, io.ErrClosedPipe) {
			t.Fatalf("drain error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("drain error never reported")
	}
}
