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
// repoints the IPs before the hand-over: the local one to a copy shared by
// every connection on that address, the remote one, when the Conn will
// keep it as a *net.TCPAddr (an IPv6 peer; see connAddrs), to a copy of
// its own. On the server paths trimGnetConn (gnetconn.go) then replaces the
// local TCPAddr by a shared one altogether, and an IPv4 peer's is not kept
// at all (takeAddrs); the shared IP still serves the event-loop client,
// whose local addresses differ by port, and any gnet whose layout
// trimGnetConn does not recognise.
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
	if ra != nil && !packable(ra) {
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

// connAddrs is how a Conn keeps its two addresses, in two words. The common
// case, a TCP peer with an IPv4 address (also as an IPv4-mapped IPv6 one,
// as a dual-stack listener reports it), keeps the peer's address and port
// as bytes beside a pointer to the local *net.TCPAddr, which is shared by
// the connections on it: the peer's *net.TCPAddr and its IP (52 to 64
// bytes of heap in two objects) are not kept at all, and RemoteAddr builds
// a new one when asked. An IPv6 peer's pair (or one with a zone) goes
// behind the pointer as two *net.TCPAddr, 16 bytes; any other (a unix
// socket, a nil address) as two net.Addr, 32 bytes. That keeps a
// Conn in the 176-byte size class (TestConnSize) either way. Set once when
// the Conn is made and never changed, so any goroutine may read it.
type connAddrs struct {
	p    unsafe.Pointer // kind4, kind4in6: the local *net.TCPAddr; kindTCPPair: *tcpPair; kindPair: *addrPair
	ip   [4]byte        // kind4, kind4in6: the peer's IPv4 address
	port uint16         // kind4, kind4in6: the peer's port
	kind addrKind
}

type addrKind uint8

const (
	kindNone    addrKind = iota // the zero connAddrs: no addresses
	kindPair                    // p is an *addrPair
	kindTCPPair                 // p is a *tcpPair
	kind4                       // the peer's IP was 4 bytes long
	kind4in6                    // the peer's IP was the 16-byte IPv4-mapped form
)

type addrPair struct{ l, r net.Addr }

type tcpPair struct{ l, r *net.TCPAddr }

// makeConnAddrs keeps l and r as above.
func makeConnAddrs(l, r net.Addr) connAddrs {
	lt, _ := l.(*net.TCPAddr)
	rt, _ := r.(*net.TCPAddr)
	switch {
	case packed(l, r):
		k := kind4
		if len(rt.IP) == net.IPv6len {
			k = kind4in6
		}
		return connAddrs{p: unsafe.Pointer(lt), ip: [4]byte(rt.IP.To4()), port: uint16(rt.Port), kind: k}
	case lt != nil && rt != nil:
		return connAddrs{p: unsafe.Pointer(&tcpPair{lt, rt}), kind: kindTCPPair}
	}
	return connAddrs{p: unsafe.Pointer(&addrPair{l, r}), kind: kindPair}
}

// packed reports whether a Conn keeps the peer's address r as bytes.
func packed(l, r net.Addr) bool {
	lt, _ := l.(*net.TCPAddr)
	rt, _ := r.(*net.TCPAddr)
	return lt != nil && rt != nil && packable(rt)
}

// packable reports whether r, a peer's address, can be kept as bytes.
func packable(r *net.TCPAddr) bool {
	return r.Zone == "" && r.Port >= 0 && r.Port <= 0xffff &&
		(len(r.IP) == net.IPv4len || len(r.IP) == net.IPv6len && r.IP.To4() != nil)
}

func (a *connAddrs) local() net.Addr {
	switch a.kind {
	case kind4, kind4in6:
		return (*net.TCPAddr)(a.p)
	case kindTCPPair:
		return (*tcpPair)(a.p).l
	case kindPair:
		return (*addrPair)(a.p).l
	}
	return nil
}

// tcp4Addr is a *net.TCPAddr and its IP's bytes in one allocation.
type tcp4Addr struct {
	a  net.TCPAddr
	ip [net.IPv6len]byte
}

func (a *connAddrs) remote() net.Addr {
	switch a.kind {
	case kind4, kind4in6:
		x := &tcp4Addr{}
		ip := x.ip[:net.IPv4len]
		if a.kind == kind4in6 {
			ip = x.ip[:]
			ip[10], ip[11] = 0xff, 0xff
			copy(ip[12:], a.ip[:])
		} else {
			copy(ip, a.ip[:])
		}
		x.a.IP, x.a.Port = net.IP(ip), int(a.port)
		return &x.a
	case kindTCPPair:
		return (*tcpPair)(a.p).r
	case kindPair:
		return (*addrPair)(a.p).r
	}
	return nil
}
