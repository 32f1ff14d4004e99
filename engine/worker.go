package engine

import (
	"fmt"
	"sync"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// The worker pool runs callbacks for handlers that block (Config.Workers).
// Each connection has a queue of events; a connection with work is handed to
// one worker at a time, which drains its queue in order, so per-connection
// order holds while different connections run in parallel.

type eventKind uint8

const (
	eventMessage eventKind = iota
	eventFrame
	eventControl
	eventClose
)

type event struct {
	kind eventKind
	op   codec.Opcode
	fin  bool
	data *[]byte // a pooled copy: the loop's bytes do not outlive the read
	err  error
}

type workQueue struct {
	mu      sync.Mutex
	events  []event
	running bool // handed to a worker that has not finished draining
}

// workerPool hands connections with work to the workers. Its ready list
// never blocks the loop that adds to it: a connection is on it at most once
// at a time (workQueue.running), so it is bounded by the open connections,
// however long the workers are busy.
type workerPool struct {
	srv *Server
	wg  sync.WaitGroup

	mu      sync.Mutex
	cond    sync.Cond
	ready   []*Conn // FIFO from head
	head    int
	stopped bool
}

func newWorkerPool(srv *Server, n int) *workerPool {
	wp := &workerPool{srv: srv}
	wp.cond.L = &wp.mu
	wp.wg.Add(n)
	for range n {
		go wp.run()
	}
	return wp
}

// push hands c to a worker. It never blocks.
func (wp *workerPool) push(c *Conn) {
	wp.mu.Lock()
	wp.ready = append(wp.ready, c)
	wp.mu.Unlock()
	wp.cond.Signal()
}

// pop waits for a connection with work; false once stopped and empty.
func (wp *workerPool) pop() (*Conn, bool) {
	wp.mu.Lock()
	defer wp.mu.Unlock()
	for wp.head == len(wp.ready) {
		if wp.stopped {
			return nil, false
		}
		wp.cond.Wait()
	}
	c := wp.ready[wp.head]
	wp.ready[wp.head] = nil
	wp.head++
	switch {
	case wp.head == len(wp.ready):
		wp.ready, wp.head = wp.ready[:0], 0
	case wp.head > 1024 && wp.head > len(wp.ready)/2:
		n := copy(wp.ready, wp.ready[wp.head:])
		clear(wp.ready[n:])
		wp.ready, wp.head = wp.ready[:n], 0
	}
	return c, true
}

// stop lets the workers finish what is queued and waits for them.
func (wp *workerPool) stop() {
	wp.mu.Lock()
	wp.stopped = true
	wp.mu.Unlock()
	wp.cond.Broadcast()
	wp.wg.Wait()
}

func (wp *workerPool) run() {
	defer wp.wg.Done()
	for {
		c, ok := wp.pop()
		if !ok {
			return
		}
		wp.drain(c)
	}
}

// drain runs c's events until its queue is empty.
func (wp *workerPool) drain(c *Conn) {
	q := c.ext.Load().work
	for {
		q.mu.Lock()
		if len(q.events) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		ev := q.events[0]
		q.events[0] = event{}
		q.events = q.events[1:]
		q.mu.Unlock()
		wp.call(c, ev)
	}
}

func (wp *workerPool) call(c *Conn, ev event) {
	srv := wp.srv
	if ev.kind == eventClose {
		callClose(srv, c, ev.err)
		return
	}
	var p []byte
	if ev.data != nil {
		p = *ev.data
		defer pool.Put(ev.data)
	}
	defer func() {
		if v := recover(); v != nil {
			srv.cfg.Logger.Error("gale: handler panicked", "panic", v, "remote", c.RemoteAddr())
			// The loop owns the socket: ask it, like any other goroutine.
			c.failFromWorker(fmt.Errorf("%w: %v", ErrHandlerPanic, v))
		}
	}()
	switch ev.kind {
	case eventMessage:
		srv.h.OnMessage(c, ev.op, p)
	case eventFrame:
		srv.frames.OnFrame(c, ev.op, ev.fin, p)
	case eventControl:
		if ev.op == codec.OpPing {
			srv.pings.OnPing(c, p)
		} else {
			srv.pongs.OnPong(c, p)
		}
	}
}

// toWorker queues an event with a copy of p. Loop only.
func (c *Conn) toWorker(kind eventKind, op codec.Opcode, fin bool, p []byte) {
	srv := c.loop.srv
	var data *[]byte
	if len(p) > 0 {
		data = pool.Get(len(p))
		copy(*data, p)
	}
	x := c.extra()
	if x.work == nil {
		x.work = &workQueue{}
	}
	q := x.work
	q.mu.Lock()
	if len(q.events) >= srv.cfg.WorkerQueue {
		q.mu.Unlock()
		if data != nil {
			pool.Put(data)
		}
		c.failWith(codec.StatusTryAgainLater, "", ErrWorkerQueueFull)
		return
	}
	q.events = append(q.events, event{kind: kind, op: op, fin: fin, data: data})
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		srv.workers.push(c)
	}
}

// closeToWorker queues OnClose behind the connection's other events.
func (c *Conn) closeToWorker(err error) {
	srv := c.loop.srv
	x := c.extra()
	if x.work == nil {
		x.work = &workQueue{}
	}
	q := x.work
	q.mu.Lock()
	q.events = append(q.events, event{kind: eventClose, err: err})
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		srv.workers.push(c)
	}
}

// failFromWorker closes the connection with 1011 from a worker goroutine.
func (c *Conn) failFromWorker(err error) {
	q := c.queue()
	q.wmu.Lock()
	if c.closed.Load() {
		q.wmu.Unlock()
		return
	}
	c.closed.Store(true)
	q.qclose = &closeRequest{code: codec.StatusInternalError, err: err}
	c.enqueueLocked(q)
}
