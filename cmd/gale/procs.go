package main

// gale serve -procs N: a supervisor process and N worker processes.
//
// One process may open only so many files (RLIMIT_NOFILE), and every
// connection is one, so a single process cannot hold more connections than
// its limit; several processes on one port can. The parent opens N
// listening sockets on the address, all with SO_REUSEPORT (the kernel
// spreads new connections over them by a hash of the connection's
// addresses), and starts one worker per socket: the same binary, re-run
// with GALE_WORKER set, inheriting its socket as descriptor 3 and a pipe to
// the parent as descriptor 4. The parent never accepts; it keeps the
// sockets open so that they, and the connections waiting in their accept
// queues, outlive any worker:
//
//   - A worker that dies is replaced on the same socket; connections that
//     arrive meanwhile wait in the queue (up to the listen backlog) instead
//     of being refused or reset.
//   - A reload (SIGHUP) starts a fresh set of workers on the same sockets,
//     then tells the old ones to drain. An old worker closes only its own
//     descriptor of the socket, so nothing queued is lost; closing a
//     socket of its own instead would reset every connection in that
//     socket's queue (unless net.ipv4.tcp_migrate_req is set).
//
// Signals to the parent: SIGINT or SIGTERM shut down gracefully (each
// worker sends 1001 to its connections and exits), SIGHUP reloads,
// SIGUSR1 prints the summed counters at once. A worker takes SIGTERM as a
// shutdown and SIGHUP as "drain": it stops accepting and closes its
// connections with 1012 spread over -drain, then exits.
//
// Counters: each worker writes its engine.Stats as one JSON line a second
// on its pipe (the first line says it is serving); the parent sums the
// latest line of every live worker and logs the sum every -stats.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// workerEnv marks a worker process; its value is the worker's slot.
const workerEnv = "GALE_WORKER"

// The descriptors a worker inherits (0–2 are stdin, stdout, stderr).
const (
	workerListenerFD = 3
	workerStatsFD    = 4
)

// Restart backoff: a worker that dies within restartReset of its start is
// restarted after a delay doubling from restartMin to restartMax; one that
// ran longer is restarted after restartMin.
const (
	restartMin   = 100 * time.Millisecond
	restartMax   = 10 * time.Second
	restartReset = 10 * time.Second
)

// readyTimeout bounds a new worker's start (exec to its first report).
const readyTimeout = 15 * time.Second

// workerReport is one line a worker writes on its pipe.
type workerReport struct {
	Pid          int                         `json:"pid"`
	Open         int64                       `json:"open"`
	Upgrades     uint64                      `json:"upgrades"`
	Rejected     uint64                      `json:"rejected"`
	MessagesIn   uint64                      `json:"messages_in"`
	MessagesOut  uint64                      `json:"messages_out"`
	AcceptErrors uint64                      `json:"accept_errors"`
	Closes       map[codec.StatusCode]uint64 `json:"closes,omitempty"`
}

func (r *workerReport) add(o workerReport) {
	r.Open += o.Open
	r.Upgrades += o.Upgrades
	r.Rejected += o.Rejected
	r.MessagesIn += o.MessagesIn
	r.MessagesOut += o.MessagesOut
	r.AcceptErrors += o.AcceptErrors
	for k, v := range o.Closes {
		if r.Closes == nil {
			r.Closes = map[codec.StatusCode]uint64{}
		}
		r.Closes[k] += v
	}
}

// String is the form the parent logs: key=value pairs.
func (r *workerReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "open=%d upgrades=%d rejected=%d messages_in=%d messages_out=%d accept_errors=%d",
		r.Open, r.Upgrades, r.Rejected, r.MessagesIn, r.MessagesOut, r.AcceptErrors)
	for _, k := range slices.Sorted(maps.Keys(r.Closes)) {
		fmt.Fprintf(&b, " closes_%d=%d", k, r.Closes[k])
	}
	return b.String()
}

func reportOf(st engine.Stats) workerReport {
	return workerReport{Pid: os.Getpid(), Open: st.Open, Upgrades: st.Upgrades, Rejected: st.Rejected,
		MessagesIn: st.MessagesIn, MessagesOut: st.MessagesOut, AcceptErrors: st.AcceptErrors, Closes: st.Closes}
}

// serveWorker is a worker process: it serves the inherited listener until
// the parent says stop (SIGTERM, SIGINT) or drain (SIGHUP), or its pipe to
// the parent breaks.
func serveWorker(sf *serveFlags, stderr io.Writer) int {
	raiseFileLimit() // every connection is a descriptor: take all the process may have
	lf := os.NewFile(workerListenerFD, "listener")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		fmt.Fprintln(stderr, "gale serve: worker: inherited listener:", err)
		return 1
	}
	pipe := os.NewFile(workerStatsFD, "stats")
	srv, err := sf.server(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "gale serve: worker:", err)
		return 2
	}
	sf.limitMemory()
	if err := srv.StartListener(ln); err != nil {
		fmt.Fprintln(stderr, "gale serve: worker:", err)
		return 1
	}
	enc := json.NewEncoder(pipe)
	report := func() error { r := reportOf(srv.Stats()); return enc.Encode(&r) }
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	stop := os.Signal(syscall.SIGTERM)
	if report() == nil { // the first report tells the parent the worker serves
		tick := time.NewTicker(time.Second)
	loop:
		for {
			select {
			case stop = <-sig:
				break loop
			case <-tick.C:
				if report() != nil {
					break loop // the parent is gone: nobody supervises this worker
				}
			}
		}
		tick.Stop()
	}
	var code int
	if stop == syscall.SIGHUP {
		ctx, cancel := context.WithTimeout(context.Background(), sf.drain+engine.DefaultCloseTimeout+5*time.Second)
		if err := srv.Drain(ctx, sf.drain); err != nil {
			fmt.Fprintln(stderr, "gale serve: worker: drain:", err)
			code = 1
		}
		cancel()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := srv.Shutdown(ctx); err != nil {
			fmt.Fprintln(stderr, "gale serve: worker: shutdown:", err)
			code = 1
		}
		cancel()
	}
	report() // the final counts, for the parent's last sum
	pipe.Close()
	return code
}

// worker is the parent's view of one worker process.
type worker struct {
	slot, gen int
	cmd       *exec.Cmd
	pid       int
	started   time.Time
	ready     chan struct{} // closed at the first report
	draining  bool          // told to drain (main loop only)

	mu   sync.Mutex
	last workerReport
	err  error // how it exited, once it has
}

func (w *worker) report() workerReport {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// supervisor is the parent process of gale serve -procs N.
type supervisor struct {
	sf     *serveFlags
	args   []string // the worker's command line after the executable
	self   string
	lns    []*net.TCPListener
	log    *slog.Logger
	stderr io.Writer

	gen     int
	current []*worker // by slot
	live    map[int]*worker
	backoff []time.Duration // by slot: the last restart delay
	exits   chan *worker
	ended   workerReport // the last counts of the workers that ended in a shutdown
}

// superviseServe runs the parent of gale serve -procs N.
func superviseServe(sf *serveFlags, args []string, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "gale serve:", err)
		return 1
	}
	sv := &supervisor{
		sf: sf, args: append([]string{"serve"}, args...), self: self, stderr: stderr,
		log:     slog.New(slog.NewTextHandler(stderr, nil)),
		current: make([]*worker, sf.procs), live: map[int]*worker{},
		backoff: make([]time.Duration, sf.procs), exits: make(chan *worker, 2*sf.procs),
	}
	addr := sf.addr
	for range sf.procs {
		ln, err := engine.Listen(addr, true)
		if err != nil {
			fmt.Fprintln(stderr, "gale serve:", err)
			sv.closeListeners()
			return 1
		}
		sv.lns = append(sv.lns, ln.(*net.TCPListener))
		addr = ln.Addr().String() // port 0: the others take the port the first one got
	}
	defer sv.closeListeners()
	for slot := range sf.procs {
		if _, err := sv.start(slot); err != nil {
			fmt.Fprintln(stderr, "gale serve:", err)
			sv.stopAll(syscall.SIGKILL)
			return 1
		}
	}
	for _, w := range sv.current {
		if !sv.waitReady(w) {
			fmt.Fprintf(stderr, "gale serve: worker %d (pid %d) did not start\n", w.slot, w.pid)
			sv.stopAll(syscall.SIGKILL)
			return 1
		}
	}
	fmt.Fprintf(stdout, "gale: echo server listening on %s (%d worker processes, supervisor pid %d)\n", addr, sf.procs, os.Getpid())
	return sv.run()
}

// sigSet are the signals the parent handles.
var sigSet = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1}

func (sv *supervisor) run() int {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, sigSet...)
	defer signal.Stop(sig)
	restart := make(chan *worker, sv.sf.procs) // the dead worker whose slot is due
	reloaded := make(chan []*worker, 1)        // a reload's new set, once all are ready (nil: failed)
	reloading := false
	var stats <-chan time.Time
	if sv.sf.statsEvery > 0 {
		t := time.NewTicker(sv.sf.statsEvery)
		defer t.Stop()
		stats = t.C
	}
	stopping, code := false, 0
	for {
		select {
		case s := <-sig:
			switch {
			case s == syscall.SIGUSR1:
				sv.logStats()
			case s == syscall.SIGHUP && !stopping:
				if reloading {
					sv.log.Warn("gale: reload already in progress; SIGHUP ignored")
					continue
				}
				reloading = true
				sv.gen++
				sv.log.Info("gale: reload: starting a new set of workers", "generation", sv.gen, "workers", sv.sf.procs)
				fresh := make([]*worker, 0, sv.sf.procs)
				for slot := range sv.sf.procs {
					w, err := sv.start(slot)
					if err != nil {
						sv.log.Error("gale: reload: cannot start a worker", "slot", slot, "err", err)
						break
					}
					fresh = append(fresh, w)
				}
				go func() {
					if len(fresh) < sv.sf.procs {
						reloaded <- append(fresh[:0:0], nil) // a set with a nil: failed
						return
					}
					for _, w := range fresh {
						if !sv.waitReady(w) {
							reloaded <- append(fresh[:0:0], nil) // a set with a nil: failed
							return
						}
					}
					reloaded <- fresh
				}()
			case s == os.Interrupt || s == syscall.SIGTERM:
				if stopping {
					continue
				}
				stopping = true
				sv.log.Info("gale: shutting down: every worker closes its connections with 1001", "workers", len(sv.live))
				sv.stopAll(syscall.SIGTERM)
				// A worker that outlives its own deadlines is killed.
				go func() {
					time.Sleep(sv.sf.drain + engine.DefaultCloseTimeout + 15*time.Second)
					sig <- syscall.SIGKILL
				}()
			case s == syscall.SIGKILL:
				sv.log.Warn("gale: workers still running past the shutdown deadline: killed", "workers", len(sv.live))
				sv.stopAll(syscall.SIGKILL)
			}
		case fresh := <-reloaded:
			reloading = false
			if slices.Contains(fresh, nil) {
				sv.log.Error("gale: reload failed: a new worker did not start; the old workers keep serving")
				for _, w := range sv.live {
					if w.gen == sv.gen {
						w.cmd.Process.Signal(syscall.SIGTERM)
					}
				}
				continue
			}
			for slot, w := range fresh {
				if old := sv.current[slot]; old != nil && old != w {
					old.draining = true
					old.cmd.Process.Signal(syscall.SIGHUP)
				}
				sv.current[slot] = w
			}
			sv.log.Info("gale: reload: new workers serving; the old ones close their connections with 1012", "generation", sv.gen, "drain", sv.sf.drain)
		case w := <-sv.exits:
			delete(sv.live, w.pid)
			if stopping {
				sv.ended.add(w.report())
				if w.err != nil {
					code = 1
					sv.log.Warn("gale: worker ended", "slot", w.slot, "pid", w.pid, "status", w.err)
				}
				if len(sv.live) == 0 {
					sv.log.Info("gale: all workers ended", "counters", sv.ended.String())
					return code
				}
				continue
			}
			if sv.current[w.slot] != w {
				// Drained after a reload, or a new worker of a failed reload.
				sv.log.Info("gale: old worker exited", "slot", w.slot, "pid", w.pid, "status", exitStatus(w.err), "generation", w.gen)
				continue
			}
			sv.current[w.slot] = nil
			d := restartMin
			if time.Since(w.started) < restartReset && sv.backoff[w.slot] > 0 {
				d = min(2*sv.backoff[w.slot], restartMax)
			}
			sv.backoff[w.slot] = d
			sv.log.Warn("gale: worker died; restarting it", "slot", w.slot, "pid", w.pid, "status", exitStatus(w.err), "after", d)
			time.AfterFunc(d, func() { restart <- w })
		case w := <-restart:
			if stopping || sv.current[w.slot] != nil { // replaced meanwhile (a reload)
				continue
			}
			nw, err := sv.start(w.slot)
			if err != nil {
				sv.log.Error("gale: cannot restart worker", "slot", w.slot, "err", err)
				sv.backoff[w.slot] = min(2*sv.backoff[w.slot], restartMax)
				d := sv.backoff[w.slot]
				time.AfterFunc(d, func() { restart <- w })
				continue
			}
			sv.current[w.slot] = nw
			sv.log.Info("gale: worker restarted", "slot", w.slot, "pid", nw.pid)
		case <-stats:
			sv.logStats()
		}
	}
}

// start runs a worker for slot on its listener.
func (sv *supervisor) start(slot int) (*worker, error) {
	lf, err := sv.lns[slot].File() // a duplicate for the child; this process keeps its own
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer pw.Close()
	cmd := exec.Command(sv.self, sv.args...)
	cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(slot))
	if os.Getenv("GOMAXPROCS") == "" {
		// The workers share the machine's CPUs: more Ps than a worker's
		// share only add threads, wake-ups and context switches, which
		// with dozens of workers on a few cores cost more than they give.
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/sv.sf.procs)))
	}
	cmd.ExtraFiles = []*os.File{lf, pw} // descriptors 3 and 4
	cmd.Stdout, cmd.Stderr = sv.stderr, sv.stderr
	// A worker whose parent dies is told to shut down, so none is left
	// serving unsupervised.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		r.Close()
		return nil, fmt.Errorf("worker %d: %w", slot, err)
	}
	w := &worker{slot: slot, gen: sv.gen, cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), ready: make(chan struct{})}
	sv.live[w.pid] = w
	if sv.current[slot] == nil {
		sv.current[slot] = w
	}
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		first := true
		for sc.Scan() {
			var rep workerReport
			if json.Unmarshal(sc.Bytes(), &rep) != nil {
				continue
			}
			w.mu.Lock()
			w.last = rep
			w.mu.Unlock()
			if first {
				close(w.ready)
				first = false
			}
		}
		err := cmd.Wait()
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		sv.exits <- w
	}()
	return w, nil
}

// waitReady waits for w's first report.
func (sv *supervisor) waitReady(w *worker) bool {
	select {
	case <-w.ready:
		return true
	case <-time.After(readyTimeout):
		return false
	}
}

// stopAll signals every live worker.
func (sv *supervisor) stopAll(s os.Signal) {
	for _, w := range sv.live {
		w.cmd.Process.Signal(s)
	}
}

func (sv *supervisor) closeListeners() {
	for _, ln := range sv.lns {
		ln.Close()
	}
}

// logStats logs the counters summed over the live workers (those draining
// included) with the last counts of those gone since the previous sum.
func (sv *supervisor) logStats() {
	var sum workerReport
	serving, draining := 0, 0
	for _, w := range sv.live {
		sum.add(w.report())
		if w.draining {
			draining++
		} else {
			serving++
		}
	}
	sv.log.Info("gale: stats", "workers", serving, "draining", draining, "counters", sum.String())
}

// exitStatus describes how a worker ended.
func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}
