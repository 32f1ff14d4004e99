package main

import (
	"bytes"
	"context"
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
}

// ring is how many send times are kept: far more than can be in flight.
const ring = 1 << 12

func (b *broadcastLoad) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	if op != codec.OpBinary || len(p) != len(b.payload) || !bytes.Equal(p[8:], b.payload[8:]) {
		b.errors.Add(1)
		return
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

func benchBroadcast(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench broadcast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs, 1000, 10*time.Second)
	size := fs.Int("size", 1024, "message size in bytes (≥ 8)")
	depth := fs.Int("depth", 1, "broadcasts in flight: the sender sends the next one when all but depth-1 have reached every connection")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before the measurement")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *size < 8 || c.conns < 1 {
		fmt.Fprintln(stderr, "gale bench broadcast: need -size ≥ 8 and -conns ≥ 1")
		return 2
	}
	load := &broadcastLoad{
		conns: c.conns, depth: max(*depth, 1), payload: benchPayloads(*size, 1)[0],
		sentAt: make([]atomic.Int64, ring), wake: make(chan struct{}, 1),
	}
	cl, err := engine.NewClient(load, engine.Config{Loops: c.loops, MaxMessageSize: int64(*size) + 1<<20})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	var failed atomic.Uint64
	conns := dialAll(context.Background(), cl, &c, c.conns, 0, &failed)
	var sender *engine.Conn
	for _, conn := range conns {
		if conn != nil {
			sender = conn
			break
		}
	}
	if sender == nil {
		fmt.Fprintln(stderr, "gale bench: no connection")
		return 1
	}
	// Count only the connections that are open: a failed dial must not
	// stall the sender.
	load.conns = c.conns - int(failed.Load())
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { load.sendLoop(sender, stop); close(done) }()
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
		Mode: "broadcast", URL: c.url, Conns: c.conns, Size: *size, Depth: load.depth,
		DurationS: elapsed, Msgs: msgs, MsgsPerS: float64(msgs) / elapsed,
		MBPerS:     float64(msgs) * float64(*size) / elapsed / 1e6,
		Broadcasts: load.seq.Load() - seq0,
		P50us:      us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(load.hist.max.Load())),
		Errors: load.errors.Load() + failed.Load(),
	}
	r.window(c.pid, s0, s1, msgs)
	return report(stdout, stderr, &r, c.json)
}
