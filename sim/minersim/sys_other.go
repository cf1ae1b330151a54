//go:build !unix

package minersim

import "time"

// Outside Unix there is no RLIMIT_NOFILE, getrusage or /proc: report nothing.

func raiseFileLimit() (uint64, error) { return 0, nil }

func processCPU() time.Duration { return 0 }

func residentBytes() int64 { return 0 }
