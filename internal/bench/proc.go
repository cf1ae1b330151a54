package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// Linux reports these fields in USER_HZ = 100 on every architecture
// regardless of the kernel's internal HZ, so it is a constant rather than a
// sysconf(_SC_CLK_TCK) call (which would need cgo).
const ClockTicks = 100

// ProcStat holds the fields of /proc/<pid>/stat the benchmark uses.
type ProcStat struct {
	UTime   uint64 // user CPU, clock ticks
	STime   uint64 // system CPU, clock ticks
	Threads int
}

// CPU is user plus system time.
func (s ProcStat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime) * time.Second / ClockTicks
}

// ParseStat parses the contents of /proc/<pid>/stat. The command name in
// field 2 is in parentheses and may itself contain spaces and ')', so the
// numeric fields are counted from the last ')'.
func ParseStat(data []byte) (ProcStat, error) {
	end := bytes.LastIndexByte(data, ')')
	if end < 0 {
		return ProcStat{}, errors.New("proc stat: no ')' after the command name")
	}
	// fields[0] is field 3 (state) of proc(5); field k is fields[k-3].
	fields := bytes.Fields(data[end+1:])
	const utime, stime, threads = 14 - 3, 15 - 3, 20 - 3
	if len(fields) <= threads {
		return ProcStat{}, fmt.Errorf("proc stat: %d fields after the command name, want more than %d", len(fields), threads)
	}
	var s ProcStat
	var err error
	if s.UTime, err = strconv.ParseUint(string(fields[utime]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(string(fields[stime]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: stime: %w", err)
	}
	if s.Threads, err = strconv.Atoi(string(fields[threads])); err != nil {
		return ProcStat{}, fmt.Errorf("proc stat: num_threads: %w", err)
	}
	return s, nil
}

// ProcStatus holds the memory fields of /proc/<pid>/status, in bytes.
type ProcStatus struct {
	VmRSS   uint64 // resident set now
	VmHWM   uint64 // peak resident set since the process started
	RssAnon uint64 // the anonymous part of VmRSS: heap, stacks, runtime (0 on kernels before 4.5)
	RssFile uint64 // the file-backed part: mostly the binary's text
	Threads int
}

// ParseStatus parses the contents of /proc/<pid>/status. VmRSS and VmHWM are
// required; a kernel thread or a zombie has neither, which is an error here
// because the benchmark only reads live user processes.
func ParseStatus(data []byte) (ProcStatus, error) {
	var s ProcStatus
	var haveRSS, haveHWM bool
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte{':'})
		if !ok {
			continue
		}
		switch string(key) {
		case "VmRSS", "VmHWM", "RssAnon", "RssFile":
			n, err := parseKB(val)
			if err != nil {
				return ProcStatus{}, fmt.Errorf("proc status: %s: %w", key, err)
			}
			switch string(key) {
			case "VmRSS":
				s.VmRSS, haveRSS = n, true
			case "VmHWM":
				s.VmHWM, haveHWM = n, true
			case "RssAnon":
				s.RssAnon = n
			default:
				s.RssFile = n
			}
		case "Threads":
			n, err := strconv.Atoi(string(bytes.TrimSpace(val)))
			if err != nil {
				return ProcStatus{}, fmt.Errorf("proc status: Threads: %w", err)
			}
			s.Threads = n
		}
	}
	if err := sc.Err(); err != nil {
		return ProcStatus{}, fmt.Errorf("proc status: %w", err)
	}
	if !haveRSS || !haveHWM {
		return ProcStatus{}, errors.New("proc status: no VmRSS/VmHWM (kernel thread or exited process?)")
	}
	return s, nil
}

// parseKB reads a value such as "   36412 kB" and returns bytes.
func parseKB(val []byte) (uint64, error) {
	f := bytes.Fields(val)
	if len(f) != 2 || string(f[1]) != "kB" {
		return 0, fmt.Errorf("unexpected value %q", bytes.TrimSpace(val))
	}
	n, err := strconv.ParseUint(string(f[0]), 10, 64)
	if err != nil {
		return 0, err
	}
	return n * 1024, nil
}

// ProcSample is one reading of a process's CPU and memory.
type ProcSample struct {
	Time    time.Time
	CPU     time.Duration // utime+stime since the process started
	RSS     uint64        // bytes
	HWM     uint64        // bytes
	RSSAnon uint64        // bytes
	Threads int
}

// ReadProc samples process pid from /proc.
func ReadProc(pid int) (ProcSample, error) {
	now := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	st, err := ParseStat(stat)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ProcSample{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	ss, err := ParseStatus(status)
	if err != nil {
		return ProcSample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return ProcSample{Time: now, CPU: st.CPU(), RSS: ss.VmRSS, HWM: ss.VmHWM, RSSAnon: ss.RssAnon, Threads: ss.Threads}, nil
}

// CoresBetween is the CPU used between two samples of the same process as a
// fraction of one core.
func CoresBetween(a, b ProcSample) float64 {
	wall := b.Time.Sub(a.Time)
	if wall <= 0 {
		return 0
	}
	return float64(b.CPU-a.CPU) / float64(wall)
}

// MachineCPU is the first ("cpu") line of /proc/stat: time all cores spent
// busy and idle since boot, in clock ticks.
type MachineCPU struct {
	Time    time.Time
	Busy    uint64 // user, nice, system, irq, softirq, steal
	Idle    uint64 // idle, iowait
	SoftIRQ uint64 // part of Busy: mostly network processing, which may be charged to no process
}

// ParseMachineCPU parses the contents of /proc/stat. guest and guest_nice
// are already counted in user and nice, so they are skipped.
func ParseMachineCPU(data []byte) (MachineCPU, error) {
	line, _, _ := bytes.Cut(data, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return MachineCPU{}, errors.New("proc stat: no aggregate cpu line")
	}
	var m MachineCPU
	for i, v := range f[1:] {
		if i >= 8 { // guest, guest_nice
			break
		}
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return MachineCPU{}, fmt.Errorf("proc stat: cpu field %d: %w", i+1, err)
		}
		switch i {
		case 3, 4: // idle, iowait
			m.Idle += n
		case 6:
			m.SoftIRQ = n
			m.Busy += n
		default:
			m.Busy += n
		}
	}
	return m, nil
}

// ReadMachineCPU samples /proc/stat.
func ReadMachineCPU() (MachineCPU, error) {
	now := time.Now()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineCPU{}, fmt.Errorf("read /proc/stat: %w", err)
	}
	m, err := ParseMachineCPU(data)
	m.Time = now
	return m, err
}

// BusyCores is how many cores were busy on average between two samples.
func BusyCores(a, b MachineCPU) float64 {
	return ticksPerSecond(a.Busy, b.Busy, a.Time, b.Time)
}

// SoftIRQCores is how many cores were busy in softirq context on average
// between two samples.
func SoftIRQCores(a, b MachineCPU) float64 {
	return ticksPerSecond(a.SoftIRQ, b.SoftIRQ, a.Time, b.Time)
}

func ticksPerSecond(a, b uint64, ta, tb time.Time) float64 {
	wall := tb.Sub(ta).Seconds()
	if wall <= 0 || b < a {
		return 0
	}
	return float64(b-a) / ClockTicks / wall
}
