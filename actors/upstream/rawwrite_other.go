//go:build !linux

package upstream

import "errors"

// Elsewhere every pool write goes through the link's writer goroutine.
func rawWrite(uintptr, []byte) (int, error) { return 0, errors.New("no raw write") }

const haveRawWrite = false
