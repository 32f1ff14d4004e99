package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// extraServer is a server from outside the suite, given with -extra as
// NAME=COMMAND ARGS…: an echo server on 127.0.0.1:{port}, any path, that
// accepts permessage-deflate when {compress} is 1. It runs beside the
// built-in servers, in the same rounds, in the scenarios a plain echo
// server can serve (see extraSkip).
type extraServer struct {
	Name    string   `json:"name"`
	Command string   `json:"command"` // as given, for the report
	Args    []string `json:"args"`    // Command split on white space
}

// extraFlags collects the repeatable -extra flag.
type extraFlags []extraServer

func (f *extraFlags) String() string {
	var s []string
	for _, e := range *f {
		s = append(s, e.Name+"="+e.Command)
	}
	return strings.Join(s, " ")
}

func (f *extraFlags) Set(v string) error {
	e, err := parseExtra(v)
	if err != nil {
		return err
	}
	for _, o := range *f {
		if o.Name == e.Name {
			return fmt.Errorf("-extra %s given twice", e.Name)
		}
	}
	*f = append(*f, e)
	return nil
}

// builtinImpls are benchserver's servers: an outside server may not take
// one of their names.
// defaultImpls is -impls' default: every built-in server.
const defaultImpls = "gale,gale-http,gale-nats3,gorilla,gws,nbio,gobwas"

var builtinImpls = []string{"gale", "gale-http", "gale-nats3", "gorilla", "gws", "nbio", "gobwas"}

var extraName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// parseExtra reads NAME=COMMAND ARGS…. The command is split on white
// space (no shell, no quoting) and must hold {port}; {compress} is
// optional.
func parseExtra(v string) (extraServer, error) {
	name, command, ok := strings.Cut(v, "=")
	name, command = strings.TrimSpace(name), strings.TrimSpace(command)
	switch {
	case !ok:
		return extraServer{}, fmt.Errorf("want NAME=COMMAND ARGS… {port} {compress}, got %q (no =)", v)
	case !extraName.MatchString(name):
		return extraServer{}, fmt.Errorf("server name %q: want letters, digits, '.', '_' or '-'", name)
	case slices.Contains(builtinImpls, name):
		return extraServer{}, fmt.Errorf("server name %q is a built-in server's", name)
	case command == "":
		return extraServer{}, fmt.Errorf("%s: no command", name)
	case !strings.Contains(command, "{port}"):
		return extraServer{}, fmt.Errorf("%s: the command must take the port as {port}: %q", name, command)
	}
	return extraServer{Name: name, Command: command, Args: strings.Fields(command)}, nil
}

// argv is the command line for one run: {port} and {compress} replaced.
func (e extraServer) argv(port int, compress bool) []string {
	c := "0"
	if compress {
		c = "1"
	}
	out := make([]string, len(e.Args))
	for i, a := range e.Args {
		a = strings.ReplaceAll(a, "{port}", strconv.Itoa(port))
		out[i] = strings.ReplaceAll(a, "{compress}", c)
	}
	return out
}

// missing says why the command cannot run here ("" when it can): its
// program is not found or not executable.
func (e extraServer) missing() string {
	if _, err := exec.LookPath(e.Args[0]); err != nil {
		return fmt.Sprintf("%s is not there (%v)", e.Args[0], unwrapPathError(err))
	}
	return ""
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

// extraServers are the run's outside servers by name: scenario.runs and
// the report consult them.
var extraServers = map[string]extraServer{}

func isExtra(impl string) bool {
	_, ok := extraServers[impl]
	return ok
}

// extraSkip says why an outside echo server cannot serve sc ("" when it
// can): what the suite asks of benchserver beyond echo and
// permessage-deflate.
func extraSkip(sc scenario) string {
	switch {
	case sc.Kind == kindBroadcast:
		return "the scenario needs a server that sends every message to every connection (benchserver -broadcast); an outside echo server only echoes"
	case sc.TLS:
		return "the scenario needs the run's certificate served over TLS; an outside server is run on plain ws://"
	}
	return ""
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// could take it before the server binds it; the server then fails to
// listen and the run says so.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// extraStartTimeout is how long an outside server may take to accept.
var extraStartTimeout = 10 * time.Second

// startExtra runs e on a free port and waits until the port accepts
// connections. The server runs in its own process group, so that stop
// reaches a wrapper's children too.
func startExtra(e extraServer, compress, verbose bool, perfOut string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv := e.argv(port, compress)
	if perfOut != "" {
		argv = append(perfArgs(perfOut), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 2 * time.Second
	s := &server{cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, group: true, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), perfFile: perfOut}
	cmd.Stdout, cmd.Stderr = s.stderr, s.stderr // its chatter, for the error
	if verbose {
		cmd.Stdout = io.MultiWriter(s.stderr, os.Stderr)
		cmd.Stderr = io.MultiWriter(s.stderr, os.Stderr)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", e.Name, err)
	}
	s.root = cmd.Process.Pid
	s.pid = s.root
	deadline := time.Now().Add(extraStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			s.perfStart = time.Now() // about when perf stat let it exec (see startServer)
			break
		}
		if !s.alive() {
			s.kill()
			return nil, fmt.Errorf("%s exited before listening on %s: %s", e.Name, s.addr, s.stderr)
		}
		if time.Now().After(deadline) {
			s.kill()
			return nil, fmt.Errorf("%s did not accept on %s within %v: %s", e.Name, s.addr, extraStartTimeout, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Under perf stat, the server is perf's child: perf's own work is not
	// the server's.
	if perfOut != "" {
		s.root = perfChild(procRoot, s.root)
	}
	// The load generator reads the CPU time and RSS of one process: the
	// one that listens, when the command is a wrapper (go run, a script).
	if pid := listenerPid(procRoot, s.root, port); pid > 0 {
		s.pid = pid
	}
	return s, nil
}

// listenerPid finds the process in root's tree that holds the socket
// listening on 127.0.0.1:port (0 when it cannot tell).
func listenerPid(proc string, root, port int) int {
	inodes := listenInodes(proc, root, port)
	if len(inodes) == 0 {
		return 0
	}
	for _, pid := range procTree(proc, root) {
		fds, _ := filepath.Glob(fmt.Sprintf("%s/%d/fd/*", proc, pid))
		for _, fd := range fds {
			l, err := os.Readlink(fd)
			if err != nil {
				continue
			}
			if in, ok := strings.CutPrefix(l, "socket:["); ok && inodes[strings.TrimSuffix(in, "]")] {
				return pid
			}
		}
	}
	return 0
}

// listenInodes reads the inodes of the TCP sockets listening on port from
// the network namespace of pid (/proc/PID/net/tcp and tcp6).
func listenInodes(proc string, pid, port int) map[string]bool {
	out := map[string]bool{}
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("%s/%d/net/%s", proc, pid, f))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) >= 10 && strings.HasSuffix(fs[1], want) && fs[3] == "0A" {
				out[fs[9]] = true
			}
		}
		fh.Close()
	}
	return out
}
