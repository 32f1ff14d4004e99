package engine_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

// echo sends every message back as it came.
type echo struct{ engine.BaseHandler }

func (echo) OnMessage(c *engine.Conn, op codec.Opcode, payload []byte) {
	// The payload is only valid during the call; WriteMessage copies or
	// sends it before returning, so passing it on is fine.
	c.WriteMessage(op, payload)
}

// start runs srv on a free loopback port and returns its ws:// URL.
func start(srv *engine.Server) string {
	if err := srv.Start("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	return "ws://" + srv.Addr().String()
}

// An echo server, and the blocking client talking to it.
func Example() {
	srv, err := engine.NewServer(echo{}, engine.Config{})
	if err != nil {
		log.Fatal(err)
	}
	url := start(srv)
	defer srv.Shutdown(context.Background())

	c, err := engine.Dial(context.Background(), url+"/", nil)
	if err != nil {
		log.Fatal(err)
	}
	c.WriteText([]byte("hello"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))

	// Close starts the closing handshake; the server's answer is the next read.
	c.Close(codec.StatusNormalClosure, "done")
	_, _, err = c.ReadMessage()
	fmt.Println(int(codec.CloseStatus(err)))
	// Output:
	// hello
	// 1000
}

// room is what OnUpgrade learnt about a connection, kept as its UserData.
type room struct{ name, user string }

// roomEcho prefixes each echo with the connection's room.
type roomEcho struct{ engine.BaseHandler }

func (roomEcho) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	r := c.UserData().(*room)
	c.WriteText([]byte(r.name + "/" + r.user + ": " + string(p)))
}

// Routing and authentication happen in OnUpgrade, before the 101 is sent:
// a *Reject refuses the upgrade with the status of your choice, and
// UserData carries what the hook learnt to the connection.
func ExampleConfig_onUpgrade() {
	tokens := map[string]string{"s3cret": "ada"}
	srv, _ := engine.NewServer(roomEcho{}, engine.Config{
		OnUpgrade: func(r *engine.UpgradeRequest) error {
			name, ok := strings.CutPrefix(string(r.Path), "/rooms/")
			if !ok || name == "" {
				return &engine.Reject{Status: 404, Body: "no such room\n"}
			}
			token, _ := r.Cookie("token")
			user, ok := tokens[string(token)]
			if !ok {
				return &engine.Reject{Status: 401, Body: "who are you?\n"}
			}
			r.UserData = &room{name: name, user: user}
			return nil
		},
	})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	_, err := engine.Dial(context.Background(), url+"/rooms/go", nil)
	fmt.Println(errors.Is(err, codec.ErrResponseStatus), strings.Contains(err.Error(), "401"))

	opts := &engine.DialOptions{Header: map[string][]string{"Cookie": {"token=s3cret"}}}
	_, err = engine.Dial(context.Background(), url+"/lobby", opts)
	fmt.Println(strings.Contains(err.Error(), "404"))

	c, err := engine.Dial(context.Background(), url+"/rooms/go", opts)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteText([]byte("hi"))
	_, p, _ := c.ReadMessage()
	fmt.Println(string(p))
	// Output:
	// true true
	// true
	// go/ada: hi
}

// slowLookup stands for a handler that blocks: a database query, a call to
// another service.
type slowLookup struct{ engine.BaseHandler }

func (slowLookup) OnMessage(c *engine.Conn, _ codec.Opcode, p []byte) {
	time.Sleep(10 * time.Millisecond) // never on an event loop: Config.Workers runs this
	c.WriteText([]byte("looked up " + string(p)))
}

// A handler that blocks must not run on the event loop, which serves
// thousands of other connections: Config.Workers moves OnMessage to a pool
// of goroutines, keeping each connection's messages in order.
func ExampleConfig_workers() {
	srv, _ := engine.NewServer(slowLookup{}, engine.Config{Workers: 4})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	c, err := engine.Dial(context.Background(), url+"/", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	for _, key := range []string{"a", "b", "c"} {
		c.WriteText([]byte(key))
	}
	for range 3 {
		_, p, _ := c.ReadMessage()
		fmt.Println(string(p))
	}
	// Output:
	// looked up a
	// looked up b
	// looked up c
}

// chat relays every message to everyone in the room, its sender included.
type chat struct {
	engine.BaseHandler
	joined chan struct{}
}

func (h chat) OnOpen(*engine.Conn) { h.joined <- struct{}{} }

func (chat) OnMessage(c *engine.Conn, op codec.Opcode, p []byte) {
	// Encoded once, however many receive it.
	pm, err := engine.NewPreparedMessage(op, p)
	if err != nil {
		return
	}
	c.Server().Broadcast(pm)
}

// A chat room: each message is encoded once and written by every loop to
// its own connections. Every connection open when Broadcast is called
// receives it once, in the order of the broadcasts.
func ExampleServer_Broadcast() {
	h := chat{joined: make(chan struct{}, 2)}
	srv, _ := engine.NewServer(h, engine.Config{})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	ada, _ := engine.Dial(context.Background(), url+"/", nil)
	bob, _ := engine.Dial(context.Background(), url+"/", nil)
	defer ada.CloseNow()
	defer bob.CloseNow()
	<-h.joined
	<-h.joined // both are in the room

	ada.WriteText([]byte("hi all"))
	_, p1, _ := ada.ReadMessage()
	fmt.Println("ada got:", string(p1))
	_, p2, _ := bob.ReadMessage()
	fmt.Println("bob got:", string(p2))
	// Output:
	// ada got: hi all
	// bob got: hi all
}

// Shutdown refuses new connections, sends every open one Close 1001 (going
// away) and waits for the answers until its context is done.
func ExampleServer_Shutdown() {
	srv, _ := engine.NewServer(echo{}, engine.Config{})
	url := start(srv)
	c, err := engine.Dial(context.Background(), url+"/", nil)
	if err != nil {
		log.Fatal(err)
	}
	read := make(chan error)
	go func() {
		_, _, err := c.ReadMessage() // answers the server's Close
		read <- err
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println("shutdown:", srv.Shutdown(ctx))
	fmt.Println("client saw:", int(codec.CloseStatus(<-read)))
	_, err = engine.Dial(context.Background(), url+"/", nil)
	fmt.Println("dial after shutdown fails:", err != nil)
	// Output:
	// shutdown: <nil>
	// client saw: 1001
	// dial after shutdown fails: true
}

// printer reports what an event-loop client's connections receive.
type printer struct {
	engine.BaseHandler
	got chan string
}

func (h printer) OnMessage(_ *engine.Conn, _ codec.Opcode, p []byte) { h.got <- string(p) }

// The event-loop client: many connections on a few loops, with the same
// Handler callbacks and Conn methods as the server (a load generator, a
// gateway to other WebSocket servers).
func ExampleClient() {
	srv, _ := engine.NewServer(echo{}, engine.Config{})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	h := printer{got: make(chan string, 16)}
	cl, err := engine.NewClient(h, engine.Config{Loops: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close(context.Background())
	for i := range 3 {
		c, err := cl.Dial(context.Background(), url+"/", nil)
		if err != nil {
			log.Fatal(err)
		}
		c.WriteText(fmt.Appendf(nil, "conn %d", i))
		fmt.Println(<-h.got)
	}
	fmt.Println("open:", cl.Stats().Open)
	// Output:
	// conn 0
	// conn 1
	// conn 2
	// open: 3
}

// The blocking client, for one connection in an ordinary program: reads
// from one goroutine, writes from any.
func ExampleDial() {
	srv, _ := engine.NewServer(echo{}, engine.Config{Subprotocols: []string{"v2.chat", "v1.chat"}})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	c, err := engine.Dial(context.Background(), url+"/", &engine.DialOptions{
		Subprotocols:     []string{"v2.chat"},
		HandshakeTimeout: 5 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("subprotocol:", c.Subprotocol())
	c.WriteFrame(codec.OpText, []byte("frag"), false)
	c.WriteFrame(codec.OpContinuation, []byte("mented"), true)
	op, p, _ := c.ReadMessage()
	fmt.Println(op == codec.OpText, string(p))
	c.Close(codec.StatusNormalClosure, "")
	_, _, err = c.ReadMessage()
	fmt.Println(int(codec.CloseStatus(err)))
	// Output:
	// subprotocol: v2.chat
	// true fragmented
	// 1000
}

// size reports the size of each message as the handler saw it.
type size struct {
	engine.BaseHandler
	got chan string
}

func (h size) OnOpen(c *engine.Conn) { h.got <- fmt.Sprint("compression: ", c.Compression()) }

func (h size) OnMessage(_ *engine.Conn, _ codec.Opcode, p []byte) {
	h.got <- fmt.Sprint(len(p), " bytes")
}

// permessage-deflate is negotiated when both sides enable it; messages
// are inflated before the handler sees them.
func ExampleCompressionConfig() {
	h := size{got: make(chan string, 4)}
	srv, _ := engine.NewServer(h, engine.Config{
		Compression: engine.CompressionConfig{Enabled: true},
	})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	cl, _ := engine.NewClient(engine.BaseHandler{}, engine.Config{
		Compression: engine.CompressionConfig{Enabled: true, Level: 9},
	})
	defer cl.Close(context.Background())
	c, err := cl.Dial(context.Background(), url+"/", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-h.got)
	c.WriteText([]byte(strings.Repeat("compressible ", 1000)))
	fmt.Println(<-h.got)
	// Output:
	// compression: true
	// 13000 bytes
}

// Gale mounted on an existing net/http server, next to its other routes:
// the upgrade is judged as on Gale's own listener, then the connection is
// handed to Gale's event loops and net/http's goroutine returns.
func ExampleServer_ServeHTTP() {
	srv, _ := engine.NewServer(echo{}, engine.Config{})
	defer srv.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("/ws", srv) // the loops start with the first upgrade
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	defer hs.Close()

	resp, err := http.Get("http://" + ln.Addr().String() + "/health")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print("health: ", string(body))

	c, err := engine.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer c.CloseNow()
	c.WriteText([]byte("through net/http"))
	_, p, _ := c.ReadMessage()
	fmt.Println("echo:", string(p))
	// Output:
	// health: ok
	// echo: through net/http
}

// ticker subscribes each connection to the topic its path names.
type ticker struct {
	engine.BaseHandler
	joined chan struct{}
}

func (h ticker) OnOpen(c *engine.Conn) {
	c.Subscribe(c.Request().Path)
	h.joined <- struct{}{}
}

// Topics: connections subscribe (here, to the path they asked for) and a
// publish, encoded once, reaches every subscriber of its topic on every
// loop, and no one else.
func ExampleServer_Publish() {
	h := ticker{joined: make(chan struct{}, 2)}
	srv, _ := engine.NewServer(h, engine.Config{KeepRequest: true})
	url := start(srv)
	defer srv.Shutdown(context.Background())

	gold, _ := engine.Dial(context.Background(), url+"/gold", nil)
	oil, _ := engine.Dial(context.Background(), url+"/oil", nil)
	defer gold.CloseNow()
	defer oil.CloseNow()
	<-h.joined
	<-h.joined

	srv.Publish("/gold", codec.OpText, []byte("gold 2417.30"))
	srv.Publish("/oil", codec.OpText, []byte("oil 71.12"))
	_, p, _ := gold.ReadMessage()
	fmt.Println(string(p))
	_, p, _ = oil.ReadMessage()
	fmt.Println(string(p))
	fmt.Println("subscribers of /gold:", srv.Subscribers("/gold"))
	// Output:
	// gold 2417.30
	// oil 71.12
	// subscribers of /gold: 1
}

// resumer greets each event stream from where its client left off, then
// ends the stream (an EventSource would reconnect with Last-Event-ID: 3).
type resumer struct{ engine.BaseHandler }

func (resumer) OnOpen(c *engine.Conn) {
	if !c.IsEventStream() {
		return
	}
	last, _ := c.UserData().(string)
	c.WriteEvent(engine.Event{Event: "resume", Data: []byte("after " + last), Retry: time.Second})
	for i := 2; i <= 3; i++ {
		c.WriteEvent(engine.Event{ID: fmt.Sprint(i), Data: []byte(fmt.Sprintf("tick %d\nof 3", i))})
	}
	c.Close(codec.StatusNormalClosure, "")
}

// Server-Sent Events on the same loops: OnEventStream accepts the stream
// (here only at /events), the handler writes events to it.
func ExampleConfig_eventStream() {
	srv, err := engine.NewServer(resumer{}, engine.Config{
		OnEventStream: func(r *engine.EventStreamRequest) error {
			if string(r.Path) != "/events" {
				return &engine.Reject{Status: http.StatusNotFound}
			}
			r.UserData = r.LastEventID
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	start(srv)
	defer srv.Shutdown(context.Background())

	req, _ := http.NewRequest("GET", "http://"+srv.Addr().String()+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Header.Get("Content-Type"))
	body, _ := io.ReadAll(resp.Body) // to the stream's end
	fmt.Print(string(body))
	// Output:
	// text/event-stream
	// event: resume
	// retry: 1000
	// data: after 1
	//
	// id: 2
	// data: tick 2
	// data: of 3
	//
	// id: 3
	// data: tick 3
	// data: of 3
}
