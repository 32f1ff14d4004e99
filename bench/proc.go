package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (CLK_TCK,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// server is one server process (benchserver, or an outside server).
type server struct {
	cmd *exec.Cmd
	// pid is the process the load generator reads (-pid); root is the
	// process started, whose tree the accounting sums over. They differ
	// when an outside server's command is a wrapper.
	pid, root int
	addr      string
	stderr    *tailBuffer
	group     bool // in its own process group: signal the group
	// perfFile is where perf stat writes its intervals (-perf), counting
	// from about perfStart.
	perfFile  string
	perfStart time.Time
}

// startServer starts bin for impl and waits for the address line; with
// perfOut, under perf stat writing there. extra goes on bin's command line.
func startServer(bin, impl, cpuprofile string, verbose, compress, broadcast bool, certs *certFiles, perfOut string, extra ...string) (*server, error) {
	args := append([]string{"-impl", impl, "-addr", "127.0.0.1:0"}, extra...)
	if certs != nil {
		args = append(args, "-tls-cert", certs.Leaf, "-tls-key", certs.Key)
	}
	if compress {
		args = append(args, "-compress")
	}
	if broadcast {
		args = append(args, "-broadcast")
	}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	cmd := exec.Command(bin, args...)
	s := &server{cmd: cmd, stderr: &tailBuffer{max: 8 << 10}}
	if perfOut != "" {
		argv := append(perfArgs(perfOut), append([]string{bin}, args...)...)
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		s.cmd, s.group, s.perfFile = cmd, true, perfOut
	}
	cmd.WaitDelay = 2 * time.Second // a grandchild holding stderr must not hang Wait
	cmd.Stderr = s.stderr
	if verbose {
		cmd.Stderr = io.MultiWriter(s.stderr, os.Stderr)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s.pid = cmd.Process.Pid
	s.root = s.pid
	line := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		l, _ := r.ReadString('\n')
		line <- strings.TrimSpace(l)
		io.Copy(io.Discard, r)
	}()
	select {
	case s.addr = <-line:
		// perf stat's intervals count from when it let the server exec: the
		// address line comes just after.
		s.perfStart = time.Now()
	case <-time.After(10 * time.Second):
	}
	if s.addr == "" {
		s.kill()
		return nil, fmt.Errorf("%s server printed no address: %s", impl, s.stderr)
	}
	if s.perfFile != "" { // the load generator and the accounting read benchserver, not perf
		s.root = perfChild(procRoot, s.root)
		if _, p, err := net.SplitHostPort(s.addr); err == nil {
			port, _ := strconv.Atoi(p)
			if pid := listenerPid(procRoot, s.root, port); pid > 0 {
				s.pid = pid
			}
		}
	}
	return s, nil
}

// stopTimeout is how long a server has to exit after SIGTERM before it is
// killed.
var stopTimeout = 10 * time.Second

// stop sends SIGTERM and waits, killing the process if it lingers.
func (s *server) stop() error {
	s.signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if s.group {
			s.signal(syscall.SIGKILL) // a wrapper's children, if any are left
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil // SIGTERM's default action: what was asked
			}
		}
		return err
	case <-time.After(stopTimeout):
		s.signal(syscall.SIGKILL)
		<-done
		return errors.New("server ignored SIGTERM; killed")
	}
}

func (s *server) kill() {
	s.signal(syscall.SIGKILL)
	s.cmd.Wait()
}

// signal sends sig to the process, or to its process group.
func (s *server) signal(sig syscall.Signal) {
	if s.group {
		syscall.Kill(-s.cmd.Process.Pid, sig)
		return
	}
	s.cmd.Process.Signal(sig)
}

// alive reports whether the process is still running (not exited, not a
// zombie waiting to be reaped).
func (s *server) alive() bool {
	if s.cmd.ProcessState != nil || s.cmd.Process.Signal(syscall.Signal(0)) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// cpu returns the process's CPU time so far (user + system, all threads).
func (s *server) cpu() (time.Duration, error) { return procCPU(s.pid) }

// rss returns the process's resident set size in KiB.
func (s *server) rss() (uint64, error) { return procRSS(s.pid) }

// procCPU reads utime + stime from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields start after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/pid/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/pid/stat")
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * clockTick, nil
}

// procRSS reads VmRSS (KiB) from /proc/<pid>/status.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmRSS in /proc/pid/status")
}

// hostCPU returns the busy and total time of all CPUs from /proc/stat, in
// clock ticks: busy is everything but idle and iowait.
func hostCPU() (busy, total uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// selfCPU returns this process's CPU time (the load generator's).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseFileLimit lifts the soft open-files limit to the hard one.
func raiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return 0, err
		}
	}
	return rl.Cur, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
