//go:build !linux

package poolsim

// readTCPInfo has no portable implementation outside Linux.
func readTCPInfo(*conn) (ConnTCP, bool) { return ConnTCP{}, false }
