package sv2

import "github.com/btcagent/btcagent/codec"

// errorStatus pairs SubmitShares.Error codes with the repository's share
// statuses (codec.Status). The first pair with a status gives the code a
// pool sends for it; both directions read this one table.
var errorStatus = []struct {
	code   string
	status codec.Status
}{
	{ErrStaleShare, codec.StatusJobNotFoundOrStale},
	{ErrInvalidJobID, codec.StatusJobNotFound},
	{ErrDifficultyTooLow, codec.StatusLowDifficulty},
	{ErrDuplicateShare, codec.StatusDuplicateShare},
	{ErrInvalidNonRollableVersion, codec.StatusIllegalVersionMask},
	{ErrVersionRollingNotAllowed, codec.StatusIllegalVersionMask},
	{ErrBadExtranonceSize, codec.StatusIllegalParams},
	{ErrInvalidChannelID, codec.StatusJobNotFoundOrStale},
}

// StatusOf is the share status of a SubmitShares.Error code, for miners
// and statistics; a code without one is StatusRejectNoReason (the code
// itself still tells the miner why).
func StatusOf(code string) codec.Status {
	for _, e := range errorStatus {
		if e.code == code {
			return e.status
		}
	}
	return codec.StatusRejectNoReason
}

// ErrorCode is the SubmitShares.Error code of a rejected share's status;
// statuses without a code of their own (nTime out of range, say) are
// ErrInvalidShare.
func ErrorCode(st codec.Status) string {
	for _, e := range errorStatus {
		if e.status == st {
			return e.code
		}
	}
	return ErrInvalidShare
}
