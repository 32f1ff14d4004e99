package main

import (
	"strings"
	"testing"
	"time"
)

// testdata/proc is a process tree: 100 (two threads, /proc/PID/io
// readable) with a child 200 (one thread, no io file), which listens on
// 127.0.0.1:8080 (socket inode 5555).

func TestReadTreeFixture(t *testing.T) {
	snap := readTree("testdata/proc", 100)
	if len(snap) != 2 {
		t.Fatalf("tree: %v", snap)
	}
	p := snap[100]
	want := procAcct{UTime: 30, STime: 7, SysCR: 11, SysCW: 5, IO: true, VolCS: 7, InvolCS: 3, Threads: 2}
	if p != want {
		t.Errorf("100: %+v, want %+v", p, want)
	}
	c := snap[200]
	want = procAcct{UTime: 250, STime: 120, VolCS: 40, InvolCS: 9, Threads: 1}
	if c != want {
		t.Errorf("200: %+v, want %+v", c, want)
	}
	if got := procTree("testdata/proc", 200); len(got) != 1 || got[0] != 200 {
		t.Errorf("procTree(200) = %v", got)
	}
}

func TestListenerPidFixture(t *testing.T) {
	if pid := listenerPid("testdata/proc", 100, 8080); pid != 200 {
		t.Errorf("listenerPid = %d, want 200 (holds socket 5555)", pid)
	}
	if pid := listenerPid("testdata/proc", 100, 8081); pid != 0 {
		t.Errorf("nothing listens on 8081: got %d", pid)
	}
}

func TestParsers(t *testing.T) {
	if _, _, err := parseStatTimes([]byte("12 (x) S 1 2")); err == nil {
		t.Error("short stat accepted")
	}
	if _, _, err := parseStatTimes([]byte("no parenthesis")); err == nil {
		t.Error("malformed stat accepted")
	}
	if _, _, err := parseIO([]byte("rchar: 1\nsyscr: 2\n")); err == nil {
		t.Error("io without syscw accepted")
	}
	if _, _, err := parseIO([]byte("syscr: x\nsyscw: 1\n")); err == nil {
		t.Error("io with a bad number accepted")
	}
	if _, _, err := parseCtxSwitches([]byte("Name:\tx\n")); err == nil {
		t.Error("status without context switches accepted")
	}
	// A command name with spaces and parentheses.
	u, s, err := parseStatTimes([]byte("7 (a) b (c) R 1 1 1 0 -1 0 0 0 0 0 13 17 0 0"))
	if err != nil || u != 13 || s != 17 {
		t.Errorf("stat: %d %d %v", u, s, err)
	}
}

func TestDelta(t *testing.T) {
	s0 := acctSnap{
		1: {UTime: 10, STime: 5, SysCR: 100, SysCW: 90, IO: true, VolCS: 7, InvolCS: 1, Threads: 3},
		2: {UTime: 99, STime: 99, IO: true}, // gone by s1: left out
	}
	s1 := acctSnap{
		1: {UTime: 30, STime: 25, SysCR: 300, SysCW: 290, IO: true, VolCS: 17, InvolCS: 3, Threads: 3},
		3: {UTime: 50}, // new in s1: left out
	}
	d, procs := delta(s0, s1)
	want := procAcct{UTime: 20, STime: 20, SysCR: 200, SysCW: 200, IO: true, VolCS: 10, InvolCS: 2, Threads: 3}
	if procs != 1 || d != want {
		t.Fatalf("delta = %+v (%d procs), want %+v", d, procs, want)
	}
	// One process without io: no syscall figures at all.
	s0[1] = procAcct{UTime: 10}
	if d, _ := delta(s0, s1); d.IO {
		t.Error("IO with an unreadable io file")
	}
}

func TestAccountWindow(t *testing.T) {
	start := time.Unix(1000, 0)
	// gale bench ran 3.5 s: 1 s warm-up, 2 s window, so 0.5 s of setup
	// and closing; the sure part is [1.5 s, 3 s] after start.
	var samples []sample
	for ms := 0; ms <= 3500; ms += 25 {
		tk := uint64(ms / 10) // 100% of a CPU: a tick per 10 ms, 3/4 of it system time
		samples = append(samples, sample{start.Add(time.Duration(ms) * time.Millisecond), acctSnap{
			7: {UTime: tk / 4, STime: tk - tk/4, SysCR: uint64(ms) * 10, SysCW: uint64(ms) * 10, IO: true, VolCS: uint64(ms), Threads: 1},
		}})
	}
	// 20,000 messages in the 2 s window: 10 per ms.
	acc, err := accountWindow(samples, start, start.Add(3500*time.Millisecond), time.Second, 2*time.Second, 2*time.Second, 20000)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Interval != 1500*time.Millisecond || acc.Ops != 15000 || !acc.from.Equal(start.Add(1500*time.Millisecond)) {
		t.Fatalf("stretch %v, %v ops, from %v", acc.Interval, acc.Ops, acc.from.Sub(start))
	}
	// 1.5 s of CPU over 15,000 messages: 100 µs each; a read and a write each.
	if !near(acc.UserUS+acc.SysUS, 100) || !near(acc.Syscalls, 2) || !near(acc.ReadCalls, 1) || !near(acc.VolCS, 0.1) {
		t.Fatalf("%+v", acc)
	}
	// Too much setup: the window's sure part is too short.
	if _, err := accountWindow(samples, start, start.Add(5*time.Second), time.Second, 2*time.Second, 2*time.Second, 20000); err == nil ||
		!strings.Contains(err.Error(), "too short") {
		t.Fatalf("err = %v", err)
	}
	if _, err := accountWindow(samples, start, start.Add(3*time.Second), time.Second, 2*time.Second, 2*time.Second, 0); err == nil {
		t.Fatal("no operations: no error")
	}
}

func near(a, b float64) bool { return a > b*0.97 && a < b*1.03 }

func TestParsePerf(t *testing.T) {
	out := `# started on Wed Dec  2 15:10:54 2026

     0.020179185,<not counted>,,raw_syscalls:sys_enter,0,100.00,,
     0.020179185,<not counted>,,syscalls:sys_enter_epoll_wait,0,100.00,,
     0.020179185,<not counted>,,syscalls:sys_enter_epoll_pwait,0,100.00,,
     0.040311491,1000,,raw_syscalls:sys_enter,32274298,100.00,,
     0.040311491,3,,syscalls:sys_enter_epoll_wait,32274298,100.00,,
     0.040311491,7,,syscalls:sys_enter_epoll_pwait,32274298,100.00,,
     0.060848132,2000,,raw_syscalls:sys_enter,25896097,100.00,,
     0.060848132,0,,syscalls:sys_enter_epoll_wait,25896097,100.00,,
     0.060848132,20,,syscalls:sys_enter_epoll_pwait,25896097,100.00,,
`
	pts, err := parsePerf([]byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || pts[0].Syscalls != 0 || pts[1].Syscalls != 1000 || pts[1].Epoll != 10 || pts[2].Epoll != 20 {
		t.Fatalf("%+v", pts)
	}
	start := time.Unix(0, 0)
	sys, ep, covered := perfBetween(pts, start, start.Add(30*time.Millisecond), start.Add(70*time.Millisecond))
	if sys != 3000 || ep != 30 || covered < 40*time.Millisecond || covered > 41*time.Millisecond {
		t.Fatalf("between: %d %d %v", sys, ep, covered)
	}
	if _, err := parsePerf([]byte("# started on …\n\n")); err == nil {
		t.Fatal("no intervals: no error")
	}
}
