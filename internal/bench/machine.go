package bench

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a result was measured; numbers from different
// machines are not comparable, so every result carries one.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMiB int    `json:"memory_mib,omitempty"`
	Kernel    string `json:"kernel"`
	OS        string `json:"os"`
	GoVersion string `json:"go_version"` // the toolchain that built the agent (or this harness)
}

// String is the one-line form used in reports.
func (m Machine) String() string {
	s := fmt.Sprintf("%s, %d cores", m.CPU, m.Cores)
	if m.MemoryMiB > 0 {
		s += fmt.Sprintf(", %d GiB", (m.MemoryMiB+512)/1024)
	}
	s += ", " + strings.TrimSpace(m.OS+" "+m.Kernel)
	return s + ", " + m.GoVersion
}

// ThisMachine reads the machine description from /proc. Missing files leave
// fields empty rather than failing: the description is informative only.
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS, GoVersion: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = CPUModel(data)
	}
	if m.CPU == "" {
		m.CPU = runtime.GOARCH
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				if n, err := parseKB([]byte(v)); err == nil {
					m.MemoryMiB = int(n >> 20)
				}
				break
			}
		}
	}
	return m
}

// CPUModel returns the first "model name" (x86) or "Model"/"Hardware" (ARM
// boards) value in /proc/cpuinfo contents.
func CPUModel(cpuinfo []byte) string {
	var fallback string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			return val
		case "Model", "Hardware":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}

// BinaryInfo describes a Go binary: its toolchain and VCS revision, so a
// result says which build of the agent was measured.
type BinaryInfo struct {
	GoVersion string    `json:"go_version,omitempty"`
	Revision  string    `json:"revision,omitempty"`
	Modified  bool      `json:"modified,omitempty"` // built from a dirty tree
	Checkout  bool      `json:"checkout,omitempty"` // Revision is the checkout's HEAD when the benchmark ran, not stamped in the binary
	Built     time.Time `json:"built,omitzero"`     // the binary's modification time
}

// ReadBinaryInfo reads the build info embedded in a Go binary; a non-Go
// binary yields the zero value.
func ReadBinaryInfo(path string) BinaryInfo {
	var info BinaryInfo
	if st, err := os.Stat(path); err == nil {
		info.Built = st.ModTime().UTC().Truncate(time.Second)
	}
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return info
	}
	info.GoVersion = bi.GoVersion
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}
