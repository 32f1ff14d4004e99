package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// With -perf every server runs under `perf stat -I`: Linux perf counts,
// in short intervals, every system call the server's threads enter
// (raw_syscalls:sys_enter) and its epoll waits, with the tracepoints'
// counters, not by tracing each call. The accounting then adds all system
// calls and epoll waits per operation over the same stretch as the rest.

// perfEvents are the counted tracepoints; the epoll ones are summed.
var perfEvents = []string{
	"raw_syscalls:sys_enter",
	"syscalls:sys_enter_epoll_wait",
	"syscalls:sys_enter_epoll_pwait",
}

// perfInterval is perf stat -I's period.
const perfInterval = 20 * time.Millisecond

// perfArgs is the command prefix that runs a server under perf stat,
// writing the intervals to out.
func perfArgs(out string) []string {
	return []string{"perf", "stat", "-I", strconv.Itoa(int(perfInterval / time.Millisecond)), "-x", ",", "-o", out,
		"-e", strings.Join(perfEvents, ","), "--"}
}

// perfUsable checks that perf can count the events here: it runs
// `perf stat` over `true` ("" when it works, else why not).
func perfUsable() string {
	if _, err := exec.LookPath("perf"); err != nil {
		return "perf is not installed"
	}
	cmd := exec.Command("perf", "stat", "-x", ",", "-e", strings.Join(perfEvents, ","), "--", "true")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Sprintf("perf stat cannot count %s: %v: %s", strings.Join(perfEvents, ","), err, lastLine(stderr.String()))
	}
	return ""
}

// perfPoint is one interval of perf stat -I: the counts from the previous
// point to At (time since perf started counting).
type perfPoint struct {
	At       time.Duration
	Syscalls uint64
	Epoll    uint64
}

// parsePerf reads perf stat -I -x, output: "time,count,unit,event,…"
// lines, "<not counted>" (the threads did not run) as 0.
func parsePerf(b []byte) ([]perfPoint, error) {
	var out []perfPoint
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 4 {
			continue
		}
		secs, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("perf output: %q", line)
		}
		at := time.Duration(secs * float64(time.Second))
		n, _ := strconv.ParseUint(f[1], 10, 64) // "<not counted>", "<not supported>": 0
		if len(out) == 0 || out[len(out)-1].At != at {
			out = append(out, perfPoint{At: at})
		}
		p := &out[len(out)-1]
		switch ev := f[3]; {
		case ev == "raw_syscalls:sys_enter":
			p.Syscalls += n
		case strings.HasPrefix(ev, "syscalls:sys_enter_epoll_"):
			p.Epoll += n
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("perf wrote no intervals")
	}
	return out, nil
}

// perfBetween sums the intervals that end within (from, to], perf having
// started at start, and says how long they cover together.
func perfBetween(pts []perfPoint, start, from, to time.Time) (syscalls, epoll uint64, covered time.Duration) {
	var first, last time.Duration = -1, -1
	prev := time.Duration(0)
	for _, p := range pts {
		t := start.Add(p.At)
		if t.After(from) && !t.After(to) {
			syscalls += p.Syscalls
			epoll += p.Epoll
			if first < 0 {
				first = prev
			}
			last = p.At
		}
		prev = p.At
	}
	if first < 0 {
		return 0, 0, 0
	}
	return syscalls, epoll, last - first
}

// addPerf adds perf's counts over the accounting's stretch to acc.
func addPerf(acc *accounting, file string, start time.Time) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	pts, err := parsePerf(b)
	if err != nil {
		return err
	}
	sys, ep, covered := perfBetween(pts, start, acc.from, acc.to)
	if covered <= 0 || acc.Interval <= 0 {
		return fmt.Errorf("no perf interval within the stretch")
	}
	ops := acc.Ops * covered.Seconds() / acc.Interval.Seconds() // at the same rate
	acc.Perf = true
	acc.AllSyscalls = float64(sys) / ops
	acc.EpollWaits = float64(ep) / ops
	return nil
}

// perfChild is the process perf stat (pid) runs: its one child, or pid
// itself when it cannot tell.
func perfChild(proc string, pid int) int {
	if t := procTree(proc, pid); len(t) > 1 {
		return t[1]
	}
	return pid
}
