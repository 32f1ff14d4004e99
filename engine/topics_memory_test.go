package engine

import (
	"fmt"
	"runtime"
	"testing"
)

// BenchmarkSubscriptionMemory measures the heap a subscription holds: the
// loop's set entry, the topic in the connection's list, and the
// connection's connExtra when subscribing creates it (a connection with
// KeepRequest, a subprotocol or workers has one already). It subscribes
// bare Conns on a loop directly, so the figure is the topics' own, without
// sockets, and the topic strings are shared as a server's constants would
// be. Run with -benchtime=1x; the figure is bytes/sub.
func BenchmarkSubscriptionMemory(b *testing.B) {
	for _, tc := range []struct{ conns, topics int }{{10000, 1}, {1000, 10}, {1000, 1000}} {
		b.Run(fmt.Sprintf("%dconns×%dtopics", tc.conns, tc.topics), func(b *testing.B) {
			topics := make([]string, tc.topics)
			for i := range topics {
				topics[i] = fmt.Sprintf("topic-%d", i)
			}
			var per float64
			for range b.N {
				l := &loop{srv: &Server{}}
				l.gid.Store(1) // applyTopic is called directly: no loop goroutine
				conns := make([]*Conn, tc.conns)
				for i := range conns {
					conns[i] = &Conn{loop: l, state: stateOpen}
				}
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				for _, c := range conns {
					for _, t := range topics {
						if err := c.applyTopic(t, true); err != nil {
							b.Fatal(err)
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				subs := tc.conns * tc.topics
				per = float64(int64(m1.HeapAlloc)-int64(m0.HeapAlloc)) / float64(subs)
				runtime.KeepAlive(conns)
				runtime.KeepAlive(l)
			}
			b.ReportMetric(per, "bytes/sub")
		})
	}
}
