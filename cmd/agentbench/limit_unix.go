//go:build unix

package main

import "syscall"

// openFilesLimit is the hard RLIMIT_NOFILE that the agent and minersim raise
// their soft limits to; 0 if unknown.
func openFilesLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return uint64(r.Max)
}
