//go:build (!amd64 && !arm64) || purego

package goid

import (
	"bytes"
	"runtime"
	"strconv"
)

// id parses the goroutine number from the first line of runtime.Stack
// ("goroutine 18 [running]:"). It is slow (about a microsecond) but
// portable; the assembly twins are the fast path.
func id() uintptr {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return uintptr(n) + 1
}
