package engine

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var fdScale = flag.Bool("fdscale", false, "run the full-scale descriptor-limit test (a 20,000-descriptor server, 20,100 connections)")

// TestAcceptDescriptorLimitFullScale is TestAcceptDescriptorLimit at the
// scale of a production box: a server limited to 20,000 descriptors holds
// 19,500 idle connections and 600 more are attempted (the first few
// hundred fit; the rest wait in the backlog). All 19,500 must still echo,
// and every extra one must be served once 300 held ones close. The clients
// are spread over child processes (each may open 20,000 files) and source
// addresses 127.0.0.2… so that neither descriptors nor ports run out on
// the client side.
func TestAcceptDescriptorLimitFullScale(t *testing.T) {
	if !*fdScale {
		t.Skip("full-scale descriptor-limit test: 20,100 connections for minutes; run with -fdscale")
	}
	const (
		held   = 19500
		extras = 600
		procs  = 4
		freed  = 300
	)
	srv := startFDServer(t, 20000)
	url := "ws://" + srv.addr + "/"
	baseline := srv.settledFDs(t)
	t.Logf("server descriptors at baseline: %d", baseline)

	clients := make([]*fdClient, procs)
	for i := range clients {
		clients[i] = startFDClient(t, fmt.Sprintf("127.0.0.%d", i+2), url)
	}
	all := func(cmd string) []string {
		out := make([]string, len(clients))
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() { out[i] = c.ask(t, cmd) })
		}
		wg.Wait()
		return out
	}
	sum := func(lines []string, format string) (ok, failed int) {
		for _, l := range lines {
			var a, b int
			if _, err := fmt.Sscanf(l, format, &a, &b); err != nil {
				t.Fatalf("client said %q: %v", l, err)
			}
			ok, failed = ok+a, failed+b
		}
		return ok, failed
	}

	start := time.Now()
	ok, failed := sum(all(fmt.Sprintf("hold %d", held/procs)), "held %d %d")
	ramp := time.Since(start)
	t.Logf("ramp: %d connections held (%d failed) in %v; server: %d descriptors, %+v", ok, failed, ramp.Round(time.Millisecond), srv.fds(t), srv.stats(t))
	if ok != held || failed != 0 {
		t.Fatalf("held %d of %d", ok, held)
	}

	all(fmt.Sprintf("extra %d", extras/procs))
	deadline := time.Now().Add(fdWait)
	for srv.stats(t).acceptErrors < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no accept failed with %d connections attempted: %+v", held+extras, srv.stats(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := srv.stats(t)
	early, _ := sum(all("extras"), "extras %d %d")
	t.Logf("at the limit: %d of %d extras served, server: %d descriptors, %+v", early, extras, srv.fds(t), st)
	if st.shed != 0 {
		t.Fatalf("connections shed at the limit: %+v", st)
	}
	if ok, failed := sum(all("echo"), "echo %d %d"); failed != 0 || ok < held {
		t.Fatalf("at the limit %d connections echoed, %d failed", ok, failed)
	}

	all(fmt.Sprintf("close %d", freed/procs))
	start = time.Now()
	served, failed := sum(all("wait"), "extras %d %d")
	t.Logf("after closing %d: %d of %d extras served (%d failed) in %v; %+v", freed, served, extras, failed, time.Since(start).Round(time.Millisecond), srv.stats(t))
	if served != extras {
		t.Fatalf("%d of %d extras served", served, extras)
	}
	if ok, failed := sum(all("echo"), "echo %d %d"); failed != 0 || ok != held-freed+extras {
		t.Fatalf("after the limit %d connections echoed, %d failed", ok, failed)
	}
	for _, c := range clients {
		c.stop(t)
	}
	srv.waitFDs(t, baseline)
	srv.stop(t)
}

// fdClient is a client child process holding connections.
type fdClient struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
	mu  sync.Mutex
}

func startFDClient(t testing.TB, local, url string) *fdClient {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDChild$")
	cmd.Env = append(os.Environ(), envFDClient+"="+local+" "+url)
	cmd.Stderr = os.Stderr
	c := &fdClient{cmd: cmd}
	var err error
	if c.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return c
}

// ask sends one command line and returns the answer. Safe from any
// goroutine; not from several at once per client.
func (c *fdClient) ask(t testing.TB, cmd string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		t.Errorf("client child: %v", err)
		return ""
	}
	if !c.out.Scan() {
		t.Errorf("client child gone: %v", c.out.Err())
		return ""
	}
	return c.out.Text()
}

func (c *fdClient) stop(t testing.TB) {
	c.in.Close()
	if err := c.cmd.Wait(); err != nil {
		t.Errorf("client child: %v", err)
	}
}

// runFDClient holds connections to a server from one source address,
// driven by stdin lines: "hold N" dials N and answers "held ok failed";
// "extra N" starts N dials in the background; "extras" answers how many
// of those are done ("extras ok failed"), "wait" the same once all are;
// "echo" echoes once on every connection ("echo ok failed"); "close N"
// closes N of the first held. EOF closes everything.
func runFDClient(t *testing.T, arg string) {
	localStr, url, _ := strings.Cut(arg, " ")
	local := net.ParseIP(localStr)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	var (
		mu      sync.Mutex
		conns   []*ClientConn
		pending sync.WaitGroup
		exOK    int
		exFail  int
	)
	defer func() { closeAll(conns) }()
	dialN := func(n int, add func(*ClientConn, error)) {
		work := make(chan struct{}, n)
		for range n {
			work <- struct{}{}
		}
		close(work)
		var wg sync.WaitGroup
		for range min(n, 32) {
			wg.Go(func() {
				for range work {
					add(dialFrom(local, url, fdWait))
				}
			})
		}
		wg.Wait()
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n int
		cmd, _, _ := strings.Cut(in.Text(), " ")
		fmt.Sscanf(in.Text(), cmd+" %d", &n)
		switch cmd {
		case "hold":
			ok, failed := 0, 0
			dialN(n, func(c *ClientConn, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failed++
					fmt.Fprintln(os.Stderr, "hold:", err)
					return
				}
				ok++
				conns = append(conns, c)
			})
			fmt.Printf("held %d %d\n", ok, failed)
		case "extra":
			pending.Go(func() {
				dialN(n, func(c *ClientConn, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						exFail++
						fmt.Fprintln(os.Stderr, "extra:", err)
						return
					}
					exOK++
					conns = append(conns, c)
				})
			})
			fmt.Println("started")
		case "extras", "wait":
			if cmd == "wait" {
				pending.Wait()
			}
			mu.Lock()
			fmt.Printf("extras %d %d\n", exOK, exFail)
			mu.Unlock()
		case "echo":
			mu.Lock()
			cs := conns[:len(conns):len(conns)]
			mu.Unlock()
			ok, failed := 0, 0
			for i, c := range cs {
				if err := echoOnce(c, fmt.Sprintf("conn %d", i)); err != nil {
					failed++
					fmt.Fprintln(os.Stderr, "echo:", err)
					continue
				}
				ok++
			}
			fmt.Printf("echo %d %d\n", ok, failed)
		case "close":
			mu.Lock()
			closeAll(conns[:n])
			conns = conns[n:]
			mu.Unlock()
			fmt.Println("closed")
		}
	}
	pending.Wait()
}
