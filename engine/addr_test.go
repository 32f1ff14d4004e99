package engine

import (
	"net"
	"testing"
	"unsafe"
)

// TestConnAddrsCompact: the addresses an accepted connection keeps no
// longer point into the socket addresses Go's accept allocated, on each
// path a socket takes to a loop: every connection's local IP is one shared
// copy, each remote IP a copy of exactly its bytes, and both still print
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
				if rip := ipOf(sc.RemoteAddr()); len(rip) != 4 || cap(rip) != 4 {
					t.Errorf("connection %d: remote IP len %d cap %d, want its 4 bytes alone", i, len(rip), cap(rip))
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
	tcpL := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}
	tcpR := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5000}
	unixL := &net.UnixAddr{Name: "/tmp/s", Net: "unix"}
	unixR := &net.UnixAddr{Name: "@", Net: "unix"}
	var nilTCP *net.TCPAddr
	tests := []struct {
		name   string
		l, r   net.Addr
		packed bool // kept as two *net.TCPAddr, no addrPair
	}{
		{"tcp", tcpL, tcpR, true},
		{"unix", unixL, unixR, false},
		{"mixed", tcpL, unixR, false},
		{"no remote", tcpL, nil, false},
		{"nil tcp remote", tcpL, nilTCP, false},
		{"none", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := makeConnAddrs(tt.l, tt.r)
			if got := a.local(); got != tt.l {
				t.Errorf("local() = %#v, want %#v", got, tt.l)
			}
			if got := a.remote(); got != tt.r {
				t.Errorf("remote() = %#v, want %#v", got, tt.r)
			}
			if packed := a.ltcp != nil; packed != tt.packed {
				t.Errorf("packed as two TCP addresses: %v, want %v", packed, tt.packed)
			}
		})
	}
	var zero connAddrs
	if zero.local() != nil || zero.remote() != nil {
		t.Error("a zero connAddrs has addresses")
	}
}
