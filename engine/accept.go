package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// The accept path. gnet's own acceptor ends the engine on any accept error
// it does not expect, EMFILE included: one failed accept at the descriptor
// limit would drop every open connection and close the listener. So Gale
// owns the listening socket and accepts on one goroutine of its own, which
// backs off when descriptors or memory run out (as net/http's Serve does)
// and hands each accepted socket to the least busy gnet loop.

// Accept backoff: net/http's, 5 ms doubling to 1 s.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// acceptor owns the listener and the goroutine that accepts on it.
type acceptor struct {
	s    *Server
	ln   net.Listener
	gcli *gnet.Client  // the loops, run without a listener of their own
	quit chan struct{} // closed by stop: ends a backoff sleep at once
	done chan struct{} // closed when the accept goroutine has returned

	// reserve is a descriptor held so that the hand-over to a loop, which
	// needs a second descriptor for a moment (gnet dups the socket, then
	// closes the original), never finds the table full: it is released
	// just before and taken again at once after. When it cannot be taken
	// again the table is full, and the goroutine backs off before
	// accepting, leaving new connections in the kernel's backlog rather
	// than accepting them only to drop them. -1 when not held. Accept
	// goroutine only.
	reserve int

	failures atomic.Uint64 // Stats.AcceptErrors
	shed     atomic.Uint64 // Stats.AcceptShed

	// With Config.TLS (tls.go): a slot per handshake in flight, the
	// handshakes' goroutines, and their sockets (hsLive, under hsMu),
	// which stop cuts by expiring their deadlines; hsStopped once it has.
	hsSlots     chan struct{}
	hsWG        sync.WaitGroup
	hsMu        sync.Mutex
	hsLive      map[net.Conn]struct{}
	hsStopped   bool
	tlsFailures atomic.Uint64 // Stats.TLSHandshakeErrors
}

// Listen opens a listening socket for addr as Server.Start would: "host:port"
// or "tcp://host:port" (tcp4://, tcp6:// to pin the family), "unix:///path";
// with reusePort, SO_REUSEPORT is set on a TCP socket before the bind. It is
// for a program that opens its listeners itself and serves them with
// Server.StartListener, for example a supervisor that opens them once and
// hands them down to worker processes it may replace: the socket, and the
// connections waiting in its accept queue, outlive any one worker.
func Listen(addr string, reusePort bool) (net.Listener, error) {
	network, address := "tcp", addr
	if scheme, rest, ok := strings.Cut(addr, "://"); ok {
		network, address = scheme, rest
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	case "unix":
		// A socket file left by a process that died holding it would make
		// the bind fail; anything that is not a socket is left alone.
		if fi, err := os.Lstat(address); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(address)
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrBadAddress, addr)
	}
	lc := net.ListenConfig{
		Control: func(network, address string, rc syscall.RawConn) error {
			return listenerControl(network, address, rc, reusePort)
		},
		// gnet's listener set no keepalive, and the ping/idle timers are
		// the liveness check; Go's default would cost four setsockopts per
		// accepted socket.
		KeepAlive: -1,
	}
	ln, err := lc.Listen(context.Background(), network, address)
	if err != nil {
		return nil, fmt.Errorf("gale: listen %s: %w", addr, err)
	}
	return ln, nil
}

// listenerControl sets the listening socket's options before the bind.
func listenerControl(network, _ string, rc syscall.RawConn, reusePort bool) error {
	if !strings.HasPrefix(network, "tcp") {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		// A restarted server rebinds at once despite connections of its
		// predecessor still in TIME_WAIT.
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if serr == nil && reusePort {
			// Several sockets on one address, each with its own accept
			// queue: the kernel picks one per new connection.
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}
	})
	return errors.Join(err, serr)
}

func newAcceptor(s *Server, ln net.Listener, gcli *gnet.Client) *acceptor {
	a := &acceptor{
		s:       s,
		ln:      ln,
		gcli:    gcli,
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		reserve: -1,
	}
	if s.tlsCfg != nil {
		a.hsSlots = make(chan struct{}, s.cfg.TLSHandshakeWorkers)
		a.hsLive = make(map[net.Conn]struct{})
	}
	return a
}

// run accepts until the listener is closed.
func (a *acceptor) run() {
	defer close(a.done)
	defer a.dropReserve()
	var (
		wait     time.Duration // the current backoff; 0 outside an episode
		since    time.Time     // when the episode began
		failures int           // in this episode
	)
	for {
		nc, err := a.accept()
		if err == nil {
			err = a.handOver(nc)
		}
		if err == nil {
			if wait != 0 {
				a.s.cfg.Logger.Info("gale: accepting again",
					"addr", a.ln.Addr().String(), "failures", failures, "after", time.Since(since).Round(time.Millisecond))
				wait, failures = 0, 0
			}
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		// Every other error is waited out: a listener that fails for good
		// costs a retry a second, while giving up would cost every open
		// connection.
		a.failures.Add(1)
		failures++
		if wait == 0 {
			since = time.Now()
			a.s.cfg.Logger.Warn("gale: accept failing, backing off; open connections are kept",
				"addr", a.ln.Addr().String(), "err", err, "resource", isResourceErr(err))
			wait = acceptBackoffMin
		} else {
			wait = min(2*wait, acceptBackoffMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-a.quit:
			t.Stop()
			return
		}
	}
}

// accept takes the next connection, first making sure the reserve is held:
// without it, a connection accepted now could not be handed over.
func (a *acceptor) accept() (net.Conn, error) {
	if a.reserve < 0 {
		fd, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			select {
			case <-a.quit:
				return nil, net.ErrClosed
			default:
			}
			return nil, fmt.Errorf("gale: reserve descriptor: %w", err)
		}
		a.reserve = fd
	}
	return a.ln.Accept()
}

// handOver enrolls nc in a loop, where OnOpen takes it through the server
// path (its gnet context is nil, not a *dialing). gnet closes nc either way;
// on failure the peer sees the connection close at once.
func (a *acceptor) handOver(nc net.Conn) error {
	a.dropReserve()
	if a.hsSlots != nil {
		return a.handshake(nc) // tls.go: the hand-over follows the handshake
	}
	compactAddrs(nc)
	if _, err := a.gcli.EnrollContext(nc, nil); err != nil {
		a.shed.Add(1)
		return fmt.Errorf("gale: hand-over to a loop: %w", err)
	}
	return nil
}

func (a *acceptor) dropReserve() {
	if a.reserve >= 0 {
		unix.Close(a.reserve)
		a.reserve = -1
	}
}

// stop closes the listener, so new connections are refused, and waits for
// the accept goroutine: no hand-over is in flight once it returns.
func (a *acceptor) stop() {
	close(a.quit)
	a.ln.Close()
	<-a.done
	a.cutHandshakes() // TLS handshakes in flight fail at once
	a.hsWG.Wait()
}

// isResourceErr reports whether err is the kernel running out of
// descriptors or memory: the failures that pass when connections close.
func isResourceErr(err error) bool {
	return errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE) ||
		errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.ENOMEM)
}
