//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft open-files limit to the hard one: each miner
// is a file descriptor, and the default soft limit (often 1024) would cap a
// farm at a few hundred miners.
func raiseFileLimit() (soft, hard uint64) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, 0
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
	}
	return uint64(r.Cur), uint64(r.Max)
}
