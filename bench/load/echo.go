package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
)

// EchoConfig describes an echo run.
type EchoConfig struct {
	Addr     string        // server host:port
	Conns    int           // connections
	Size     int           // payload bytes per message
	Text     bool          // text messages (printable ASCII) instead of binary
	Depth    int           // messages in flight per connection; default 1
	Warmup   time.Duration // traffic before the measured window
	Duration time.Duration // the measured window
	Window   Window
}

// EchoResult is what an echo run measured inside its window.
type EchoResult struct {
	Conns      int           `json:"conns"`
	Messages   uint64        `json:"messages"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	MsgsPerSec float64       `json:"msgs_per_sec"`
	MBPerSec   float64       `json:"mb_per_sec"` // echoed payload, one direction, 10^6 bytes
	Latency    Latency       `json:"latency"`
	Errors     int           `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
}

// drainTimeout bounds the wait for the echoes still in flight at the end.
const drainTimeout = 10 * time.Second

// dialWidth is how many dials run at once: enough to connect quickly,
// few enough not to overflow the listen backlog.
const dialWidth = 64

// Echo opens cfg.Conns connections, keeps cfg.Depth messages in flight on
// each (a new one is sent as each echo arrives, verified byte for byte),
// and reports throughput and round-trip latency over the measured window.
// It fails if any connection cannot be opened.
func Echo(ctx context.Context, cfg EchoConfig) (EchoResult, error) {
	if cfg.Conns <= 0 || cfg.Size < 0 {
		return EchoResult{}, errors.New("load: echo needs Conns > 0 and Size ≥ 0")
	}
	cfg.Depth = max(cfg.Depth, 1)
	op := codec.OpBinary
	if cfg.Text {
		op = codec.OpText
	}
	fs := newFrameSet(op, cfg.Size, max(8, 2*cfg.Depth))
	bufSize := max(4<<10, min(64<<10, cfg.Depth*(cfg.Size+codec.MaxHeaderLen)))

	conns := make([]*echoConn, cfg.Conns)
	var dialErrs errCounter
	parallel(cfg.Conns, dialWidth, func(i int) {
		buf := make([]byte, bufSize)
		nc, rest, err := dialUpgrade(ctx, cfg.Addr, nil, buf)
		if err != nil {
			dialErrs.add(err)
			return
		}
		conns[i] = &echoConn{nc: nc, fs: fs, size: cfg.Size, buf: buf, w: rest, sent: make([]time.Duration, cfg.Depth)}
	})
	if n, first := dialErrs.result(); n > 0 {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
		return EchoResult{}, fmt.Errorf("load: %d of %d connections failed: %s", n, cfg.Conns, first)
	}

	var ph atomic.Int32
	var errs errCounter
	var wg sync.WaitGroup
	base := time.Now()
	deadline := base.Add(cfg.Warmup + cfg.Duration + drainTimeout)
	for _, c := range conns {
		c.nc.SetDeadline(deadline)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(&ph, base, cfg.Depth); err != nil {
				errs.add(err)
			}
		}()
	}
	elapsed := runPhases(ctx, &ph, cfg.Warmup, cfg.Duration, cfg.Window)
	wg.Wait()

	res := EchoResult{Conns: cfg.Conns, Elapsed: elapsed}
	var h Hist
	for _, c := range conns {
		c.nc.Close()
		h.Merge(&c.hist)
		res.Messages += c.msgs
	}
	secs := elapsed.Seconds()
	res.MsgsPerSec = float64(res.Messages) / secs
	res.MBPerSec = float64(res.Messages) * float64(cfg.Size) / secs / 1e6
	res.Latency = h.Summary()
	res.Errors, res.FirstError = errs.result()
	return res, nil
}

// echoConn is one connection's client state, owned by its goroutine.
type echoConn struct {
	nc   net.Conn
	fs   *frameSet
	size int
	buf  []byte // fixed read buffer: buf[r:w] is unparsed
	r, w int
	wbuf []byte // gathers several frames into one write

	sent   []time.Duration // send times of the messages in flight, a FIFO ring
	sh, sn int             // ring head and length
	next   int             // cycle index of the next message to send
	expect int             // cycle index of the next echo

	// the message being received
	inFrame   bool
	frameLeft int64
	fin       bool
	inMsg     bool
	msgOff    int

	hist Hist
	msgs uint64
}

var (
	errUnexpectedEcho = errors.New("load: echo with no message in flight")
	errEchoMismatch   = errors.New("load: echo differs from the message sent")
	errEchoLength     = errors.New("load: echo length differs from the message sent")
)

func (c *echoConn) run(ph *atomic.Int32, base time.Time, depth int) error {
	if err := c.send(depth, time.Since(base)); err != nil {
		return err
	}
	for {
		if c.r == c.w {
			c.r, c.w = 0, 0
		} else if c.r > 0 {
			c.w = copy(c.buf, c.buf[c.r:c.w])
			c.r = 0
		}
		n, err := c.nc.Read(c.buf[c.w:])
		if n > 0 {
			c.w += n
			p := ph.Load()
			now := time.Since(base)
			done, perr := c.parse(now, p == phaseMeasure)
			if perr != nil {
				return perr
			}
			if p == phaseStop {
				if c.sn == 0 {
					return nil
				}
			} else if done > 0 {
				if err := c.send(done, now); err != nil {
					return err
				}
			}
		}
		if err != nil {
			return fmt.Errorf("load: echo read: %w", err)
		}
	}
}

// send writes the next k messages of the cycle in one write.
func (c *echoConn) send(k int, now time.Duration) error {
	frames := c.fs.frames
	var out []byte
	if k == 1 {
		out = frames[c.next]
	} else {
		c.wbuf = c.wbuf[:0]
		for i := range k {
			c.wbuf = append(c.wbuf, frames[(c.next+i)%len(frames)]...)
		}
		out = c.wbuf
	}
	for range k {
		c.sent[(c.sh+c.sn)%len(c.sent)] = now
		c.sn++
		c.next = (c.next + 1) % len(frames)
	}
	_, err := c.nc.Write(out)
	return err
}

// parse consumes the complete parts of buf[r:w], verifying echoed payload
// bytes as they arrive, and returns the number of messages completed.
func (c *echoConn) parse(now time.Duration, measuring bool) (completed int, err error) {
	for {
		if !c.inFrame {
			h, hn, err := codec.DecodeFrameHeader(c.buf[c.r:c.w])
			if errors.Is(err, codec.ErrNeedMore) {
				return completed, nil
			}
			if err != nil {
				return completed, err
			}
			if h.Masked || h.Rsv != 0 {
				return completed, fmt.Errorf("load: bad server frame header %+v", h)
			}
			if h.Opcode.IsControl() {
				if h.Length > codec.MaxControlPayload {
					return completed, fmt.Errorf("load: %d-byte control frame", h.Length)
				}
				end := c.r + hn + int(h.Length)
				if end > c.w {
					return completed, nil
				}
				if h.Opcode == codec.OpClose {
					code, reason, _ := codec.ParseClosePayload(c.buf[c.r+hn : end])
					return completed, fmt.Errorf("load: server closed: %d %q", code, reason)
				}
				c.r = end // pings and pongs: nothing to do for a benchmark
				continue
			}
			switch {
			case !c.inMsg && h.Opcode != c.fs.op:
				return completed, fmt.Errorf("load: echo opcode %v, sent %v", h.Opcode, c.fs.op)
			case c.inMsg && h.Opcode != codec.OpContinuation:
				return completed, fmt.Errorf("load: opcode %v inside a fragmented echo", h.Opcode)
			case int64(c.msgOff)+h.Length > int64(c.size):
				return completed, errEchoLength
			}
			c.inMsg, c.inFrame = true, true
			c.frameLeft, c.fin = h.Length, h.Fin
			c.r += hn
		}
		if c.frameLeft > 0 {
			take := int(min(int64(c.w-c.r), c.frameLeft))
			if take == 0 {
				return completed, nil
			}
			if !equal(c.buf[c.r:c.r+take], c.fs.payloads[c.expect][c.msgOff:c.msgOff+take]) {
				return completed, errEchoMismatch
			}
			c.r += take
			c.msgOff += take
			c.frameLeft -= int64(take)
			if c.frameLeft > 0 {
				return completed, nil
			}
		}
		c.inFrame = false
		if !c.fin {
			continue
		}
		if c.msgOff != c.size {
			return completed, errEchoLength
		}
		if c.sn == 0 {
			return completed, errUnexpectedEcho
		}
		if measuring {
			c.hist.Record(now - c.sent[c.sh])
			c.msgs++
		}
		c.sh = (c.sh + 1) % len(c.sent)
		c.sn--
		c.inMsg, c.msgOff = false, 0
		c.expect = (c.expect + 1) % len(c.fs.payloads)
		completed++
	}
}
