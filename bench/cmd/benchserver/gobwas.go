package main

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/gobwas/ws/wsutil"
	"github.com/klauspost/compress/flate"
)

// startGobwas serves gobwas's README echo with its zero-copy upgrade on the
// raw connection: a goroutine per connection, wsutil.ReadClientData then
// wsutil.WriteServerMessage, with the message limit its README asks for.
// With compression it follows wsflate's package example (a wsutil.Reader
// and Writer with wsflate.MessageState, a flate reader and writer per
// connection); with broadcast every message is compiled into one frame
// that is written to every connection in turn, under each connection's
// write lock.
func startGobwas(addr string, o serverOptions) (net.Addr, error) {
	wsutil.SetMaxMessageSize(maxMessage)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.tlsCert != "" { // a crypto/tls listener, as gobwas leaves TLS to the caller
		tc, err := o.tlsConfig()
		if err != nil {
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	}
	var b *gobwasBroadcast
	if o.broadcast {
		b = &gobwasBroadcast{conns: map[*gobwasConn]struct{}{}}
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of files, say: back off as net/http does
				time.Sleep(10 * time.Millisecond)
				continue
			}
			go func() {
				defer conn.Close()
				switch {
				case o.compress:
					gobwasDeflateEcho(conn)
				case b != nil:
					b.serve(conn)
				default:
					gobwasEcho(conn)
				}
			}()
		}
	}()
	return ln.Addr(), nil
}

func gobwasEcho(conn net.Conn) {
	if _, err := ws.Upgrade(conn); err != nil {
		return
	}
	for {
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(conn, op, msg); err != nil {
			return
		}
	}
}

// gobwasDeflateEcho is wsflate's package example, echoing each message
// compressed when it came compressed.
func gobwasDeflateEcho(conn net.Conn) {
	e := wsflate.Extension{Parameters: wsflate.DefaultParameters}
	u := ws.Upgrader{Negotiate: e.Negotiate}
	if _, err := u.Upgrade(conn); err != nil {
		return
	}
	fw := wsflate.NewWriter(nil, func(w io.Writer) wsflate.Compressor {
		f, _ := flate.NewWriter(w, flate.BestSpeed)
		return f
	})
	fr := wsflate.NewReader(nil, func(r io.Reader) wsflate.Decompressor {
		return flate.NewReader(r)
	})
	var msg wsflate.MessageState
	control := wsutil.ControlFrameHandler(conn, ws.StateServerSide)
	rd := wsutil.Reader{
		Source:         conn,
		State:          ws.StateServerSide | ws.StateExtended,
		Extensions:     []wsutil.RecvExtension{&msg},
		OnIntermediate: control,
		MaxFrameSize:   maxMessage,
	}
	wr := wsutil.NewWriter(conn, ws.StateServerSide|ws.StateExtended, 0)
	wr.SetExtensions(&msg)
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return
		}
		if h.OpCode.IsControl() {
			if err := control(h, &rd); err != nil {
				return
			}
			continue
		}
		compressed := msg.IsCompressed()
		wr.Reset(conn, ws.StateServerSide|ws.StateExtended, h.OpCode)
		msg.SetCompressed(compressed)
		if compressed {
			fr.Reset(&rd)
			fw.Reset(wr)
			if _, err := io.Copy(fw, fr); err != nil {
				return
			}
			if err := fw.Close(); err != nil {
				return
			}
		} else if _, err := io.Copy(wr, &rd); err != nil {
			return
		}
		if err := wr.Flush(); err != nil {
			return
		}
	}
}

type gobwasConn struct {
	mu   sync.Mutex
	conn net.Conn
}

type gobwasBroadcast struct {
	mu    sync.Mutex
	conns map[*gobwasConn]struct{}
}

func (b *gobwasBroadcast) serve(conn net.Conn) {
	if _, err := ws.Upgrade(conn); err != nil {
		return
	}
	c := &gobwasConn{conn: conn}
	b.mu.Lock()
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	for {
		msg, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		frame, err := ws.CompileFrame(ws.NewFrame(op, true, msg))
		if err != nil {
			return
		}
		b.mu.Lock()
		for o := range b.conns {
			o.mu.Lock()
			o.conn.Write(frame)
			o.mu.Unlock()
		}
		b.mu.Unlock()
	}
}
