//go:build linux

package upstream

import "github.com/btcagent/btcagent/actors/netio"

// rawWrite is the non-blocking inline write of a pool link's flush.
func rawWrite(fd uintptr, b []byte) (int, error) { return netio.RawWrite(fd, b) }

const haveRawWrite = true
