package load

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/galews/gale/codec"
)

// HoldConfig describes a set of idle connections.
type HoldConfig struct {
	Addr string // server host:port
	// Conns is the number of connections to open.
	Conns int
	// PerSource connections share one source address (127.0.0.2, .3, …),
	// keeping each address's ephemeral ports far from exhaustion. Default 5,000.
	PerSource int
	// FirstSource is the index of the first source address ([LoopbackSource]),
	// so that several processes use distinct addresses.
	FirstSource int
}

// Held is a set of open, upgraded, idle connections.
type Held struct {
	conns      []net.Conn
	Errors     int    `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// LoopbackSource returns the i-th source address for idle connections:
// 127.0.0.2, 127.0.0.3, … (all of 127/8 is local on Linux).
func LoopbackSource(i int) net.IP {
	n := i + 2
	return net.IPv4(127, byte(n>>16), byte(n>>8), byte(n))
}

// Hold opens and upgrades cfg.Conns connections and keeps them open, idle,
// until Close. Connections that fail are counted in Errors.
func Hold(ctx context.Context, cfg HoldConfig) *Held {
	per := cfg.PerSource
	if per <= 0 {
		per = 5000
	}
	slots := make([]net.Conn, cfg.Conns)
	var errs errCounter
	parallel(cfg.Conns, dialWidth, func(i int) {
		var buf [1 << 10]byte
		nc, rest, err := dialUpgrade(ctx, cfg.Addr, LoopbackSource(cfg.FirstSource+i/per), buf[:])
		if err == nil && rest > 0 {
			nc.Close()
			err = errors.New("load: server sent data on an idle connection")
		}
		if err != nil {
			errs.add(err)
			return
		}
		slots[i] = nc
	})
	h := &Held{}
	for _, nc := range slots {
		if nc != nil {
			h.conns = append(h.conns, nc)
		}
	}
	h.Errors, h.FirstError = errs.result()
	return h
}

// Len returns the number of connections held.
func (h *Held) Len() int { return len(h.conns) }

// Sources returns how many source addresses cfg uses, so that the next
// process can start after them.
func (cfg HoldConfig) Sources() int {
	per := cfg.PerSource
	if per <= 0 {
		per = 5000
	}
	return (cfg.Conns + per - 1) / per
}

// Check sends one small message on every held connection and counts the
// connections whose echo comes back intact: proof that the server kept
// them all. It runs after the idle measurement.
func (h *Held) Check(ctx context.Context) (alive int) {
	fs := newFrameSet(codec.OpText, 16, 1)
	ok := make([]bool, len(h.conns))
	parallel(len(h.conns), 256, func(i int) {
		nc := h.conns[i]
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		defer nc.SetDeadline(time.Time{})
		c := echoConn{nc: nc, fs: fs, size: 16, buf: make([]byte, 256), sent: make([]time.Duration, 1)}
		if c.send(1, 0) != nil {
			return
		}
		for {
			n, err := nc.Read(c.buf[c.w:])
			c.w += n
			done, perr := c.parse(0, false)
			if perr != nil {
				return
			}
			if done == 1 {
				ok[i] = true
				return
			}
			if err != nil || c.w == len(c.buf) {
				return
			}
		}
	})
	for _, b := range ok {
		if b {
			alive++
		}
	}
	return alive
}

// Close closes every held connection.
func (h *Held) Close() {
	for _, nc := range h.conns {
		nc.Close()
	}
	h.conns = nil
}

// String summarises h for logs.
func (h *Held) String() string {
	return fmt.Sprintf("%d held, %d errors", len(h.conns), h.Errors)
}
