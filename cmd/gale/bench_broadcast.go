package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// broadcastLoad is the broadcast mode: one connection (the sender) sends
// messages, the server sends each to every connection, the sender
// included; each connection verifies what it receives and records the
// latency from the send. A message carries its sequence number in its first
// 8 bytes.
type broadcastLoad struct {
	engine.BaseHandler
	conns   int
	depth   int
	payload []byte // bytes 8… of every message
	sentAt  []atomic.Int64
	phase   atomic.Int32 // 0 warm-up, 1 measuring, 2 stopping
	seq     atomic.Uint64
	got     atomic.Uint64 // deliveries since the start
	msgs    atomic.Uint64 // deliveries in the window
	errors  atomic.Uint64
	wake    chan struct{}
	hist    histogram

	// sender is the connection that sends; relayed counts the deliveries
	// to the others, echoed those back to the sender: a server that only
	// echoes relays nothing.
	sender  atomic.Pointer[engine.Conn]
	relayed atomic.Uint64
	echoed  atomic.Uint64
}

// relayWindow is how long the first relayed delivery may take before the
// server is taken for one that does not broadcast.
const relayWindow = 2 * time.Second

// ring is how many send times are kept: far more than can be in flight.
const ring = 1 << 12

func (b *broadcastLoad) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	if op != codec.OpBinary || len(p) != len(b.payload) || !bytes.Equal(p[8:], b.payload[8:]) {
		b.errors.Add(1)
		return
	}
	if c == b.sender.Load() {
		b.echoed.Add(1)
	} else {
		b.relayed.Add(1)
	}
	seq := binary.BigEndian.Uint64(p)
	lat := time.Duration(time.Now().UnixNano() - b.sentAt[seq%ring].Load())
	if b.phase.Load() == 1 {
		b.msgs.Add(1)
		b.hist.add(lat)
	}
	// Each time another conns deliveries have arrived, one more broadcast
	// may go out.
	if b.got.Add(1)%uint64(b.conns) == 0 {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

func (b *broadcastLoad) OnClose(c *engine.Conn, err error) {
	if b.phase.Load() < 2 {
		b.errors.Add(1)
	}
}

// sendLoop keeps depth broadcasts in flight: it sends the next one when the
// deliveries cover all but depth-1 of the messages sent (a lost delivery
// stalls it for at most a second).
func (b *broadcastLoad) sendLoop(sender *engine.Conn, stop <-chan struct{}) {
	msg := bytes.Clone(b.payload)
	for {
		n := b.seq.Load()
		if b.got.Load()+uint64(b.depth)*uint64(b.conns) >= (n+1)*uint64(b.conns) {
			binary.BigEndian.PutUint64(msg, n)
			b.sentAt[n%ring].Store(time.Now().UnixNano())
			b.seq.Add(1)
			if err := sender.WriteMessage(codec.OpBinary, msg); err != nil {
				b.errors.Add(1)
				return
			}
			continue
		}
		select {
		case <-stop:
			return
		case <-b.wake:
		case <-time.After(time.Second):
			b.got.Add(uint64(b.conns)) // give up on the missing ones
		}
	}
}

const broadcastHelp = `One connection sends binary messages; the server must send each message it
receives to every connection, the sender included. A server that does not
(an echo server) is reported as an error when no other connection has received
a message within 2s. Reports deliveries/s (a message received by one
connection) and the latency from the send.
`

// awaitRelay waits until a connection other than the sender has received a
// message, for at most d, and reports whether one has.
func (b *broadcastLoad) awaitRelay(d time.Duration) bool {
	for deadline := time.Now().Add(d); b.relayed.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

func benchBroadcast(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench broadcast", flag.ContinueOnError)
	var c common
	c.register(fs, 1000, 10*time.Second)
	sizeFlag := byteSize(1024)
	fs.Var(&sizeFlag, "size", "message `size` (8 bytes to 1GiB: the first 8 carry a sequence number)")
	depth := fs.Int("depth", 1, "broadcasts in flight, 1 to 1024: the sender sends the next one when all but depth-1 have reached every connection")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before the measurement (0: none)")
	if status, done := parseMode(fs, &c, broadcastHelp, args, stdout, stderr); done {
		return status
	}
	size := int(sizeFlag)
	switch {
	case c.conns < 2:
		return flagError(stderr, fs, "-conns %d: need at least 2 (one sends, the others receive)", c.conns)
	case sizeFlag < 8 || sizeFlag > maxBenchSize:
		return flagError(stderr, fs, "-size %s: need 8 bytes to 1GiB", &sizeFlag)
	case *depth < 1 || *depth > ring/4:
		return flagError(stderr, fs, "-depth %d: need 1 to %d", *depth, ring/4)
	case *warmup < 0:
		return flagError(stderr, fs, "-warmup %v is negative", *warmup)
	}
	load := &broadcastLoad{
		conns: c.conns, depth: *depth, payload: benchPayloads(size, 1)[0],
		sentAt: make([]atomic.Int64, ring), wake: make(chan struct{}, 1),
	}
	cl, err := engine.NewClient(load, engine.Config{Loops: c.loops, MaxMessageSize: int64(size) + 1<<20})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var failed atomic.Uint64
	conns, err := dialAll(stderr, cl, &c, c.conns, 0, &failed)
	if err != nil {
		closeClient(cl)
		return cannotConnect(stderr, &c, err)
	}
	sender := conns[0] // dialAll fails unless the first dial succeeds
	// Count only the connections that are open: a failed dial must not
	// stall the sender.
	load.conns = c.conns - int(failed.Load())
	if load.conns < 2 {
		closeClient(cl)
		fmt.Fprintf(stderr, "gale bench: only the sender's connection opened: nothing to broadcast to\n")
		return 1
	}
	load.sender.Store(sender)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { load.sendLoop(sender, stop); close(done) }()
	if !load.awaitRelay(relayWindow) {
		close(stop)
		<-done
		load.phase.Store(2)
		closeClient(cl)
		fmt.Fprintf(stderr, "gale bench: the server at %s does not broadcast: in %v none of the other %d connections received a message (the sender got %d of its %d back)\n",
			c.url, relayWindow, load.conns-1, load.echoed.Load(), load.seq.Load())
		return 1
	}
	var seq0 uint64
	elapsed, s0, s1 := measure(stderr, &c, *warmup, &load.phase, &load.msgs, "deliveries", func() {
		load.hist.reset()
		seq0 = load.seq.Load()
	})
	close(stop)
	<-done
	msgs := load.msgs.Load()
	closeClient(cl)

	pct := load.hist.percentiles(0.5, 0.9, 0.99)
	r := benchResult{
		Mode: "broadcast", URL: c.url, Conns: c.conns, Size: size, Depth: load.depth,
		DurationS: elapsed, Msgs: msgs, MsgsPerS: float64(msgs) / elapsed,
		MBPerS:     float64(msgs) * float64(size) / elapsed / 1e6,
		Broadcasts: load.seq.Load() - seq0,
		P50us:      us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(load.hist.max.Load())),
		Errors: load.errors.Load() + failed.Load(),
	}
	r.window(c.pid, s0, s1, msgs)
	return report(stdout, stderr, &r, c.json)
}
