//go:build linux && !netio_portable

package netio_test

import (
	"testing"
	"time"

	"github.com/btcagent/btcagent/actors/netio"
)

// arrival is what a stamping handler saw of one delivery.
type arrival struct {
	stamp, delivered int64
	data             string
}

// stamping reports each delivery; when gate is set, its first delivery
// blocks the loop until gate is closed.
type stamping struct {
	entered chan struct{}
	gate    chan struct{}
	got     chan arrival
}

func (h *stamping) OnData(c *netio.Conn, data []byte) {
	if h.gate != nil {
		close(h.entered)
		<-h.gate
		h.gate = nil
	}
	h.got <- arrival{stamp: c.ReceivedAt(), delivered: time.Now().UnixNano(), data: string(data)}
}

func (h *stamping) OnClose(*netio.Conn, error) {}

// The stamp is when the bytes reached the socket, not when the loop got
// round to reading them: with the loop held up inside another connection's
// OnData, a second connection's data is stamped before the hold-up ends.
func TestReceivedAtIsTheKernelsArrivalTime(t *testing.T) {
	e := engine(t, netio.Config{ReceiveTimestamps: true})
	busy := &stamping{entered: make(chan struct{}), gate: make(chan struct{}), got: make(chan arrival, 4)}
	late := &stamping{got: make(chan arrival, 4)}
	clientA, _ := pair(t, e, busy)
	clientB, _ := pair(t, e, late)

	if _, err := clientA.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-busy.entered:
	case <-time.After(wait):
		t.Fatal("the loop never delivered the first connection's data")
	}
	before := time.Now().UnixNano()
	if _, err := clientB.Write([]byte("b\n")); err != nil {
		t.Fatal(err)
	}
	written := time.Now().UnixNano()
	// The loop is still held: whatever it delivers next comes after this.
	released := time.Now().UnixNano()
	close(busy.gate)

	var got arrival
	select {
	case got = <-late.got:
	case <-time.After(wait):
		t.Fatal("the second connection's data was not delivered")
	}
	if got.data != "b\n" {
		t.Fatalf("delivered %q, want %q", got.data, "b\n")
	}
	if got.stamp == 0 {
		t.Fatal("ReceivedAt is 0 with ReceiveTimestamps on")
	}
	if got.stamp < before || got.stamp > written {
		t.Errorf("stamp %d outside the write [%d, %d]", got.stamp, before, written)
	}
	if got.delivered < released {
		t.Errorf("delivered at %d, before the loop was released at %d", got.delivered, released)
	}
	if a := <-busy.got; a.stamp == 0 || a.stamp > a.delivered {
		t.Errorf("first connection: stamp %d, delivered %d", a.stamp, a.delivered)
	}
}

// Without the option nothing is stamped, and reads take the plain path.
func TestReceivedAtIsZeroByDefault(t *testing.T) {
	e := engine(t, netio.Config{})
	h := &stamping{got: make(chan arrival, 1)}
	client, _ := pair(t, e, h)
	if _, err := client.Write([]byte("x\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-h.got:
		if got.stamp != 0 || got.data != "x\n" {
			t.Fatalf("got stamp %d data %q; want 0 and %q", got.stamp, got.data, "x\n")
		}
	case <-time.After(wait):
		t.Fatal("no delivery")
	}
}
