package engine

import (
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/galews/gale/codec"
	"github.com/panjf2000/gnet/v2"
)

// rawGnet is c's gnet connection under any view of it. c must be open and
// its OnOpen seen, and for a mounted connection no prefix pending.
func rawGnet(c *Conn) gnet.Conn {
	if x := c.ext.Load(); x != nil && x.tls != nil {
		return x.tls.Conn
	}
	if p, ok := c.gc.(*prefixed); ok {
		return p.Conn
	}
	return c.gc
}

// gnetFacts is what a trimmed connection's gnet fields hold, read on its
// loop in OnOpen.
type gnetFacts struct {
	layout, remoteKept, boxKept bool
	gnetRemote                  net.Addr // gnet's remoteAddr, cleared for an IPv4 peer
	safeCtx                     any
	gnetLocal, local, remote    net.Addr
}

// trimProbe records gnetFacts for every connection it opens.
type trimProbe struct {
	*apiHandler
	facts chan gnetFacts
}

func (h *trimProbe) OnOpen(c *Conn) {
	gc := rawGnet(c)
	v := reflect.ValueOf(gc).Elem()
	ok := gnetLayout.typ != nil
	f := gnetFacts{layout: ok, safeCtx: gc.SafeContext(), gnetLocal: gc.LocalAddr(), gnetRemote: gc.RemoteAddr(), local: c.LocalAddr(), remote: c.RemoteAddr()}
	if r := v.FieldByName("remote"); !r.IsValid() || !r.IsNil() {
		f.remoteKept = true
	}
	if b := v.FieldByName("safeCtx"); !b.IsValid() || !b.Field(1).IsZero() { // atomic.Pointer's v
		f.boxKept = true
	}
	offer(h.facts, f)
	h.apiHandler.OnOpen(c)
}

// TestTrimGnetConn: on every path a socket takes to a loop, gnet's
// connection keeps no copy of the peer's socket address, no *net.TCPAddr
// of an IPv4 peer and no context box, and a server's connections share
// one local address, while every
// address still reads as the socket's and the connections work. With this
// gnet the layout must be recognised: a release that changes it fails
// here rather than quietly costing 96 bytes per connection.
func TestTrimGnetConn(t *testing.T) {
	for _, path := range []string{"accepted", "tls", "mounted", "client", "client-tls"} {
		t.Run(path, func(t *testing.T) {
			h := &trimProbe{apiHandler: newAPIHandler(), facts: make(chan gnetFacts, 16)}
			var url, local string
			var opts *DialOptions
			var cl *Client
			client := strings.HasPrefix(path, "client")
			if client {
				// The event-loop client's connections are the ones
				// probed; the server is Gale's, plain or TLS.
				server := "accepted"
				if path == "client-tls" {
					server = "tls"
				}
				url, local, opts = startOnPath(t, server, newAPIHandler())
				cl = newTestClient(t, h, Config{})
			} else {
				url, local, opts = startOnPath(t, path, h)
			}
			var facts []gnetFacts
			for i := range 3 {
				var echo func() error
				if cl != nil {
					c, err := cl.Dial(t.Context(), url, opts)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close(codec.StatusNormalClosure, "")
					echo = func() error { return c.WriteText([]byte("after the trim")) }
				} else {
					c, err := Dial(t.Context(), url, opts)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close(codec.StatusNormalClosure, "")
					echo = func() error {
						if err := c.WriteText([]byte("after the trim")); err != nil {
							return err
						}
						_, p, err := c.ReadMessage()
						if err == nil && string(p) != "after the trim" {
							t.Errorf("connection %d: echo %q", i, p)
						}
						return err
					}
				}
				facts = append(facts, recv(t, h.facts, "OnOpen"))
				if err := echo(); err != nil {
					t.Fatalf("connection %d: %v", i, err)
				}
			}
			for i, f := range facts {
				if !f.layout {
					t.Fatal("gnet's connection layout was not recognised: remote, localAddr, remoteAddr and safeCtx are not all there")
				}
				if f.remoteKept {
					t.Errorf("connection %d: gnet keeps the peer's socket address", i)
				}
				if f.gnetRemote != nil {
					t.Errorf("connection %d: gnet keeps the peer's *net.TCPAddr (%v), which the Conn keeps as bytes", i, f.gnetRemote)
				}
				if f.boxKept || f.safeCtx != nil {
					t.Errorf("connection %d: gnet keeps a context box (SafeContext %v)", i, f.safeCtx)
				}
				if f.gnetLocal != f.local {
					t.Errorf("connection %d: gnet reports local %p, the Conn %p", i, f.gnetLocal, f.local)
				}
				shared := f.gnetLocal == facts[0].gnetLocal
				switch {
				case client && i > 0 && shared:
					t.Errorf("connection %d: a client's local address is shared", i)
				case !client && !shared:
					t.Errorf("connection %d: local address %p, not the shared %p", i, f.gnetLocal, facts[0].gnetLocal)
				}
				addr := f.local
				if client {
					addr = f.remote
				}
				if addr.String() != local {
					t.Errorf("connection %d: server address reads %s, want %s", i, addr, local)
				}
				if _, ok := f.remote.(*net.TCPAddr); !ok {
					t.Errorf("connection %d: remote address %T", i, f.remote)
				}
			}
		})
	}
}

// TestShareTCPAddr: equal addresses share the last one seen; a different
// one becomes the shared one; one with a zone is never shared (gnet
// recycles a closed connection's zone bytes).
func TestShareTCPAddr(t *testing.T) {
	a := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1).To4(), Port: 80}
	b := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1).To4(), Port: 80}
	c := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 2).To4(), Port: 80}
	if shareTCPAddr(a) != a || shareTCPAddr(b) != a {
		t.Fatal("an equal address did not share the first")
	}
	if shareTCPAddr(c) != c || shareTCPAddr(b) != b {
		t.Fatal("a different address did not replace the shared one")
	}
	z1 := &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}
	z2 := &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}
	if shareTCPAddr(z1) != z1 || shareTCPAddr(z2) != z2 {
		t.Fatal("an address with a zone was shared")
	}
}
