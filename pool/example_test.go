package pool_test

import (
	"fmt"

	"github.com/galews/gale/pool"
)

func Example() {
	b := pool.Get(5) // len 5, cap 64
	copy(*b, "hello")

	b = pool.Grow(b, 11) // still fits: the same buffer, len 11
	copy((*b)[5:], " world")
	fmt.Println(string(*b), len(*b), cap(*b))

	b = pool.Grow(b, 100) // a 128-byte buffer; the old one went back
	fmt.Println(string((*b)[:11]), len(*b), cap(*b))

	pool.Put(b) // b must not be used after this
	// Output:
	// hello world 11 64
	// hello world 100 128
}
