package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Where a server's time goes, from /proc, per message or handshake: user
// and system CPU time (utime, stime of /proc/PID/stat), read- and
// write-family system calls (syscr, syscw of /proc/PID/io) and context
// switches (voluntary_ctxt_switches, nonvoluntary_ctxt_switches of each
// thread's /proc/PID/task/TID/status), summed over the server's process
// tree.

// procRoot is where /proc is; tests point it at fixtures.
var procRoot = "/proc"

// procAcct is one process's counters.
type procAcct struct {
	UTime, STime uint64 // clock ticks, all threads, live and exited
	SysCR, SysCW uint64 // read- and write-family system calls, all threads
	IO           bool   // /proc/PID/io was readable
	VolCS        uint64 // voluntary context switches, summed over live threads
	InvolCS      uint64 // involuntary ones
	Threads      int
}

// acctSnap is a process tree's counters at one moment, by pid.
type acctSnap map[int]procAcct

// readTree reads the counters of root and its descendants under proc.
func readTree(proc string, root int) acctSnap {
	s := acctSnap{}
	for _, pid := range procTree(proc, root) {
		if a, err := readProc(proc, pid); err == nil {
			s[pid] = a
		}
	}
	return s
}

// procTree returns pid and its descendants (each thread's children file).
func procTree(proc string, pid int) []int {
	if pid <= 0 {
		return nil
	}
	all := []int{pid}
	for i := 0; i < len(all); i++ {
		files, _ := filepath.Glob(fmt.Sprintf("%s/%d/task/*/children", proc, all[i]))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(s); err == nil && !containsInt(all, n) {
					all = append(all, n)
				}
			}
		}
	}
	return all
}

func containsInt(l []int, n int) bool {
	for _, v := range l {
		if v == n {
			return true
		}
	}
	return false
}

// readProc reads one process's counters. /proc/PID/io may be unreadable
// (another user's process, or a kernel without task I/O accounting): the
// rest is still read, with IO false.
func readProc(proc string, pid int) (procAcct, error) {
	var a procAcct
	dir := fmt.Sprintf("%s/%d", proc, pid)
	b, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return a, err
	}
	if a.UTime, a.STime, err = parseStatTimes(b); err != nil {
		return a, err
	}
	if b, err := os.ReadFile(dir + "/io"); err == nil {
		if a.SysCR, a.SysCW, err = parseIO(b); err == nil {
			a.IO = true
		}
	}
	tasks, _ := filepath.Glob(dir + "/task/*/status")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		v, n, err := parseCtxSwitches(b)
		if err != nil {
			continue
		}
		a.VolCS += v
		a.InvolCS += n
		a.Threads++
	}
	if a.Threads == 0 { // no task directory: the process's own status
		if b, err := os.ReadFile(dir + "/status"); err == nil {
			if v, n, err := parseCtxSwitches(b); err == nil {
				a.VolCS, a.InvolCS, a.Threads = v, n, 1
			}
		}
	}
	return a, nil
}

// parseStatTimes reads utime and stime (fields 14 and 15, clock ticks)
// from /proc/PID/stat.
func parseStatTimes(b []byte) (utime, stime uint64, err error) {
	// The command name, in parentheses, may hold spaces: fields start after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc/PID/stat")
	}
	// f[0] is field 3 (state).
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return ut, st, nil
}

// parseIO reads syscr and syscw from /proc/PID/io.
func parseIO(b []byte) (syscr, syscw uint64, err error) {
	var r, w bool
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, perr := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		switch strings.TrimSpace(k) {
		case "syscr":
			syscr, r, err = n, true, perr
		case "syscw":
			syscw, w, err = n, true, perr
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if !r || !w {
		return 0, 0, errors.New("no syscr/syscw in /proc/PID/io")
	}
	return syscr, syscw, nil
}

// parseCtxSwitches reads voluntary_ctxt_switches and
// nonvoluntary_ctxt_switches from a /proc status file.
func parseCtxSwitches(b []byte) (vol, invol uint64, err error) {
	var v, n bool
	for line := range strings.SplitSeq(string(b), "\n") {
		k, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		x, perr := strconv.ParseUint(strings.TrimSpace(val), 10, 64)
		switch k {
		case "voluntary_ctxt_switches":
			vol, v, err = x, true, perr
		case "nonvoluntary_ctxt_switches":
			invol, n, err = x, true, perr
		}
		if err != nil {
			return 0, 0, err
		}
	}
	if !v || !n {
		return 0, 0, errors.New("no context switches in status")
	}
	return vol, invol, nil
}

// delta is what happened between s0 and s1, over the processes present
// in both (a process that came or went in between is left out).
func delta(s0, s1 acctSnap) (d procAcct, procs int) {
	d.IO = true
	for pid, b := range s1 {
		a, ok := s0[pid]
		if !ok {
			continue
		}
		procs++
		d.UTime += sub(b.UTime, a.UTime)
		d.STime += sub(b.STime, a.STime)
		d.VolCS += sub(b.VolCS, a.VolCS)
		d.InvolCS += sub(b.InvolCS, a.InvolCS)
		d.Threads += b.Threads
		if a.IO && b.IO {
			d.SysCR += sub(b.SysCR, a.SysCR)
			d.SysCW += sub(b.SysCW, a.SysCW)
		} else {
			d.IO = false
		}
	}
	if procs == 0 {
		d.IO = false
	}
	return d, procs
}

func sub(b, a uint64) uint64 {
	if b < a {
		return 0
	}
	return b - a
}

// accounting is a server's counters per operation (message, delivery or
// handshake) over a stretch of the measured window.
type accounting struct {
	Interval time.Duration `json:"interval_ns"` // the stretch read
	Ops      float64       `json:"ops"`         // operations in it, at the window's rate
	Procs    int           `json:"procs"`
	Threads  int           `json:"threads"`
	UserUS   float64       `json:"user_us_per_op"`
	SysUS    float64       `json:"sys_us_per_op"`
	// IO says whether /proc/PID/io was readable; the syscall figures are 0
	// when not.
	IO        bool    `json:"io_readable"`
	ReadCalls float64 `json:"read_syscalls_per_op"`
	WriteCall float64 `json:"write_syscalls_per_op"`
	Syscalls  float64 `json:"syscalls_per_op"` // read + write
	VolCS     float64 `json:"voluntary_ctx_switches_per_op"`
	InvolCS   float64 `json:"involuntary_ctx_switches_per_op"`
	// With -perf: every system call, and the epoll waits among them,
	// counted by perf stat over (about) the same stretch.
	Perf        bool    `json:"perf,omitempty"`
	AllSyscalls float64 `json:"all_syscalls_per_op,omitempty"`
	EpollWaits  float64 `json:"epoll_waits_per_op,omitempty"`

	from, to time.Time // the stretch
}

// sample is a snapshot of the server's tree at a time.
type sample struct {
	t    time.Time
	snap acctSnap
}

// sampler reads a process tree's counters every period until finish.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	stop    chan struct{}
	done    chan struct{}
}

// sampleEvery is the sampler's period: the accounting's edges fall within
// one period of the stretch it aims at.
const sampleEvery = 25 * time.Millisecond

func startSampler(proc string, root int, every time.Duration) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	take := func() {
		snap := readTree(proc, root)
		s.mu.Lock()
		s.samples = append(s.samples, sample{time.Now(), snap})
		s.mu.Unlock()
	}
	take()
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				take()
				return
			case <-t.C:
				take()
			}
		}
	}()
	return s
}

func (s *sampler) finish() []sample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// accountWindow places a stretch inside the load generator's measured
// window and reads the counters over it. The load generator started at
// start and exited at end; it spent setup time before its warm-up and
// the window, and closing time after, together end-start-warmup-dur. The
// window then surely covers [start+warmup+slack, start+warmup+dur]: the
// stretch read is the samples within it. ops over window are what the
// load generator counted in its window; the stretch's share is taken at
// the window's rate.
func accountWindow(samples []sample, start, end time.Time, warmup, dur, window time.Duration, ops uint64) (*accounting, error) {
	if window <= 0 || ops == 0 {
		return nil, errors.New("no operations in the window")
	}
	slack := max(0, end.Sub(start)-warmup-dur)
	a, b := start.Add(warmup+slack), start.Add(warmup+dur)
	i, j := -1, -1
	for k, s := range samples {
		if i < 0 && !s.t.Before(a) {
			i = k
		}
		if !s.t.After(b) {
			j = k
		}
	}
	if i < 0 || j <= i || samples[j].t.Sub(samples[i].t) < 4*sampleEvery {
		return nil, fmt.Errorf("the window's sure part (%v after %v of setup and closing) is too short to read", b.Sub(a).Round(time.Millisecond), slack.Round(time.Millisecond))
	}
	return perOp(samples[i], samples[j], window, ops)
}

// perOp divides the counters between two samples by the operations in
// between, at ops per window.
func perOp(s0, s1 sample, window time.Duration, ops uint64) (*accounting, error) {
	d, procs := delta(s0.snap, s1.snap)
	if procs == 0 {
		return nil, errors.New("the server's process was not readable")
	}
	iv := s1.t.Sub(s0.t)
	n := float64(ops) * iv.Seconds() / window.Seconds()
	if n <= 0 {
		return nil, errors.New("no operations in the stretch")
	}
	tick := float64(clockTick) / float64(time.Microsecond)
	acc := &accounting{Interval: iv, Ops: n, Procs: procs, Threads: d.Threads, from: s0.t, to: s1.t,
		UserUS: float64(d.UTime) * tick / n, SysUS: float64(d.STime) * tick / n,
		IO: d.IO, VolCS: float64(d.VolCS) / n, InvolCS: float64(d.InvolCS) / n}
	if d.IO {
		acc.ReadCalls, acc.WriteCall = float64(d.SysCR)/n, float64(d.SysCW)/n
		acc.Syscalls = acc.ReadCalls + acc.WriteCall
	}
	return acc, nil
}
