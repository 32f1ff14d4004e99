package pool

import (
	"bytes"
	"testing"
)

func TestGetClass(t *testing.T) {
	tests := []struct {
		name    string
		n       int
		wantCap int
	}{
		{
			name:    "zero",
			n:       0,
			wantCap: 64,
		},
		{
			name:    "one",
			n:       1,
			wantCap: 64,
		},
		{
			name:    "min class",
			n:       64,
			wantCap: 64,
		},
		{
			name:    "min class plus one",
			n:       65,
			wantCap: 128,
		},
		{
			name:    "power of two",
			n:       1024,
			wantCap: 1024,
		},
		{
			name:    "power of two minus one",
			n:       1023,
			wantCap: 1024,
		},
		{
			name:    "power of two plus one",
			n:       1025,
			wantCap: 2048,
		},
		{
			name:    "64 KiB",
			n:       64 << 10,
			wantCap: 64 << 10,
		},
		{
			name:    "MaxPooled",
			n:       MaxPooled,
			wantCap: MaxPooled,
		},
		{
			name:    "MaxPooled minus one",
			n:       MaxPooled - 1,
			wantCap: MaxPooled,
		},
		{
			name:    "MaxPooled plus one",
			n:       MaxPooled + 1,
			wantCap: MaxPooled + 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Get(tc.n)
			if len(*b) != tc.n || cap(*b) != tc.wantCap {
				t.Fatalf(
					"Get(%d): len %d cap %d, want len %d cap %d",
					tc.n, len(*b), cap(*b), tc.n, tc.wantCap,
				)
			}
			Put(b)
			// A second round may reuse the buffer; it must still fit.
			b = Get(tc.n)
			if len(*b) != tc.n || cap(*b) != tc.wantCap {
				t.Fatalf(
					"second Get(%d): len %d cap %d, want len %d cap %d",
					tc.n, len(*b), cap(*b), tc.n, tc.wantCap,
				)
			}
			Put(b)
		})
	}
}

func TestGetNegative(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Get(-1) did not panic")
		}
	}()
	Get(-1)
}

// TestPutForeign checks that buffers whose capacity is not a class size never
// come back out of Get, where they would break the capacity promise.
func TestPutForeign(t *testing.T) {
	tests := []struct {
		name string
		buf  []byte
	}{
		{
			name: "not a power of two",
			buf:  make([]byte, 100),
		},
		{
			name: "below the smallest class",
			buf:  make([]byte, 32),
		},
		{
			name: "empty",
			buf:  []byte{},
		},
		{
			name: "nil slice",
			buf:  nil,
		},
		{
			name: "resliced class buffer",
			buf:  make([]byte, 128)[:64:96],
		},
		{
			name: "above MaxPooled",
			buf:  make([]byte, 0, 2*MaxPooled),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 10 {
				b := tc.buf
				Put(&b)
			}
			for _, n := range []int{0, 32, 64, 65, 96, 100, 128} {
				for range 10 {
					b := Get(n)
					if c := cap(*b); c&(c-1) != 0 || c < n || c < 64 {
						t.Fatalf(
							"Get(%d) returned cap %d after Put of cap %d",
							n, c, cap(tc.buf),
						)
					}
				}
			}
		})
	}
}

func TestPutNil(t *testing.T) {
	Put(nil) // must not panic
}

func TestGrow(t *testing.T) {
	tests := []struct {
		name     string
		len      int
		grow     int
		wantLen  int
		wantCap  int
		wantSame bool
	}{
		{
			name:     "within cap",
			len:      10,
			grow:     60,
			wantLen:  60,
			wantCap:  64,
			wantSame: true,
		},
		{
			name:     "to exact cap",
			len:      10,
			grow:     64,
			wantLen:  64,
			wantCap:  64,
			wantSame: true,
		},
		{
			name:     "shorter keeps len",
			len:      50,
			grow:     20,
			wantLen:  50,
			wantCap:  64,
			wantSame: true,
		},
		{
			name:     "next class",
			len:      50,
			grow:     65,
			wantLen:  65,
			wantCap:  128,
			wantSame: false,
		},
		{
			name:     "several classes",
			len:      64,
			grow:     5000,
			wantLen:  5000,
			wantCap:  8192,
			wantSame: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Get(tc.len)
			for i := range *b {
				(*b)[i] = byte(i + 1)
			}
			want := bytes.Clone(*b)
			g := Grow(b, tc.grow)
			if len(*g) != tc.wantLen || cap(*g) != tc.wantCap {
				t.Fatalf(
					"Grow(len %d, %d): len %d cap %d, want len %d cap %d",
					tc.len, tc.grow, len(*g), cap(*g), tc.wantLen, tc.wantCap,
				)
			}
			if (g == b) != tc.wantSame {
				t.Fatalf(
					"Grow(len %d, %d) returned the same buffer: %v, want %v",
					tc.len, tc.grow, g == b, tc.wantSame,
				)
			}
			if !bytes.Equal((*g)[:tc.len], want) {
				t.Fatalf(
					"Grow(len %d, %d) lost the contents: %x, want %x",
					tc.len, tc.grow, (*g)[:tc.len], want,
				)
			}
			Put(g)
		})
	}
}

func TestGrowNil(t *testing.T) {
	b := Grow(nil, 100)
	if len(*b) != 100 || cap(*b) != 128 {
		t.Fatalf(
			"Grow(nil, 100): len %d cap %d, want len 100 cap 128",
			len(*b), cap(*b),
		)
	}
	Put(b)
}

// TestGrowForeign grows a buffer that did not come from Get: it is copied
// into a class buffer and then dropped by Put, not pooled.
func TestGrowForeign(t *testing.T) {
	f := []byte("hello")
	g := Grow(&f, 100)
	if string((*g)[:5]) != "hello" || len(*g) != 100 || cap(*g) != 128 {
		t.Fatalf(
			"Grow(foreign, 100) = %q… len %d cap %d",
			(*g)[:5], len(*g), cap(*g),
		)
	}
	Put(g)
}

func BenchmarkGetPut(b *testing.B) {
	for _, tc := range []struct {
		name string
		n    int
	}{
		{
			name: "64",
			n:    64,
		},
		{
			name: "4096",
			n:    4096,
		},
		{
			name: "65536",
			n:    65536,
		},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Put(Get(tc.n))
			}
		})
	}
}
