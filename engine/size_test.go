package engine

import (
	"testing"
	"unsafe"
)

// TestConnSize guards the per-connection cost: an idle server holds one
// Conn per connection beside gnet's own state, and the memory target
// (≤ 0.8 KiB of RSS per idle connection) leaves no room for growth. On
// 64-bit platforms a Conn must stay in the 176-byte size class.
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are budgeted for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Conn{}); n > 176 {
		t.Fatalf("Conn is %d bytes, budget 176: move cold fields behind a pointer", n)
	}
}
