package miner

import (
	"testing"
	"unsafe"
)

// The broadcast touches these fields of every session; keeping them in
// the first 80 bytes is what makes it cost two or three cache lines per
// miner (see the Session comment). A reordering that spreads them fails.
func TestSessionBroadcastFieldsAreNear(t *testing.T) {
	var s Session
	const limit = 80
	for name, end := range map[string]uintptr{
		"conn":    unsafe.Offsetof(s.conn) + unsafe.Sizeof(s.conn),
		"mu":      unsafe.Offsetof(s.mu) + unsafe.Sizeof(s.mu),
		"queue":   unsafe.Offsetof(s.queue) + unsafe.Sizeof(s.queue),
		"running": unsafe.Offsetof(s.running) + 1,
		"closing": unsafe.Offsetof(s.closing) + 1,
		"jobPos":  unsafe.Offsetof(s.jobPos) + 1,
		"stale":   unsafe.Offsetof(s.stale) + 1,
		"diff":    unsafe.Offsetof(s.diff) + unsafe.Sizeof(s.diff),
		"latest":  unsafe.Offsetof(s.latest) + unsafe.Sizeof(s.latest),
	} {
		if end > limit {
			t.Errorf("Session.%s ends at byte %d, past the first %d the broadcast reads", name, end, limit)
		}
	}
	if got := unsafe.Sizeof(s); got > 512 {
		t.Errorf("Session is %d bytes, past the 512-byte size class", got)
	}
}
