package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/galews/gale/codec"
)

// HandshakeConfig describes a connection-setup run.
type HandshakeConfig struct {
	Addr     string        // server host:port
	Workers  int           // concurrent dial loops
	Warmup   time.Duration // traffic before the measured window
	Duration time.Duration // the measured window
	Window   Window
}

// HandshakeResult is what a handshake run measured inside its window.
type HandshakeResult struct {
	Handshakes uint64        `json:"handshakes"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	PerSec     float64       `json:"handshakes_per_sec"`
	Latency    Latency       `json:"latency"` // one whole cycle, dial to the server's FIN
	Errors     int           `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
}

// cycleTimeout bounds one dial → upgrade → close cycle.
const cycleTimeout = 5 * time.Second

// keysPerWorker upgrade requests are built per worker and used in turn, so
// that no random key is generated inside the loop.
const keysPerWorker = 16

// Handshake runs cfg.Workers loops of dial → upgrade → Close → the
// server's Close → the server's FIN → close, and reports completed cycles
// per second over the measured window. Waiting for the server to close
// first (RFC 6455 §7.1.1) leaves TIME_WAIT on the server's side, so the
// client's ephemeral ports are not used up.
func Handshake(ctx context.Context, cfg HandshakeConfig) (HandshakeResult, error) {
	if cfg.Workers <= 0 {
		return HandshakeResult{}, errors.New("load: handshake needs Workers > 0")
	}
	var ph atomic.Int32
	var errs errCounter
	var wg sync.WaitGroup
	workers := make([]*handshaker, cfg.Workers)
	for i := range workers {
		hw := &handshaker{addr: cfg.Addr, buf: make([]byte, 4<<10)}
		for range keysPerWorker {
			hw.reqs = append(hw.reqs, newRequest(cfg.Addr))
		}
		workers[i] = hw
		wg.Add(1)
		go func() {
			defer wg.Done()
			hw.loop(ctx, &ph, &errs)
		}()
	}
	elapsed := runPhases(ctx, &ph, cfg.Warmup, cfg.Duration, cfg.Window)
	wg.Wait()

	res := HandshakeResult{Elapsed: elapsed}
	var h Hist
	for _, hw := range workers {
		res.Handshakes += hw.done
		h.Merge(&hw.hist)
	}
	res.PerSec = float64(res.Handshakes) / elapsed.Seconds()
	res.Latency = h.Summary()
	res.Errors, res.FirstError = errs.result()
	return res, nil
}

type handshaker struct {
	addr string
	d    net.Dialer
	reqs []request
	next int
	buf  []byte
	hist Hist
	done uint64
}

func (hw *handshaker) loop(ctx context.Context, ph *atomic.Int32, errs *errCounter) {
	for ph.Load() != phaseStop && ctx.Err() == nil {
		t0 := time.Now()
		if err := hw.cycle(ctx); err != nil {
			errs.add(err)
			Sleep(ctx, 10*time.Millisecond) // a failing server must not become a busy loop
			continue
		}
		if ph.Load() == phaseMeasure {
			hw.hist.Record(time.Since(t0))
			hw.done++
		}
	}
}

func (hw *handshaker) cycle(ctx context.Context) error {
	req := &hw.reqs[hw.next]
	hw.next = (hw.next + 1) % len(hw.reqs)
	nc, err := hw.d.DialContext(ctx, "tcp", hw.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(cycleTimeout))
	n, err := upgrade(nc, req, hw.buf)
	if err != nil {
		return err
	}
	if _, err := nc.Write(closeFrame); err != nil {
		return err
	}
	for {
		ok, fn, err := isCloseFrame(hw.buf[:n])
		if err == nil {
			if !ok {
				return errors.New("load: expected the server's Close")
			}
			n = copy(hw.buf, hw.buf[fn:n])
			break
		}
		if !errors.Is(err, codec.ErrNeedMore) {
			return err
		}
		m, err := nc.Read(hw.buf[n:])
		n += m
		if err != nil {
			return fmt.Errorf("load: reading the server's Close: %w", err)
		}
	}
	for {
		m, err := nc.Read(hw.buf)
		if m > 0 || n > 0 {
			return errors.New("load: data after the server's Close")
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("load: waiting for the server to close: %w", err)
		}
	}
}
