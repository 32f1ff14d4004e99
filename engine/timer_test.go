package engine

import "testing"

// TestWheelTicks drives the wheel by hand: a connection fires at the tick
// it was armed for, never before, across the wrap of the 32-bit ticks the
// Conn keeps, and a deadline past the 2³¹ window is armed at maxAhead
// rather than read as one in the past.
func TestWheelTicks(t *testing.T) {
	const wrap = int64(1) << 32
	tests := []struct {
		name     string
		now, at  int64
		fireAt   int64 // the first tick at which it must have fired
		stepwise bool  // advance one tick at a time (else jump to fireAt-1, then fireAt)
	}{
		{"next tick", 10, 11, 11, true},
		{"past is next tick", 10, 3, 11, true},
		{"one revolution and a bit", 10, 10 + wheelSlots + 5, 10 + wheelSlots + 5, true},
		{"across the wrap", wrap - 20, wrap + 30, wrap + 30, true},
		{"lands on the wrap", wrap - 5, wrap, wrap + 1, true},
		{"second wrap", 3*wrap - 1, 3*wrap + 700, 3*wrap + 700, true},
		{"past the window", 100, 100 + 3*maxAhead, 100 + maxAhead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &wheel{now: tt.now}
			c := &Conn{}
			var fired int64 = -1
			fire := func(x *Conn) {
				if x != c {
					t.Fatalf("fired a connection that was never armed")
				}
				fired = w.now
			}
			w.schedule(c, tt.at)
			if tt.stepwise {
				for n := tt.now + 1; n <= tt.fireAt && fired < 0; n++ {
					w.advance(n, fire)
				}
			} else {
				w.advance(tt.fireAt-1, fire)
				if fired >= 0 {
					t.Fatalf("fired at %d, before %d", fired, tt.fireAt)
				}
				w.advance(tt.fireAt, fire)
			}
			if fired != tt.fireAt {
				t.Fatalf("fired at %d, want %d", fired, tt.fireAt)
			}
			if c.timerAt != 0 || w.slots[tt.fireAt%wheelSlots] != nil {
				t.Fatalf("still armed after firing")
			}
		})
	}
}

// TestWheelRemove: a removed connection never fires, and its neighbours in
// the slot still do.
func TestWheelRemove(t *testing.T) {
	w := &wheel{now: 1<<32 - 2}
	a, b, c := &Conn{}, &Conn{}, &Conn{}
	for _, x := range []*Conn{a, b, c} {
		w.schedule(x, 1<<32+wheelSlots) // one slot, one revolution out
	}
	w.remove(b)
	w.remove(b) // a no-op
	got := map[*Conn]bool{}
	w.advance(1<<32+wheelSlots, func(x *Conn) { got[x] = true })
	if !got[a] || got[b] || !got[c] {
		t.Fatalf("fired a=%v b=%v c=%v, want a and c", got[a], got[b], got[c])
	}
}
