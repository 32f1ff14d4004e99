package engine

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/galews/gale/codec"
)

// The connection vocabulary shared by the event-loop Conn and the blocking
// ClientConn: the same names mean the same thing on both.

// connAPI is what both connection types offer; the test below fails to
// compile if either loses a name or changes its meaning's signature.
type connAPI interface {
	WriteMessage(op codec.Opcode, p []byte) error
	WriteText(p []byte) error
	WriteBinary(p []byte) error
	WriteFrame(op codec.Opcode, p []byte, fin bool) error
	Ping(p []byte) error
	Pong(p []byte) error
	Close(code codec.StatusCode, reason string) error
	LocalAddr() net.Addr
	RemoteAddr() net.Addr
	Subprotocol() string
}

var (
	_ connAPI = (*Conn)(nil)
	_ connAPI = (*ClientConn)(nil)
)

// apiHandler records, per connection, what the handler could reach.
type apiHandler struct {
	BaseHandler
	opened chan *Conn
	pongs  chan string
	closes chan error
}

func (h *apiHandler) OnOpen(c *Conn)             { offer(h.opened, c) }
func (h *apiHandler) OnPong(_ *Conn, p []byte)   { offer(h.pongs, string(p)) }
func (h *apiHandler) OnClose(_ *Conn, err error) { offer(h.closes, err) }
func (h *apiHandler) OnMessage(c *Conn, op codec.Opcode, p []byte) {
	c.WriteMessage(op, p)
}

func newAPIHandler() *apiHandler {
	return &apiHandler{opened: make(chan *Conn, 16), pongs: make(chan string, 16), closes: make(chan error, 16)}
}

// TestClientConnAPI: the blocking client's writes, addresses and the
// closing handshake with the meaning Conn gives them.
func TestClientConnAPI(t *testing.T) {
	h := newAPIHandler()
	srv := startServer(t, h, Config{Subprotocols: []string{"chat"}})
	c, err := Dial(t.Context(), wsURL(srv), &DialOptions{Subprotocols: []string{"chat"}})
	if err != nil {
		t.Fatal(err)
	}
	sc := recv(t, h.opened, "server OnOpen")
	if c.Subprotocol() != "chat" || sc.Subprotocol() != "chat" {
		t.Fatalf("subprotocol %q / %q, want chat on both ends", c.Subprotocol(), sc.Subprotocol())
	}
	if c.LocalAddr().String() != sc.RemoteAddr().String() || c.RemoteAddr().String() != sc.LocalAddr().String() {
		t.Fatalf("addresses do not mirror: client %v→%v, server %v←%v", c.LocalAddr(), c.RemoteAddr(), sc.LocalAddr(), sc.RemoteAddr())
	}
	if err := c.WriteText([]byte("héllo")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteBinary([]byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		op codec.Opcode
		p  string
	}{{codec.OpText, "héllo"}, {codec.OpBinary, "\x00\x01\x02"}} {
		op, p, err := c.ReadMessage()
		if err != nil || op != want.op || string(p) != want.p {
			t.Fatalf("echo %v %q %v, want %v %q", op, p, err, want.op, want.p)
		}
	}
	if err := c.Pong([]byte("beat")); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, h.pongs, "the unsolicited pong"); got != "beat" {
		t.Fatalf("pong %q", got)
	}

	// Close starts the handshake and returns; the answer is the next read.
	if err := c.Close(codec.StatusGoingAway, "bye"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(codec.StatusNormalClosure, ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v, want ErrClosed", err)
	}
	if err := c.WriteText([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close: %v, want ErrClosed", err)
	}
	_, _, err = c.ReadMessage()
	wantCloseError(t, err, codec.StatusGoingAway, nil)
	wantCloseError(t, recv(t, h.closes, "server OnClose"), codec.StatusGoingAway, nil)
	// The socket went with the answer.
	if _, err := c.NetConn().Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on the socket after the handshake: %v, want net.ErrClosed", err)
	}
}

// TestClientConnCloseTimeout: a Close nobody answers, and nobody reads,
// still lets go of the socket after CloseTimeout.
func TestClientConnCloseTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerGone := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		// Answer the upgrade, then read whatever comes and never answer.
		var req codec.Request
		buf := make([]byte, 4096)
		n := 0
		for {
			m, err := nc.Read(buf[n:])
			if err != nil {
				peerGone <- err
				return
			}
			n += m
			if _, err := req.Parse(buf[:n], 4096); err == nil {
				break
			}
		}
		nc.Write(codec.AppendUpgradeResponse(nil, req.Key, nil, nil, nil))
		nc.SetReadDeadline(time.Now().Add(testTimeout))
		for {
			if _, err := nc.Read(buf); err != nil {
				peerGone <- err
				return
			}
		}
	}()
	c, err := Dial(t.Context(), "ws://"+ln.Addr().String()+"/", &DialOptions{CloseTimeout: 150 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Close(codec.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, peerGone, "the client dropping the unanswered connection"); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the client kept the socket: %v", err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("dropped after %v, before CloseTimeout", d)
	}
}

// TestUserData: the value set by OnUpgrade reaches the Conn, and any
// goroutine may swap and read it (run with -race).
func TestUserData(t *testing.T) {
	type session struct{ user string }
	h := newAPIHandler()
	srv := startServer(t, h, Config{OnUpgrade: func(r *UpgradeRequest) error {
		r.UserData = &session{user: string(r.Query)}
		return nil
	}})
	c, err := Dial(t.Context(), wsURL(srv)+"?ada", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	sc := recv(t, h.opened, "OnOpen")
	if s, ok := sc.UserData().(*session); !ok || s.user != "ada" {
		t.Fatalf("UserData %#v, want the hook's session", sc.UserData())
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				if i%2 == 0 {
					sc.SetUserData(j)
				} else {
					_ = sc.UserData()
				}
			}
		}()
	}
	wg.Wait()
	if _, ok := sc.UserData().(int); !ok {
		t.Fatalf("UserData %#v after the writers, want an int", sc.UserData())
	}
	sc.SetUserData(nil)
	if sc.UserData() != nil {
		t.Fatal("SetUserData(nil) left a value")
	}
}

// TestConnOwner: a handler reaches its Server or Client from the Conn.
func TestConnOwner(t *testing.T) {
	h := newAPIHandler()
	srv := startServer(t, h, Config{})
	ch := newAPIHandler()
	cl := newTestClient(t, ch, Config{Loops: 1})
	cc, err := cl.Dial(t.Context(), wsURL(srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := recv(t, h.opened, "server OnOpen")
	if sc.Server() != srv || sc.Client() != nil {
		t.Fatalf("server conn: Server %p Client %p, want %p and nil", sc.Server(), sc.Client(), srv)
	}
	if cc.Client() != cl || cc.Server() != nil {
		t.Fatalf("client conn: Client %p Server %p, want %p and nil", cc.Client(), cc.Server(), cl)
	}
	if cc.LocalAddr() == nil || cc.LocalAddr().String() != sc.RemoteAddr().String() {
		t.Fatalf("client conn LocalAddr %v, server sees %v", cc.LocalAddr(), sc.RemoteAddr())
	}
}

// TestKeepRequest: the path, query and chosen headers outlive the upgrade
// only when asked for.
func TestKeepRequest(t *testing.T) {
	for _, keep := range []bool{false, true} {
		h := newAPIHandler()
		cfg := Config{}
		if keep {
			cfg.KeepHeaders = []string{"x-tenant", "Authorization"}
		}
		srv := startServer(t, h, cfg)
		hdr := http.Header{"X-Tenant": {"blue", "green"}, "Authorization": {"Bearer t"}, "X-Other": {"no"}}
		c, err := Dial(t.Context(), wsURL(srv)+"room/7?since=42", &DialOptions{Header: hdr})
		if err != nil {
			t.Fatal(err)
		}
		sc := recv(t, h.opened, "OnOpen")
		ri := sc.Request()
		if !keep {
			if ri != nil {
				t.Fatalf("kept %+v without KeepRequest", ri)
			}
			c.CloseNow()
			continue
		}
		if ri == nil || ri.Path != "/room/7" || ri.RawQuery != "since=42" {
			t.Fatalf("kept %+v, want /room/7 since=42", ri)
		}
		if got := ri.Header["X-Tenant"]; len(got) != 2 || got[0] != "blue" || got[1] != "green" {
			t.Fatalf("X-Tenant kept as %q", got)
		}
		if ri.Header.Get("Authorization") != "Bearer t" || ri.Header.Get("X-Other") != "" {
			t.Fatalf("headers kept %v, want X-Tenant and Authorization only", ri.Header)
		}
		c.CloseNow()
	}
}

// TestClientConfigMeansIt: a Client refuses settings it would ignore, and
// honours the dial options it takes.
func TestClientConfigMeansIt(t *testing.T) {
	for name, cfg := range map[string]Config{
		"OnUpgrade":      {OnUpgrade: func(*UpgradeRequest) error { return nil }},
		"AllowedOrigins": {AllowedOrigins: []string{"*"}},
		"Fallback":       {Fallback: http.NotFoundHandler()},
		"Subprotocols":   {Subprotocols: []string{"chat"}},
		"KeepRequest":    {KeepHeaders: []string{"X"}},
	} {
		if _, err := NewClient(BaseHandler{}, cfg); err == nil {
			t.Errorf("NewClient with %s: no error", name)
		}
	}
	srv := startServer(t, newAPIHandler(), Config{})
	cl := newTestClient(t, newAPIHandler(), Config{Loops: 1, MaxMessageSize: 1 << 20})
	for _, opts := range []DialOptions{
		{MaxMessageSize: 2 << 20},
		{MaxHeaderBytes: 1 << 10},
		{CloseTimeout: time.Second},
	} {
		if _, err := cl.Dial(t.Context(), wsURL(srv), &opts); !errors.Is(err, ErrDialOption) {
			t.Errorf("Dial with %+v: %v, want ErrDialOption", opts, err)
		}
	}
	// Equal to the Config's: fine.
	c, err := cl.Dial(t.Context(), wsURL(srv), &DialOptions{MaxMessageSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c.Close(codec.StatusNormalClosure, "")

	// HandshakeTimeout bounds a dial to a server that never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
		}
	}()
	start := time.Now()
	_, err = cl.Dial(context.Background(), "ws://"+ln.Addr().String()+"/", &DialOptions{HandshakeTimeout: 200 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dial to a silent server: %v, want the handshake timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the handshake timeout took %v", d)
	}
}
