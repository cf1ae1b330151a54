//go:build linux

package main

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// trimTextRSS lets the kernel keep only the pages of the agent's own binary
// that it actually uses. A Go binary's text and read-only data are mapped
// from the file, and the kernel's fault-around maps 64 KB around every
// page fault, so after start-up nearly the whole ~11 MB file counts in
// VmRSS although an idle agent touches a fraction of it. On a router that
// is most of the resident memory. For the binary's read-only mappings this
// asks for random access (no fault-around, no read-ahead) and drops the
// pages mapped so far; the ones in use fault back in from the page cache
// at the cost of a minor fault each. Writable mappings (data, bss) are
// never touched: dropping them would discard their contents. It returns
// the bytes of mappings advised.
func trimTextRSS() int64 {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-00c5e000 r-xp 00000000 08:01 1234   /path/to/btcagent
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		n := uintptr(end - start)
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), n, syscall.MADV_RANDOM); e != 0 {
			continue
		}
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), n, syscall.MADV_DONTNEED); e == 0 {
			total += int64(n)
		}
	}
	return total
}
