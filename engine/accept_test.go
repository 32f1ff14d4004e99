package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// The descriptor-limit tests run the server in a child process (the test
// binary again, told its role by an environment variable) that lowers its
// own RLIMIT_NOFILE: the limit must not starve the test itself, and the
// child's /proc/PID/fd is its alone to count.
const (
	envFDServer = "GALE_FD_SERVER" // the server child: its RLIMIT_NOFILE
	envFDClient = "GALE_FD_CLIENT" // a client child: its source address and server URL
)

// fdWait bounds every wait in these tests: generous, since a loaded machine
// (or -race) slows the ramp, and nothing here asserts on speed.
const fdWait = 60 * time.Second

// TestAcceptDescriptorLimit drives a server to EMFILE and proves it keeps
// what it holds and accepts again when descriptors free up: the extra
// connections wait in the backlog (none accepted and dropped), every held
// connection still echoes, the extras are served once some held ones close,
// and the server's descriptors return to their baseline when all leave.
func TestAcceptDescriptorLimit(t *testing.T) {
	srv := startFDServer(t, 128)
	url := "ws://" + srv.addr + "/"
	baseline := srv.settledFDs(t)

	// Fill the table: a dial whose upgrade is not answered in a while,
	// while the server reports failed accepts, is the limit.
	var held []*ClientConn
	defer func() { closeAll(held) }()
	misses := 0
	for {
		if len(held) > 256 {
			t.Fatalf("%d connections held on a 128-descriptor server without an accept failing", len(held))
		}
		c, err := dialFrom(nil, url, 2*time.Second)
		if err == nil {
			held = append(held, c)
			continue
		}
		if st := srv.stats(t); st.acceptErrors > 0 {
			t.Logf("limit reached: %d connections held, %d descriptors at baseline; %+v", len(held), baseline, st)
			break
		}
		if misses++; misses > 5 {
			t.Fatalf("dial %d failed with no accept failing: %v", len(held), err)
		}
	}

	const extras = 4
	type outcome struct {
		c   *ClientConn
		err error
	}
	results := make(chan outcome, extras)
	for range extras {
		go func() {
			c, err := dialFrom(nil, url, fdWait)
			results <- outcome{c, err}
		}()
	}
	// The child is alive and keeps retrying with the extras queued: its
	// failure count grows, and it accepted nothing it could not keep.
	before := srv.stats(t).acceptErrors
	deadline := time.Now().Add(fdWait)
	for srv.stats(t).acceptErrors < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("accept failures stuck at %d", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := srv.stats(t); st.shed != 0 || st.open != len(held) {
		t.Fatalf("at the limit: %+v, want %d open and none shed", st, len(held))
	}
	for i, c := range held {
		if err := echoOnce(c, fmt.Sprintf("held %d", i)); err != nil {
			t.Fatalf("held connection %d of %d: %v", i, len(held), err)
		}
	}

	// Free a few descriptors: the extras are served.
	for _, c := range held[:extras+2] {
		c.CloseNow()
	}
	held = held[extras+2:]
	for i := range extras {
		r := <-results
		if r.err != nil {
			t.Fatalf("extra connection %d: %v", i, r.err)
		}
		held = append(held, r.c)
		if err := echoOnce(r.c, fmt.Sprintf("extra %d", i)); err != nil {
			t.Fatalf("extra connection %d: %v", i, err)
		}
	}
	for i, c := range held {
		if err := echoOnce(c, fmt.Sprintf("again %d", i)); err != nil {
			t.Fatalf("connection %d after the limit: %v", i, err)
		}
	}
	t.Logf("after the limit: %+v", srv.stats(t))

	closeAll(held)
	held = nil
	srv.waitFDs(t, baseline)
	srv.stop(t)
}

// fdServer is a server child process and the pipes that drive it.
type fdServer struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *lockedBuffer
	addr   string
	mu     sync.Mutex
}

type fdStats struct {
	acceptErrors, shed uint64
	open               int
}

// startFDServer starts a server child whose RLIMIT_NOFILE is nofile.
func startFDServer(t testing.TB, nofile int) *fdServer {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDChild$")
	cmd.Env = append(os.Environ(), envFDServer+"="+strconv.Itoa(nofile))
	s := &fdServer{cmd: cmd, stderr: &lockedBuffer{}}
	cmd.Stderr = s.stderr
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewScanner(out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("server child's stderr:\n%s", s.stderr.String())
		}
	})
	line := s.line(t)
	addr, ok := strings.CutPrefix(line, "addr ")
	if !ok {
		t.Fatalf("server child said %q", line)
	}
	s.addr = addr
	return s
}

func (s *fdServer) line(t testing.TB) string {
	t.Helper()
	if !s.out.Scan() {
		t.Fatalf("server child gone (%v); stderr:\n%s", s.out.Err(), s.stderr.String())
	}
	return s.out.Text()
}

// stats asks the child for its counters, which also proves it alive.
func (s *fdServer) stats(t testing.TB) fdStats {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := io.WriteString(s.in, "stats\n"); err != nil {
		t.Fatalf("server child: %v", err)
	}
	var st fdStats
	if _, err := fmt.Sscanf(s.line(t), "stats %d %d %d", &st.acceptErrors, &st.shed, &st.open); err != nil {
		t.Fatalf("server child stats: %v", err)
	}
	return st
}

// fds counts the child's open descriptors.
func (s *fdServer) fds(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settledFDs returns the child's descriptor count once a connection has
// come and gone: whatever is opened lazily on the first accept is in it.
func (s *fdServer) settledFDs(t testing.TB) int {
	t.Helper()
	c, err := dialFrom(nil, "ws://"+s.addr+"/", fdWait)
	if err != nil {
		t.Fatalf("first dial: %v", err)
	}
	if err := echoOnce(c, "warm-up"); err != nil {
		t.Fatal(err)
	}
	c.CloseNow()
	deadline := time.Now().Add(fdWait)
	for s.stats(t).open != 0 {
		if time.Now().After(deadline) {
			t.Fatal("warm-up connection never closed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// gnet calls OnClose, which counts the connection out, before it
	// closes the socket: wait until the count holds still for 200 ms, or
	// the baseline may include the warm-up's socket.
	n, same := s.fds(t), 0
	for same < 10 {
		if time.Now().After(deadline) {
			t.Fatal("the server's descriptor count never settled")
		}
		time.Sleep(20 * time.Millisecond)
		if m := s.fds(t); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

// waitFDs waits for the child's descriptors to come back to baseline.
func (s *fdServer) waitFDs(t testing.TB, baseline int) {
	t.Helper()
	deadline := time.Now().Add(fdWait)
	for {
		n := s.fds(t)
		if n == baseline {
			t.Logf("server descriptors back to %d; %+v", n, s.stats(t))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d descriptors, baseline %d; %+v", n, baseline, s.stats(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop closes the child's stdin, which shuts it down, and checks its exit.
func (s *fdServer) stop(t testing.TB) {
	t.Helper()
	s.in.Close()
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("server child: %v", err)
	}
}

// TestFDChild is the body of the child processes; run directly it skips.
func TestFDChild(t *testing.T) {
	switch {
	case os.Getenv(envFDServer) != "":
		runFDServer(t, os.Getenv(envFDServer))
	case os.Getenv(envFDClient) != "":
		runFDClient(t, os.Getenv(envFDClient))
	default:
		t.Skip("the body of the descriptor-limit tests' child processes")
	}
}

// capLimit returns n, or max when it is lower: Rlimit's fields are
// uint64 on Linux and int64 on the BSDs.
func capLimit[T int64 | uint64](n uint64, max T) T {
	if uint64(max) < n {
		return max
	}
	return T(n)
}

// runFDServer serves echo under the given RLIMIT_NOFILE until stdin
// closes, answering "stats" lines.
func runFDServer(t *testing.T, nofile string) {
	n, err := strconv.ParseUint(nofile, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = capLimit(n, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(echo{}, Config{Loops: 2, Logger: slogTo(os.Stderr)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("addr %s\n", srv.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "stats" {
			st := srv.Stats()
			fmt.Printf("stats %d %d %d\n", st.AcceptErrors, st.AcceptShed, st.Open)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), fdWait)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// dialFrom upgrades a connection to url from the local address local (any
// when nil) within timeout.
func dialFrom(local net.IP, url string, timeout time.Duration) (*ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	opts := &DialOptions{}
	if local != nil {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
		opts.NetDial = d.DialContext
	}
	return Dial(ctx, url, opts)
}

// echoOnce sends msg and expects it back.
func echoOnce(c *ClientConn, msg string) error {
	c.NetConn().SetDeadline(time.Now().Add(fdWait))
	defer c.NetConn().SetDeadline(time.Time{})
	if err := c.WriteMessage(codec.OpText, []byte(msg)); err != nil {
		return err
	}
	_, p, err := c.ReadMessage()
	if err != nil {
		return err
	}
	if !bytes.Equal(p, []byte(msg)) {
		return fmt.Errorf("echo %q, want %q", p, msg)
	}
	return nil
}

func closeAll(cs []*ClientConn) {
	for _, c := range cs {
		c.CloseNow()
	}
}
