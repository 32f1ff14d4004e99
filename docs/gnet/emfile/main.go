// Command emfile drives a gnet echo engine into its descriptor limit and
// back: a child process serves with RLIMIT_NOFILE at 64, the parent dials
// 100 connections, counts those that echo, closes 40 of them and counts
// again. With gnet v2.10.0 the engine stops at the first accept past the
// limit; with ../accept-backoff.patch applied to a copy of gnet (go mod
// edit -replace) it waits and serves the rest as descriptors free up.
//
//	go run ./docs/gnet/emfile   # PORT=N to listen elsewhere than 20123
//
// MULTI=1 runs the engine multicore (a main reactor accepts), MULTI=1
// REUSE=1 with SO_REUSEPORT (each loop accepts).
package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
)

type echo struct{ gnet.BuiltinEventEngine }

func (*echo) OnBoot(gnet.Engine) gnet.Action { fmt.Println("ready"); return gnet.None }

func (*echo) OnTraffic(c gnet.Conn) gnet.Action {
	b, _ := c.Next(-1)
	c.Write(b)
	return gnet.None
}

func serve() {
	lim := syscall.Rlimit{Cur: 64, Max: 20000}
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	err := gnet.Run(&echo{}, "tcp://127.0.0.1:"+port(), gnet.WithMulticore(os.Getenv("MULTI") == "1"), gnet.WithReusePort(os.Getenv("REUSE") == "1"))
	fmt.Println("engine stopped:", err)
	os.Exit(3)
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "20123"
}

func try(c net.Conn, d time.Duration) bool {
	c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("x")); err != nil {
		return false
	}
	b := make([]byte, 1)
	_, err := c.Read(b)
	return err == nil && b[0] == 'x'
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		serve()
	}
	cmd := exec.Command(os.Args[0], "serve")
	cmd.Stderr = os.Stderr
	out, _ := cmd.StdoutPipe()
	cmd.Start()
	sc := bufio.NewScanner(out)
	sc.Scan()
	fmt.Println("server:", sc.Text())
	go func() {
		for sc.Scan() {
			fmt.Println("server:", sc.Text())
		}
	}()
	var conns []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", "127.0.0.1:"+port())
		if err != nil {
			fmt.Println("dial:", err)
			break
		}
		conns = append(conns, c)
	}
	alive := 0
	for _, c := range conns {
		if try(c, 300*time.Millisecond) {
			alive++
		}
	}
	fmt.Printf("100 dialled past a limit of 64 descriptors: %d echo\n", alive)
	// Free 40 of the served ones: the waiting ones should now be served.
	closed := 0
	for i, c := range conns {
		if closed < 40 && try(c, 100*time.Millisecond) {
			c.Close()
			conns[i] = nil
			closed++
		}
	}
	time.Sleep(1500 * time.Millisecond)
	alive = 0
	for _, c := range conns {
		if c != nil && try(c, 2*time.Second) {
			alive++
		}
	}
	fmt.Printf("after closing %d: %d of the other %d echo\n", closed, alive, 100-closed)
	cmd.Process.Kill()
	cmd.Wait()
}
