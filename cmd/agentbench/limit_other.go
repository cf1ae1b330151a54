//go:build !unix

package main

// openFilesLimit is unknown here; the benchmark itself needs Linux's /proc.
func openFilesLimit() uint64 { return 0 }
