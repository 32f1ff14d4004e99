package main

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"64KiB", 64 << 10, true},
		{"4MiB", 4 << 20, true},
		{"256mib", 256 << 20, true},
		{"2GiB", 2 << 30, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"-4MiB", 0, false},
		{"1.5MiB", 0, false},
		{"4MB", 0, false},
		{"4M", 0, false},
		{"4 MiB", 0, false},
		{"+4", 0, false},
		{"9223372036854775808", 0, false},
		{"8589934592GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
	for _, n := range []int64{0, 1, 1023, 1 << 10, 3 << 20, 256 << 20, 1<<30 + 1} {
		b := byteSize(n)
		if back, err := parseSize(b.String()); err != nil || back != n {
			t.Errorf("%d prints as %q, which parses as %d, %v", n, b.String(), back, err)
		}
	}
}
