package fanout

import (
	"testing"
	"time"
)

func TestWaitReturnsAtOnceWhenIdle(t *testing.T) {
	var g Gate
	if g.Wait(nil, time.Hour) {
		t.Fatal("Wait on an idle gate waited")
	}
	var nilGate *Gate
	nilGate.Begin()
	nilGate.End()
	if nilGate.Active() || nilGate.Wait(nil, time.Hour) {
		t.Fatal("a nil gate must never be closed")
	}
}

func TestWaitEndsWithTheLastBroadcast(t *testing.T) {
	blocked := make(chan struct{})
	g := Gate{onWait: func() { close(blocked) }}
	g.Begin()
	g.Begin() // two links broadcasting at once
	done := make(chan bool)
	go func() { done <- g.Wait(nil, time.Hour) }()
	<-blocked
	g.End()
	if !g.Active() {
		t.Fatal("one of two broadcasts ended and the gate reports idle")
	}
	select {
	case <-done:
		t.Fatal("Wait returned while a broadcast was still in progress")
	default:
	}
	g.End()
	select {
	case waited := <-done:
		if !waited {
			t.Fatal("Wait reported it did not wait")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the last End")
	}
	if g.Active() {
		t.Fatal("gate still active after every End")
	}
	g.End() // an unmatched End must not make the count negative
	g.Begin()
	if !g.Active() {
		t.Fatal("Begin after an unmatched End did not close the gate")
	}
	g.End()
}

func TestWaitIsBounded(t *testing.T) {
	var g Gate
	g.Begin()
	defer g.End()
	start := time.Now()
	if !g.Wait(nil, 20*time.Millisecond) {
		t.Fatal("Wait did not report waiting")
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its bound", d)
	}
	stop := make(chan struct{})
	close(stop)
	if !g.Wait(stop, time.Hour) {
		t.Fatal("Wait with a closed stop did not report waiting")
	}
}
