package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// publishLoad is the publish mode: connections spread over one or more
// servers (nodes) all subscribe to one topic (the URL's path, for gale
// serve -topics) and some of them publish; every connection must receive
// every message once, and each publisher's in the order sent. A message
// carries its publisher (4 bytes), its sequence number (8) and its send
// time (8, Unix nanoseconds), so the latency is publish to delivery across
// nodes, on this machine's clock.
type publishLoad struct {
	engine.BaseHandler
	pubs    int
	subs    int // connections open, each a subscriber
	depth   int
	payload []byte // bytes publishHeader… of every message

	phase  atomic.Int32 // 0 warm-up, 1 measuring, 2 stopping
	sent   []atomic.Uint64
	acks   [][]atomic.Int64 // per publisher, per sequence number mod ring: deliveries
	wake   []chan struct{}
	got    atomic.Uint64 // deliveries since the start
	msgs   atomic.Uint64 // deliveries in the window
	dups   atomic.Uint64 // a message received again, or before one received already
	errors atomic.Uint64 // altered messages, unexpected closes
	hist   histogram
}

// subState is what one subscriber received: per publisher, the sequence
// number it expects next. Written by the connection's loop only.
type subState struct{ next []uint64 }

// publishHeader is the publisher, sequence number and send time.
const publishHeader = 20

func (l *publishLoad) OnOpen(c *engine.Conn) {
	c.SetUserData(&subState{next: make([]uint64, l.pubs)})
}

func (l *publishLoad) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	if len(p) != len(l.payload) || !bytes.Equal(p[publishHeader:], l.payload[publishHeader:]) {
		l.errors.Add(1)
		return
	}
	pub := int(binary.BigEndian.Uint32(p))
	seq := binary.BigEndian.Uint64(p[4:])
	if pub >= l.pubs {
		l.errors.Add(1)
		return
	}
	st := c.UserData().(*subState)
	if seq < st.next[pub] {
		l.dups.Add(1)
		return
	}
	st.next[pub] = seq + 1 // a gap is counted as lost at the end
	lat := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(p[12:])))
	if l.phase.Load() == 1 {
		l.msgs.Add(1)
		l.hist.add(lat)
	}
	l.got.Add(1)
	if l.acks[pub][seq%ring].Add(1) == int64(l.subs) {
		select {
		case l.wake[pub] <- struct{}{}:
		default:
		}
	}
}

func (l *publishLoad) OnClose(c *engine.Conn, err error) {
	if l.phase.Load() < 2 {
		l.errors.Add(1)
	}
}

// publish keeps depth messages of publisher pub in flight: it sends the
// next when the one depth before has reached every subscriber (a lost
// delivery stalls it for at most a second).
func (l *publishLoad) publish(pub int, conn *engine.Conn, stop <-chan struct{}) {
	msg := bytes.Clone(l.payload)
	binary.BigEndian.PutUint32(msg, uint32(pub))
	acks := l.acks[pub]
	for n := uint64(0); ; {
		if n < uint64(l.depth) || acks[(n-uint64(l.depth))%ring].Load() >= int64(l.subs) {
			acks[n%ring].Store(0)
			binary.BigEndian.PutUint64(msg[4:], n)
			binary.BigEndian.PutUint64(msg[12:], uint64(time.Now().UnixNano()))
			if err := conn.WriteMessage(codec.OpBinary, msg); err != nil {
				l.errors.Add(1)
				return
			}
			n++
			l.sent[pub].Store(n)
			continue
		}
		select {
		case <-stop:
			return
		case <-l.wake[pub]:
		case <-time.After(time.Second):
			acks[(n-uint64(l.depth))%ring].Store(int64(l.subs)) // give up on the missing ones
		}
	}
}

// lost counts the deliveries of the messages sent that never arrived.
func (l *publishLoad) lost() uint64 {
	var sent uint64
	for p := range l.sent {
		sent += l.sent[p].Load()
	}
	if want, got := sent*uint64(l.subs), l.got.Load(); want > got {
		return want - got
	}
	return 0
}

const publishHelp = `Connections spread over the servers given by -url (a comma-separated list:
the nodes of one cluster) all receive every message; -publishers of them,
spread over the nodes, send binary messages. The servers must send each
message to every connection, the sender included: gale serve -topics (with
-nats for several nodes), or a broadcast server. Checks that every connection
receives every message exactly once and reports duplicates and losses as
errors; reports deliveries/s (a message received by one connection) and the
latency from the send to each delivery.
`

func benchPublish(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("bench publish", flag.ContinueOnError)
	var c common
	c.multiURL = true
	c.register(fs, 1000, 10*time.Second)
	sizeFlag := byteSize(1024)
	fs.Var(&sizeFlag, "size", "message `size` (20 bytes to 1GiB: the first 20 carry the publisher, a sequence number and the send time)")
	pubs := fs.Int("publishers", 0, "connections that publish, spread over the nodes (0: one per -url)")
	depth := fs.Int("depth", 1, "messages in flight per publisher, 1 to 1024: a publisher sends the next when all but depth-1 of its messages have reached every connection")
	warmup := fs.Duration("warmup", time.Second, "unmeasured time before the measurement (0: none)")
	settle := fs.Duration("settle", 500*time.Millisecond, "wait this long after the connections open, for the subscriptions to reach every node")
	if status, done := parseMode(fs, &c, publishHelp, args, stdout, stderr); done {
		return status
	}
	urls := strings.Split(c.url, ",")
	if *pubs == 0 {
		*pubs = len(urls)
	}
	size := int(sizeFlag)
	switch {
	case sizeFlag < publishHeader || sizeFlag > maxBenchSize:
		return flagError(stderr, fs, "-size %s: need %d bytes to 1GiB", &sizeFlag, publishHeader)
	case *depth < 1 || *depth > ring/4:
		return flagError(stderr, fs, "-depth %d: need 1 to %d", *depth, ring/4)
	case *pubs < 1 || *pubs > c.conns:
		return flagError(stderr, fs, "-publishers %d: need 1 to -conns (%d)", *pubs, c.conns)
	case *warmup < 0 || *settle < 0:
		return flagError(stderr, fs, "-warmup and -settle must not be negative")
	}
	load := &publishLoad{
		pubs: *pubs, depth: *depth, payload: benchPayloads(size, 1)[0],
		sent: make([]atomic.Uint64, *pubs), acks: make([][]atomic.Int64, *pubs), wake: make([]chan struct{}, *pubs),
	}
	for p := range *pubs {
		load.acks[p] = make([]atomic.Int64, ring)
		load.wake[p] = make(chan struct{}, 1)
	}
	cl, err := engine.NewClient(load, engine.Config{Loops: c.loops, MaxMessageSize: int64(size) + 1<<20})
	if err != nil {
		fmt.Fprintln(stderr, "gale bench:", err)
		return 2
	}
	// The connections, node by node; each node's get consecutive source
	// addresses.
	var failed atomic.Uint64
	byNode := make([][]*engine.Conn, len(urls))
	offset := 0
	for k, u := range urls {
		n := c.conns / len(urls)
		if k < c.conns%len(urls) {
			n++
		}
		cc := c
		cc.url = u
		conns, err := dialAll(stderr, cl, &cc, n, offset, &failed)
		if err != nil {
			closeClient(cl)
			return cannotConnect(stderr, &cc, err)
		}
		offset += n
		byNode[k] = conns
	}
	load.subs = c.conns - int(failed.Load())
	publishers := make([]*engine.Conn, 0, *pubs)
	for i := 0; len(publishers) < *pubs && i < c.conns; i++ {
		node := byNode[i%len(urls)]
		if j := i / len(urls); j < len(node) && node[j] != nil {
			publishers = append(publishers, node[j])
		}
	}
	if len(publishers) < *pubs {
		closeClient(cl)
		fmt.Fprintln(stderr, "gale bench: too few connections opened for the publishers")
		return 1
	}
	time.Sleep(*settle)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p, conn := range publishers {
		wg.Go(func() { load.publish(p, conn, stop) })
	}
	var sent0 uint64
	sum := func() (n uint64) {
		for p := range load.sent {
			n += load.sent[p].Load()
		}
		return n
	}
	elapsed, s0, s1 := measure(stderr, &c, *warmup, &load.phase, &load.msgs, "deliveries", func() {
		load.hist.reset()
		sent0 = sum()
	})
	close(stop)
	wg.Wait()
	sent1 := sum()
	msgs := load.msgs.Load()
	// What is in flight arrives (or is lost) before the count.
	for last, idle := load.got.Load(), 0; load.got.Load() < sent1*uint64(load.subs) && idle < 20; idle++ {
		time.Sleep(50 * time.Millisecond)
		if n := load.got.Load(); n != last {
			last, idle = n, 0
		}
	}
	lost, dups := load.lost(), load.dups.Load()
	closeClient(cl)
	if lost > 0 || dups > 0 {
		fmt.Fprintf(stderr, "gale bench: %d deliveries lost, %d duplicated (of %d messages to %d connections)\n", lost, dups, sent1, load.subs)
	}

	pct := load.hist.percentiles(0.5, 0.9, 0.99)
	r := benchResult{
		Mode: "publish", URL: c.url, Conns: c.conns, Size: size, Depth: load.depth,
		Publishers: *pubs, Nodes: len(urls), Duplicates: dups, Lost: lost,
		DurationS: elapsed, Msgs: msgs, MsgsPerS: float64(msgs) / elapsed,
		MBPerS:     float64(msgs) * float64(size) / elapsed / 1e6,
		Broadcasts: sent1 - sent0,
		P50us:      us(pct[0]), P90us: us(pct[1]), P99us: us(pct[2]), MaxUs: us(time.Duration(load.hist.max.Load())),
		Errors: load.errors.Load() + failed.Load() + lost + dups,
	}
	r.window(c.pid, s0, s1, msgs)
	return report(stdout, stderr, &r, c.json)
}
