package engine

import (
	"net"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/panjf2000/gnet/v2"
	"golang.org/x/sys/unix"
)

// A socket handed to gnet through EnrollContext costs more than one gnet
// accepted itself, in fields of gnet's connection that the TCP path never
// reads back:
//
//   - remote: a copy of the peer's socket address (32 bytes for IPv4),
//     which gnet uses only to answer unconnected UDP sockets;
//   - localAddr: the *net.TCPAddr of the net.TCPConn it was given, one per
//     connection, where gnet's own acceptor shares its listener's;
//   - safeCtx: a box for the context EnrollContext was given, nil or not
//     (16 bytes), which Gale never reads back;
//   - remoteAddr: the peer's *net.TCPAddr, which gnet reads only to answer
//     RemoteAddr and, at release, to recycle a zone; for a peer the Conn
//     keeps as bytes (connAddrs in addr.go) nothing else needs it.
//
// trimGnetConn clears remote, safeCtx and, for such a peer, remoteAddr, and
// points localAddr at one address shared by every connection on it. gnet
// exposes no setter for them, so the fields are found by name and type
// through reflection once, and written through their offsets; if a gnet
// release renames, retypes or drops one, nothing is written
// (TestTrimGnetConn fails, so an upgrade cannot lose it silently) and
// connections cost what they did before.
//
// Sharing the local address is what gnet's acceptor does too. It is not
// done for an address with a zone: gnet's release returns a closed
// connection's local zone bytes to its pool when it has no listener, as
// Gale's loops have not.

type gnetFields struct {
	typ                                   reflect.Type // *gnet.conn
	remote, localAddr, remoteAddr, ctxBox uintptr      // offsets
}

var (
	gnetLayout     gnetFields
	gnetLayoutOnce sync.Once
)

// learnGnetLayout finds the four fields in gc's concrete type, or leaves
// gnetLayout.typ nil.
func learnGnetLayout(gc gnet.Conn) {
	t := reflect.TypeOf(gc)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return
	}
	s := t.Elem()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, found := s.FieldByName(name)
		return f.Offset, found && len(f.Index) == 1 && f.Type == want
	}
	var f gnetFields
	var ok1, ok2, ok3, ok4 bool
	f.remote, ok1 = field("remote", reflect.TypeFor[unix.Sockaddr]())
	f.localAddr, ok2 = field("localAddr", reflect.TypeFor[net.Addr]())
	f.remoteAddr, ok3 = field("remoteAddr", reflect.TypeFor[net.Addr]())
	f.ctxBox, ok4 = field("safeCtx", reflect.TypeFor[atomic.Pointer[any]]())
	if ok1 && ok2 && ok3 && ok4 {
		f.typ = t
		gnetLayout = f
	}
}

// sharedLocal is the last local address shared: a server's connections
// nearly all have one, so comparing with the last one is enough.
var sharedLocal atomic.Pointer[net.TCPAddr]

// trimGnetConn trims gc, gnet's connection for a TCP socket that
// EnrollContext registered, as above, and returns the local address it now
// reports. shareLocal is false for the client role, whose local ports
// differ; dropRemote says the Conn keeps the peer's address as bytes.
// Loop only, in OnOpen, before anything reads gc's fields.
func trimGnetConn(gc gnet.Conn, shareLocal, dropRemote bool) net.Addr {
	gnetLayoutOnce.Do(func() { learnGnetLayout(gc) })
	la := gc.LocalAddr()
	f := &gnetLayout
	if f.typ == nil || reflect.TypeOf(gc) != f.typ {
		return la
	}
	p := reflect.ValueOf(gc).UnsafePointer()
	if _, tcp := gc.RemoteAddr().(*net.TCPAddr); tcp {
		*(*unix.Sockaddr)(unsafe.Add(p, f.remote)) = nil
	}
	if dropRemote {
		*(*net.Addr)(unsafe.Add(p, f.remoteAddr)) = nil
	}
	(*atomic.Pointer[any])(unsafe.Add(p, f.ctxBox)).Store(nil)
	if a, ok := la.(*net.TCPAddr); ok && shareLocal {
		if s := shareTCPAddr(a); s != a {
			*(*net.Addr)(unsafe.Add(p, f.localAddr)) = s
			la = s
		}
	}
	return la
}

// takeAddrs makes the addresses of the Conn for gc, a socket EnrollContext
// registered, trimming gc on the way (trimGnetConn): once the upgrade is
// done nothing keeps an IPv4 peer's *net.TCPAddr. It returns that address
// too, for the handshake to use meanwhile (handshake.raddr). Loop only, in
// OnOpen.
func takeAddrs(gc gnet.Conn, shareLocal bool) (connAddrs, net.Addr) {
	ra := gc.RemoteAddr()
	return makeConnAddrs(trimGnetConn(gc, shareLocal, packed(gc.LocalAddr(), ra)), ra), ra
}

// shareTCPAddr returns the shared address equal to a, making a the shared
// one when the last one differs. An address with a zone is not shared.
func shareTCPAddr(a *net.TCPAddr) *net.TCPAddr {
	if a.Zone != "" {
		return a
	}
	if s := sharedLocal.Load(); s != nil && s.Port == a.Port && slices.Equal(s.IP, a.IP) {
		return s
	}
	sharedLocal.Store(a)
	return a
}
