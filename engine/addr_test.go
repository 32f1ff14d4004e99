package engine

import (
	"net"
	"slices"
	"strconv"
	"testing"
	"unsafe"
)

// TestConnAddrsCompact: the addresses an accepted connection keeps no
// longer point into the socket addresses Go's accept allocated, on each
// path a socket takes to a loop: every connection's local IP is one shared
// copy, each peer's IPv4 address is kept as its bytes, and both still print
// as the socket's addresses.
func TestConnAddrsCompact(t *testing.T) {
	for _, path := range []string{"accepted", "tls", "mounted"} {
		t.Run(path, func(t *testing.T) {
			h := newAPIHandler()
			url, local, opts := startOnPath(t, path, h)
			var conns []*Conn
			for range 3 {
				c, err := Dial(t.Context(), url, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				sc := recv(t, h.opened, "OnOpen")
				if got, want := sc.RemoteAddr().String(), c.LocalAddr().String(); got != want {
					t.Fatalf("server sees remote %s, the client dialled from %s", got, want)
				}
				if got := sc.LocalAddr().String(); got != local {
					t.Fatalf("server sees local %s, listening on %s", got, local)
				}
				conns = append(conns, sc)
			}
			ipOf := func(a net.Addr) net.IP { return a.(*net.TCPAddr).IP }
			first := unsafe.SliceData(ipOf(conns[0].LocalAddr()))
			for i, sc := range conns {
				if p := unsafe.SliceData(ipOf(sc.LocalAddr())); p != first {
					t.Errorf("connection %d: local IP at %p, not the shared copy at %p", i, p, first)
				}
				if sc.addrs.kind != kind4 {
					t.Errorf("connection %d: the peer's address is kept as kind %d, want its bytes (kind4)", i, sc.addrs.kind)
				}
			}
		})
	}
}

// startOnPath starts a server for h whose sockets take the given path to
// a loop: "accepted" (Gale's listener), "tls" (its TLS listener) or
// "mounted" (net/http's, through ServeHTTP). It returns the URL to dial,
// the server's address, and the options a Dial needs.
func startOnPath(t *testing.T, path string, h Handler) (url, local string, opts *DialOptions) {
	t.Helper()
	switch path {
	case "accepted":
		srv := startServer(t, h, Config{})
		return wsURL(srv), srv.Addr().String(), nil
	case "tls":
		srv := startTLSServer(t, h, Config{})
		return wssURL(srv), srv.Addr().String(), &DialOptions{TLSConfig: testCerts(t).client()}
	case "mounted":
		_, hs := mountServer(t, h, Config{})
		return mountURL(hs), hs.Listener.Addr().String(), nil
	}
	t.Fatalf("no path %q", path)
	return
}

// TestCompactTCPAddrsZone: each address gets a zone string of its own
// (gnet recycles a closed connection's zone bytes) with the same text.
func TestCompactTCPAddrsZone(t *testing.T) {
	zone := "eth0"
	la := &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: zone}
	ra := &net.TCPAddr{IP: net.ParseIP("fe80::2"), Port: 5000, Zone: zone}
	compactTCPAddrs(la, ra)
	for _, a := range []*net.TCPAddr{la, ra} {
		if a.Zone != zone {
			t.Errorf("zone %q, want %q", a.Zone, zone)
		}
		if unsafe.StringData(a.Zone) == unsafe.StringData(zone) {
			t.Errorf("%s shares its zone's bytes with the caller's string", a)
		}
		if len(a.IP) != net.IPv6len || cap(a.IP) != net.IPv6len {
			t.Errorf("%s: IP len %d cap %d", a, len(a.IP), cap(a.IP))
		}
	}
	if la.String() != "[fe80::1%eth0]:80" || ra.String() != "[fe80::2%eth0]:5000" {
		t.Errorf("addresses print as %s and %s", la, ra)
	}
}

func TestConnAddrs(t *testing.T) {
	tcpL := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 80}
	tcp4 := &net.TCPAddr{IP: net.IP{127, 0, 0, 2}, Port: 65535}
	tcp4in6 := &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5000} // 16 bytes, IPv4-mapped
	tcp6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 443}
	zoned := &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"}
	unixL := &net.UnixAddr{Name: "/tmp/s", Net: "unix"}
	unixR := &net.UnixAddr{Name: "@", Net: "unix"}
	var nilTCP *net.TCPAddr
	tests := []struct {
		name string
		l, r net.Addr
		kind addrKind
	}{
		{"ipv4", tcpL, tcp4, kind4},
		{"ipv4-mapped", tcpL, tcp4in6, kind4in6},
		{"ipv6", tcpL, tcp6, kindTCPPair},
		{"zone", tcpL, zoned, kindTCPPair},
		{"unix", unixL, unixR, kindPair},
		{"mixed", tcpL, unixR, kindPair},
		{"no remote", tcpL, nil, kindPair},
		{"nil tcp remote", tcpL, nilTCP, kindPair},
		{"none", nil, nil, kindPair},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := makeConnAddrs(tt.l, tt.r)
			if a.kind != tt.kind {
				t.Errorf("kept as kind %d, want %d", a.kind, tt.kind)
			}
			if got := a.local(); got != tt.l {
				t.Errorf("local() = %#v, want %#v", got, tt.l)
			}
			got := a.remote()
			if tt.kind == kindPair || tt.kind == kindTCPPair {
				if got != tt.r {
					t.Errorf("remote() = %#v, want %#v", got, tt.r)
				}
				return
			}
			// Kept as bytes: an equal address, IP of the same length, built
			// afresh on each call.
			want := tt.r.(*net.TCPAddr)
			ga, ok := got.(*net.TCPAddr)
			if !ok || !slices.Equal(ga.IP, want.IP) || ga.Port != want.Port || ga.Zone != "" || got.String() != want.String() {
				t.Fatalf("remote() = %#v, want %#v", got, want)
			}
			if again := a.remote(); again == got {
				t.Error("remote() returned the same object twice: a caller could change another's")
			}
			// One allocation per call, as RemoteAddr's comment says; the
			// local address is shared and costs none.
			if n := testing.AllocsPerRun(100, func() { _ = a.remote() }); n != 1 {
				t.Errorf("remote() makes %.1f allocations, want 1", n)
			}
			if n := testing.AllocsPerRun(100, func() { _ = a.local() }); n != 0 {
				t.Errorf("local() makes %.1f allocations, want 0", n)
			}
		})
	}
	var zero connAddrs
	if zero.local() != nil || zero.remote() != nil {
		t.Error("a zero connAddrs has addresses")
	}
}

// TestConnAddrsFamilies: what an accepted connection's addresses read as,
// end to end, for each way the Conn keeps them: an IPv4 peer as bytes, the
// same peer as a dual-stack listener reports it (IPv4-mapped), and an IPv6
// peer as two *net.TCPAddr.
func TestConnAddrsFamilies(t *testing.T) {
	tests := []struct {
		name, listen, dial string
		kind               addrKind
	}{
		{"ipv4", "127.0.0.1:0", "127.0.0.1", kind4},
		{"dual-stack", "[::]:0", "127.0.0.1", kind4in6},
		{"ipv6", "[::1]:0", "::1", kindTCPPair},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newAPIHandler()
			srv, err := NewServer(h, Config{})
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(tt.listen); err != nil {
				t.Skipf("cannot listen on %s here: %v", tt.listen, err)
			}
			t.Cleanup(func() { srv.Shutdown(t.Context()) })
			port := srv.Addr().(*net.TCPAddr).Port
			c, err := Dial(t.Context(), "ws://"+net.JoinHostPort(tt.dial, strconv.Itoa(port))+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			sc := recv(t, h.opened, "OnOpen")
			if sc.addrs.kind != tt.kind {
				t.Errorf("kept as kind %d, want %d", sc.addrs.kind, tt.kind)
			}
			if got, want := sc.RemoteAddr().String(), c.LocalAddr().String(); got != want {
				t.Errorf("server sees remote %s, the client dialled from %s", got, want)
			}
			if got, want := sc.LocalAddr().String(), c.RemoteAddr().String(); got != want {
				t.Errorf("server sees local %s, the client dialled %s", got, want)
			}
			// The connection works after its addresses were taken.
			if err := c.WriteText([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if _, p, err := c.ReadMessage(); err != nil || string(p) != "hello" {
				t.Errorf("echo %q, %v", p, err)
			}
		})
	}
}
