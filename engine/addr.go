package engine

import (
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"
)

// Every connection keeps its two addresses for its whole life: gnet holds
// the *net.TCPAddr values of the net.TCPConn it is handed, and so does the
// Conn. Go's net package builds each of them with its IP slicing into the
// socket address that accept or getsockname returned (a 32-byte object for
// IPv4, 64 for IPv6), so an idle connection would keep two socket
// addresses alive only for their 4 or 16 address bytes. compactAddrs
// repoints both IPs before the hand-over: the local one to a copy shared
// by every connection on that address, the remote one to a copy of its
// own: 47 bytes less live heap per connection for one allocation more.
// On the server paths trimGnetConn (gnetconn.go) then replaces the local
// TCPAddr by a shared one altogether; the shared IP still serves the
// event-loop client, whose local addresses differ by port, and any gnet
// whose layout trimGnetConn does not recognise.
//
// It also gives each address a Zone of its own: gnet recycles the bytes
// of a closed connection's zone strings, and the ones net hands out are
// its interface-name cache's, which other addresses share. (The copy
// still goes to gnet's pool, so a closed link-local connection's
// RemoteAddr may print a wrong zone; net's cache stays intact.)

// localIP is the last local IP seen: a server's connections nearly all
// share one, so comparing with the last one is enough to share it.
var localIP atomic.Pointer[net.IP]

// compactAddrs rewrites nc's addresses, as above, before nc is handed to
// gnet: accepted, mounted and TLS sockets, and the event-loop client's.
// A no-op for anything but a *net.TCPConn. Safe from any goroutine: the
// addresses are nc's alone until the hand-over.
func compactAddrs(nc net.Conn) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return
	}
	la, _ := tc.LocalAddr().(*net.TCPAddr)
	ra, _ := tc.RemoteAddr().(*net.TCPAddr)
	compactTCPAddrs(la, ra)
}

func compactTCPAddrs(la, ra *net.TCPAddr) {
	if la != nil {
		la.IP = sharedLocalIP(la.IP)
		la.Zone = strings.Clone(la.Zone)
	}
	if ra != nil {
		ra.IP = slices.Clip(slices.Clone(ra.IP))
		ra.Zone = strings.Clone(ra.Zone)
	}
}

// sharedLocalIP returns a shared copy of ip, equal in length and bytes.
func sharedLocalIP(ip net.IP) net.IP {
	if p := localIP.Load(); p != nil && slices.Equal(*p, ip) {
		return *p
	}
	c := slices.Clip(slices.Clone(ip))
	localIP.Store(&c)
	return c
}

// connAddrs is how a Conn keeps its two addresses: in two words, where two
// net.Addr interfaces take four. That is what keeps a Conn in the 176-byte
// size class rather than 192 (TestConnSize). A TCP socket's addresses,
// which every connection but a unix socket's has, are kept as the two
// *net.TCPAddr they are; any other pair, or one with a nil address, goes
// behind the second word as an addrPair, with the first nil to say so.
// Set once when the Conn is made and never changed, so any goroutine may
// read them.
type connAddrs struct {
	ltcp *net.TCPAddr
	rest unsafe.Pointer // *net.TCPAddr when ltcp != nil, else *addrPair
}

type addrPair struct{ l, r net.Addr }

func makeConnAddrs(l, r net.Addr) connAddrs {
	lt, _ := l.(*net.TCPAddr)
	rt, _ := r.(*net.TCPAddr)
	if lt != nil && rt != nil {
		return connAddrs{ltcp: lt, rest: unsafe.Pointer(rt)}
	}
	return connAddrs{rest: unsafe.Pointer(&addrPair{l, r})}
}

func (a *connAddrs) local() net.Addr {
	if a.ltcp != nil {
		return a.ltcp
	}
	if a.rest == nil {
		return nil
	}
	return (*addrPair)(a.rest).l
}

func (a *connAddrs) remote() net.Addr {
	if a.ltcp != nil {
		return (*net.TCPAddr)(a.rest)
	}
	if a.rest == nil {
		return nil
	}
	return (*addrPair)(a.rest).r
}
