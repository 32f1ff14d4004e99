package engine

import (
	"sync/atomic"

	"github.com/galews/gale/codec"
)

// Stats is a snapshot of a server's counters.
type Stats struct {
	Open     int64  // connections open now (upgrading or upgraded), event streams included
	Upgrades uint64 // upgrades, and event streams accepted
	Rejected uint64 // upgrade (or event stream) requests refused (any 4xx/5xx, fallback answers included), by the listener's path or ServeHTTP

	// Messages and their payload bytes, counted uncompressed; an event
	// written to a stream counts as a message, with the bytes of its
	// encoding, or of the payload of a prepared message (Publish,
	// Broadcast, WritePrepared).
	MessagesIn, MessagesOut uint64
	BytesIn, BytesOut       uint64

	// Paused is the connections whose reading is held back now (read
	// backpressure or the memory budget); MemoryHeld the bytes counted
	// against Config.MemoryBudget: backlogs, queued writes, unread bytes of
	// paused connections and reassembly buffers.
	Paused     int64
	MemoryHeld int64
	// MemoryReleases counts the times the server returned the memory a
	// burst freed to the operating system (see Config.KeepFreedMemory).
	MemoryReleases uint64
	// WritesRefused counts the messages refused under OutboundReject with
	// ErrOutboundFull: to a connection whose backlog was at MaxOutbound, or
	// that had a backlog while the server was over MemoryBudget. Broadcast
	// and Publish skip such a connection without an error to anyone, so
	// this is where their refusals show.
	WritesRefused uint64

	// Closes counts upgraded connections by how they ended: the close code
	// received or sent (codec.StatusCode), or 1006 when the transport
	// dropped without a close handshake.
	Closes map[codec.StatusCode]uint64

	// AcceptErrors counts failed accepts, each followed by a backoff (5 ms
	// doubling to 1 s): mostly the descriptor limit (EMFILE, ENFILE) or
	// socket memory (ENOBUFS, ENOMEM), during which new connections wait in
	// the listen backlog and open ones are unaffected.
	AcceptErrors uint64
	// AcceptShed counts connections accepted, or hijacked by ServeHTTP,
	// but closed at once because they could not be handed to a loop (no
	// descriptor left for gnet's duplicate of the socket).
	AcceptShed uint64
	// TLSHandshakeErrors counts TLS handshakes on the listener that failed
	// or outlasted HandshakeTimeout (with Config.TLS): garbage, plain HTTP,
	// a stalled or vanished peer, no common cipher or version.
	TLSHandshakeErrors uint64
}

// closeCodes are the codes counted individually; others count as 0.
var closeCodes = [...]codec.StatusCode{1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}

// loopStats are one loop's counters. Atomic so Stats can read them from any
// goroutine; each loop has its own, so the adds never contend across cores.
type loopStats struct {
	open, paused                       atomic.Int64
	upgrades, rejected, refused        atomic.Uint64
	msgsIn, msgsOut, bytesIn, bytesOut atomic.Uint64
	closes                             [len(closeCodes) + 1]atomic.Uint64
}

func (s *loopStats) countOut(op codec.Opcode, fin bool, n int) {
	if op.IsData() {
		if fin {
			s.msgsOut.Add(1)
		}
		s.bytesOut.Add(uint64(n))
	}
}

func (s *loopStats) countClose(code codec.StatusCode) {
	for i, c := range closeCodes {
		if c == code {
			s.closes[i].Add(1)
			return
		}
	}
	s.closes[len(closeCodes)].Add(1)
}

// Stats returns the server's counters summed over its loops.
func (s *Server) Stats() Stats {
	st := Stats{
		Closes:         map[codec.StatusCode]uint64{},
		MemoryHeld:     s.mem.used.Load(),
		MemoryReleases: s.mem.releases.Load(),
		Rejected:       s.mount.rejected.Load(),
		AcceptShed:     s.mount.shed.Load(),
	}
	if acc := s.acc.Load(); acc != nil {
		st.AcceptErrors = acc.failures.Load()
		st.AcceptShed += acc.shed.Load()
		st.TLSHandshakeErrors = acc.tlsFailures.Load()
	}
	for _, l := range s.loopList() {
		st.Open += l.stats.open.Load()
		st.Paused += l.stats.paused.Load()
		st.Upgrades += l.stats.upgrades.Load()
		st.Rejected += l.stats.rejected.Load()
		st.WritesRefused += l.stats.refused.Load()
		st.MessagesIn += l.stats.msgsIn.Load()
		st.MessagesOut += l.stats.msgsOut.Load()
		st.BytesIn += l.stats.bytesIn.Load()
		st.BytesOut += l.stats.bytesOut.Load()
		for i := range l.stats.closes {
			if n := l.stats.closes[i].Load(); n > 0 {
				code := codec.StatusCode(0)
				if i < len(closeCodes) {
					code = closeCodes[i]
				}
				st.Closes[code] += n
			}
		}
	}
	return st
}
