package codec

import "strconv"

// Status is a btcpool StratumStatus code. The same table is used by sserver
// and both btccom agents; verdicts in SUBMIT_RESPONSE frames carry it as int32.
type Status int32

// Status values (docs/PROTOCOL.md §9.1). The accepted values are odd 32-bit
// patterns on purpose, so that a zeroed or corrupted field never reads as an accept.
const (
	StatusAccept              Status = 1798084231 // 0x6B2C9687
	StatusAcceptStale         Status = 950395421  // 0x38A5E21D
	StatusSolved              Status = 1422486894 // 0x54C96D6E
	StatusSolvedStale         Status = 1713984938 // 0x662955AA
	StatusSolvedPreliminary   Status = 1835617709 // 0x6D694DAD, internal to sserver
	StatusRejectNoReason      Status = 0
	StatusJobNotFoundOrStale  Status = 21
	StatusDuplicateShare      Status = 22
	StatusLowDifficulty       Status = 23
	StatusUnauthorized        Status = 24
	StatusNotSubscribed       Status = 25
	StatusIllegalMethod       Status = 26
	StatusIllegalParams       Status = 27
	StatusIPBanned            Status = 28
	StatusInvalidUsername     Status = 29
	StatusInternalError       Status = 30
	StatusTimeTooOld          Status = 31
	StatusTimeTooNew          Status = 32
	StatusIllegalVersionMask  Status = 33
	StatusInvalidSolution     Status = 34
	StatusWrongNoncePrefix    Status = 35
	StatusJobNotFound         Status = 36
	StatusStaleShare          Status = 37
	StatusNicehashUnsupported Status = 38
	StatusClientIsNotSwitcher Status = 400
	StatusUnknown             Status = 2147483647
)

var statusText = map[Status]string{
	StatusAccept:              "Share accepted",
	StatusAcceptStale:         "Share accepted (stale)",
	StatusSolved:              "Share accepted and solved",
	StatusSolvedStale:         "Share accepted and solved (stale)",
	StatusSolvedPreliminary:   "Share accepted and solved (preliminary)",
	StatusRejectNoReason:      "Share rejected",
	StatusJobNotFoundOrStale:  "Job not found (=stale)",
	StatusDuplicateShare:      "Duplicate share",
	StatusLowDifficulty:       "Low difficulty",
	StatusUnauthorized:        "Unauthorized worker",
	StatusNotSubscribed:       "Not subscribed",
	StatusIllegalMethod:       "Illegal method",
	StatusIllegalParams:       "Illegal params",
	StatusIPBanned:            "Ip banned",
	StatusInvalidUsername:     "Invalid username",
	StatusInternalError:       "Internal error",
	StatusTimeTooOld:          "Time too old",
	StatusTimeTooNew:          "Time too new",
	StatusIllegalVersionMask:  "Invalid version mask",
	StatusInvalidSolution:     "Invalid Solution",
	StatusWrongNoncePrefix:    "Wrong Nonce Prefix",
	StatusJobNotFound:         "Job not found",
	StatusStaleShare:          "Stale share",
	StatusNicehashUnsupported: "NiceHash unsupported",
	StatusClientIsNotSwitcher: "Client is not a stratum switcher",
	StatusUnknown:             "Unknown",
}

// Text is the message the pool attaches to the code; unknown codes get a
// generic text that still names the number so an operator can look it up.
func (s Status) Text() string {
	if t, ok := statusText[s]; ok {
		return t
	}
	return "Share rejected (status " + strconv.FormatInt(int64(s), 10) + ")"
}

// Accepted reports whether the pool counted the share. Only the four magic
// accept values count; everything else, including 0, is a reject.
func (s Status) Accepted() bool {
	switch s {
	case StatusAccept, StatusAcceptStale, StatusSolved, StatusSolvedStale:
		return true
	}
	return false
}

// Reason is a short, stable, metric-label-friendly name for the status.
func (s Status) Reason() string {
	switch s {
	case StatusAccept, StatusSolved:
		return "accepted"
	case StatusAcceptStale, StatusSolvedStale:
		return "accepted_stale"
	case StatusJobNotFoundOrStale, StatusJobNotFound, StatusStaleShare:
		return "stale"
	case StatusDuplicateShare:
		return "duplicate"
	case StatusLowDifficulty:
		return "low_difficulty"
	case StatusUnauthorized, StatusNotSubscribed:
		return "unauthorized"
	case StatusIllegalParams, StatusIllegalMethod:
		return "illegal_params"
	case StatusTimeTooOld, StatusTimeTooNew:
		return "bad_time"
	case StatusIllegalVersionMask:
		return "bad_version"
	}
	return "other"
}
