package sv2

import (
	"testing"

	"github.com/btcagent/btcagent/codec"
)

// The error codes and statuses map both ways: what a pool sends for a
// status reads back as that status, unknown codes are a reject without
// reason, and statuses without a code become invalid-share.
func TestErrorStatus(t *testing.T) {
	for _, st := range []codec.Status{codec.StatusJobNotFoundOrStale, codec.StatusJobNotFound, codec.StatusLowDifficulty,
		codec.StatusDuplicateShare, codec.StatusIllegalVersionMask, codec.StatusIllegalParams} {
		if got := StatusOf(ErrorCode(st)); got != st {
			t.Errorf("status %d → %q → %d", st, ErrorCode(st), got)
		}
	}
	if c := ErrorCode(codec.StatusJobNotFoundOrStale); c != ErrStaleShare {
		t.Errorf("stale → %q", c)
	}
	if c := ErrorCode(codec.StatusTimeTooNew); c != ErrInvalidShare {
		t.Errorf("nTime too new → %q", c)
	}
	if st := StatusOf(ErrInvalidChannelID); st != codec.StatusJobNotFoundOrStale {
		t.Errorf("invalid-channel-id → %d", st)
	}
	if st := StatusOf("some-new-code"); st != codec.StatusRejectNoReason {
		t.Errorf("unknown code → %d", st)
	}
}
