package engine

import (
	"bytes"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/pool"
)

// permessage-deflate (RFC 7692). The codec negotiates; this file compresses
// and inflates with klauspost/compress/flate. Each loop keeps one compressor
// and one decompressor (taken from package pool) for the message it is
// handling; other goroutines borrow a compressor from the pool per write. So
// without context takeover a connection keeps nothing between messages.
// With it, a connection keeps only its windows: the last 2^bits bytes (at
// most 32 KiB) of the messages it compressed and of those it inflated, as
// dictionaries to prime the next compressor or decompressor with.
//
// Windows (RFC 7692 §7.1.2): we compress under the window the peer allowed
// us (server_max_window_bits for a server, client_max_window_bits for a
// client, capped by Config.Compression.MaxWindowBits), with a compressor of
// exactly that window: compressors are keyed by level and window, the
// loop's and the pooled ones alike. We inflate with a 32 KiB window, which
// reads any smaller one; the peer's bits only bound the history we keep.

// deflateTail is the empty stored block that ends every compressed message
// and that the sender strips (RFC 7692 §7.2.1); the receiver puts it back.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// deflateState is a connection's permessage-deflate state; the zero value
// is compression off. Set at the upgrade, then owned by the loop.
type deflateState struct {
	on         bool
	compressed bool  // the message being read has RSV1 set
	txReset    bool  // we compress every message afresh (our no_context_takeover)
	rxReset    bool  // the peer does, so received messages need no window
	rxBits     uint8 // the peer's window bits: how much of rx it may refer to
	txBits     uint8 // our window bits: how far back what we send may refer
}

// deflateWindows are the windows kept with context takeover, from package
// pool: the tail of what we compressed and sent, and of what we inflated.
// They live in connExtra: most connections never keep one, and an idle
// server holds one Conn per connection.
type deflateWindows struct {
	tx, rx *[]byte
}

// enableDeflate puts the negotiated parameters in force for either role: a
// server compresses under the server_* parameters and inflates under the
// client_* ones, a client the other way round.
func (c *Conn) enableDeflate(p codec.DeflateParams) {
	c.dfl = newDeflateState(p, &c.loop.srv.cfg.Compression, c.client)
}

// newDeflateState is the state in force for negotiated parameters p under
// our config z; the event-loop connections and the blocking client share
// it so that both roles read the parameters the same way.
func newDeflateState(p codec.DeflateParams, z *CompressionConfig, client bool) deflateState {
	ours, peers, ourBits, peerBits := p.ServerNoContextTakeover, p.ClientNoContextTakeover, p.ServerMaxWindowBits, p.ClientMaxWindowBits
	if client {
		ours, peers, ourBits, peerBits = p.ClientNoContextTakeover, p.ServerNoContextTakeover, p.ClientMaxWindowBits, p.ServerMaxWindowBits
	}
	return deflateState{
		on:      true,
		txReset: ours || !z.ContextTakeover,
		rxReset: peers,
		rxBits:  windowBits(peerBits, 0),
		txBits:  windowBits(ourBits, z.MaxWindowBits), // we may always use less than allowed
	}
}

// windowBits returns the window bits in force for a negotiated n (0, or
// WindowBitsNoValue, for no limit: 15) under our own cap (0 for none).
func windowBits(n, limit int) uint8 {
	if n < pool.MinFlateWindowBits || n > pool.MaxFlateWindowBits {
		n = pool.MaxFlateWindowBits
	}
	if limit >= pool.MinFlateWindowBits && limit < n {
		n = limit
	}
	return uint8(n)
}

// releaseDeflate gives the windows back when the connection closes.
func (c *Conn) releaseDeflate() {
	if x := c.ext.Load(); x != nil {
		pool.Put(x.win.tx)
		pool.Put(x.win.rx)
		x.win = deflateWindows{}
	}
}

// dropTx forgets the send window after a message went out that was not
// compressed with it (a broadcast, a write from another goroutine): the
// window we compress against must always be a suffix of what the peer has
// inflated, and the empty window is.
func (c *Conn) dropTx() {
	if x := c.ext.Load(); x != nil && x.win.tx != nil {
		*x.win.tx = (*x.win.tx)[:0]
	}
}

// Compression reports whether permessage-deflate is in force on the
// connection.
func (c *Conn) Compression() bool { return c.dfl.on }

// policy is what a server accepts of permessage-deflate offers: any window
// 8..15 the client asks for, our cap on both windows if any.
func (z *CompressionConfig) policy() codec.DeflatePolicy {
	return codec.DeflatePolicy{
		ServerNoContextTakeover: !z.ContextTakeover,
		ClientNoContextTakeover: !z.ContextTakeover,
		ServerMaxWindowBits:     z.MaxWindowBits,
		ClientMaxWindowBits:     z.MaxWindowBits,
	}
}

// offer is what a client offers: both no_context_takeover unless context
// takeover is wanted, and client_max_window_bits, without a value so the
// server may set our window (any 8..15 is honoured), or with our cap along
// with server_max_window_bits of the same.
func (z *CompressionConfig) offer() codec.DeflateParams {
	o := codec.DeflateParams{
		ServerNoContextTakeover: !z.ContextTakeover,
		ClientNoContextTakeover: !z.ContextTakeover,
		ClientMaxWindowBits:     codec.WindowBitsNoValue,
	}
	if z.MaxWindowBits >= 8 && z.MaxWindowBits <= 15 {
		o.ServerMaxWindowBits, o.ClientMaxWindowBits = z.MaxWindowBits, z.MaxWindowBits
	}
	return o
}

var extensionsField = []byte("Sec-WebSocket-Extensions")

// negotiateDeflate reads the request's Sec-WebSocket-Extensions lines in
// order and returns the response to the first permessage-deflate offer the
// policy accepts.
func negotiateDeflate(req *codec.Request, policy codec.DeflatePolicy) (codec.DeflateParams, bool) {
	s := req.Headers()
	for {
		name, value, ok := s.Next()
		if !ok {
			return codec.DeflateParams{}, false
		}
		if !bytes.EqualFold(name, extensionsField) {
			continue
		}
		if p, ok := codec.NegotiateDeflate(value, policy); ok {
			return p, true
		}
	}
}

// inflate decompresses the message reassembled in c.msg (RFC 7692 §7.2.2)
// into a buffer that the caller gives back with loop.z.putMsg. It stops with
// codec.ErrMessageTooBig as soon as the output would pass MaxMessageSize,
// so a small message that inflates to gigabytes costs no more than the
// limit; data that does not inflate is codec.ErrDeflateData. Loop only.
func (c *Conn) inflate() (*[]byte, error) {
	l := c.loop
	limit := int(l.srv.cfg.MaxMessageSize)
	c.appendMsg(deflateTail)
	in := *c.msg
	var dict []byte
	if x := c.ext.Load(); !c.dfl.rxReset && x != nil && x.win.rx != nil {
		dict = *x.win.rx
	}
	src := &l.z.src
	src.Reset(in)
	fr := l.z.reader(src, dict)
	out, err := inflateLimited(fr, src, l.z.getMsg(inflateHint(len(in), limit)), limit)
	if err != nil {
		l.z.putMsg(out)
		return nil, err
	}
	if !c.dfl.rxReset {
		x := c.extra()
		x.win.rx = pushWindow(x.win.rx, *out, 1<<c.dfl.rxBits)
	}
	return out, nil
}

// inflateHint is the size of the first buffer to inflate n bytes into.
func inflateHint(n, limit int) int { return min(limit, max(8*n, 4096)) }

// inflateLimited reads fr, a decompressor of the message in src (its tail
// put back), into out (from package pool), growing it through the pool
// but never past limit bytes: one byte more fails with
// codec.ErrMessageTooBig, so what a compression bomb costs is the limit,
// not its inflated size. Data that does not inflate fails with
// codec.ErrDeflateData. It returns the buffer holding the output, which
// the caller gives back in either case.
func inflateLimited(fr io.Reader, src *bytes.Reader, out *[]byte, limit int) (*[]byte, error) {
	buf := (*out)[:min(cap(*out), limit)]
	n := 0
	var err error
	for err == nil {
		if n == len(buf) {
			if n == limit {
				// Full: one byte more is one too many.
				var one [1]byte
				if m, e := fr.Read(one[:]); m > 0 {
					err = codec.ErrMessageTooBig
				} else {
					err = e
				}
				break
			}
			*out = buf
			out = pool.Grow(out, min(max(2*n, 4096), limit))
			buf = (*out)[:min(cap(*out), limit)]
		}
		var m int
		m, err = fr.Read(buf[n:])
		n += m
	}
	*out = buf[:n]
	switch {
	case err == io.ErrUnexpectedEOF && src.Len() == 0:
		// The usual end: the input stops after the sync flush's empty block.
	case err == io.EOF && src.Len() <= len(deflateTail):
		// A final block (BFINAL), which leaves our tail unread.
	case err == codec.ErrMessageTooBig:
		return out, err
	default:
		return out, codec.ErrDeflateData
	}
	return out, nil
}

// pushWindow appends p to the window w (nil when empty) and keeps its last
// size bytes, growing w through the pool up to size.
func pushWindow(w *[]byte, p []byte, size int) *[]byte {
	if len(p) >= size {
		w = pool.Grow(w, size)
		copy(*w, p[len(p)-size:])
		*w = (*w)[:size]
		return w
	}
	if w == nil {
		w = pool.Get(0)
	}
	n := len(*w)
	keep := min(n, size-len(p))
	copy(*w, (*w)[n-keep:n])
	*w = (*w)[:keep]
	w = pool.Grow(w, keep+len(p))
	copy((*w)[keep:], p)
	return w
}

// deflateLoop compresses p, a message to send, with the loop's compressor
// and, with context takeover, the connection's send window. The result is
// valid until the loop compresses again; ok is false when compression does
// not make p smaller (it is then sent plain). Loop only.
func (c *Conn) deflateLoop(p []byte) (z []byte, ok bool) {
	var dict []byte
	if x := c.ext.Load(); !c.dfl.txReset && x != nil && x.win.tx != nil {
		dict = *x.win.tx
	}
	return c.loop.z.out.deflate(p, c.loop.srv.cfg.Compression.Level, c.dfl.txBits, dict)
}

// preparedFrame returns the frame of pm to send on c: compressed for a
// connection with permessage-deflate (built once per window size, by the
// first connection with that window that needs it, at that server's
// level), else the plain one.
func (c *Conn) preparedFrame(pm *PreparedMessage) (frame []byte, compressed bool) {
	if c.stream {
		return pm.event(), false
	}
	cfg := &c.loop.srv.cfg.Compression
	if !c.dfl.on || pm.n < cfg.Threshold {
		return pm.frame, false
	}
	zf := &pm.z[c.dfl.txBits-pool.MinFlateWindowBits]
	zf.once.Do(func() { zf.frame = deflateFrame(pm.op, pm.payload(), cfg.Level, c.dfl.txBits) })
	if zf.frame == nil {
		return pm.frame, false
	}
	return zf.frame, true
}

// deflateFrame returns a whole server frame of p compressed with no
// dictionary under a 2^bits window, or nil when compression does not make
// it smaller.
func deflateFrame(op codec.Opcode, p []byte, level int, bits uint8) []byte {
	s := sinks.Get().(*sink)
	defer sinks.Put(s)
	z, ok := s.deflate(p, level, bits, nil)
	if !ok {
		s.trim()
		return nil
	}
	h := codec.Header{Fin: true, Rsv: codec.Rsv1, Opcode: op}
	frame := codec.AppendFrame(make([]byte, 0, codec.MaxHeaderLen+len(z)), h, z)
	s.trim()
	return frame
}

// loopDeflate is a loop's compression state: scratch space, and one
// decompressor and one compressor kept from message to message. They belong
// to the loop, not to a connection (a loop runs one connection's message at
// a time), so a busy loop never goes to a sync.Pool for them; they cost about
// 40 KiB and 1 MiB per loop that has compressed or inflated a message. The
// compressor is of one level and window: when the next message needs
// another window, it goes back to the pool and one of that window comes
// out, so a loop whose connections negotiated different windows swaps
// between messages (a sync.Pool Get and Put) but still holds one.
type loopDeflate struct {
	src bytes.Reader  // the message being inflated
	fr  io.ReadCloser // the decompressor, once one was needed
	msg *[]byte       // spare buffer for inflated messages
	out sink          // the compressor and its output, for writes on the loop
}

// reader returns the loop's decompressor reading src, primed with dict.
func (z *loopDeflate) reader(src io.Reader, dict []byte) io.ReadCloser {
	if z.fr == nil {
		z.fr = pool.GetFlateReader(src, dict)
	} else {
		z.fr.(flate.Resetter).Reset(src, dict)
	}
	return z.fr
}

// getMsg returns a buffer for an inflated message, of capacity at least
// hint when it comes from the pool.
func (z *loopDeflate) getMsg(hint int) *[]byte {
	if b := z.msg; b != nil {
		z.msg = nil
		return b
	}
	return pool.Get(hint)
}

// putMsg takes back a buffer from getMsg, keeping it unless it is over
// maxSpare.
func (z *loopDeflate) putMsg(b *[]byte) {
	if z.msg != nil || cap(*b) > maxSpare {
		pool.Put(b)
		return
	}
	z.msg = b
}

// sink is a compressor with its output buffer (from package pool): an
// io.Writer that appends.
type sink struct {
	b     *[]byte
	fw    *flate.Writer // kept between messages, at level with a 2^bits window
	level int
	bits  uint8
}

// sinks serve compression off the loops.
var sinks = sync.Pool{New: func() any { return new(sink) }}

func (s *sink) Write(p []byte) (int, error) {
	n := 0
	if s.b != nil {
		n = len(*s.b)
	}
	s.b = pool.Grow(s.b, n+len(p))
	copy((*s.b)[n:], p)
	return len(p), nil
}

// deflate compresses p as one permessage-deflate message into s, emptied
// first, with dict as the window of earlier messages and back-references
// at most 2^bits bytes long: a sync flush with the tail stripped (RFC 7692
// §7.2.1). The result is valid until s is used again. ok is false when it
// is not smaller than p.
func (s *sink) deflate(p []byte, level int, bits uint8, dict []byte) (z []byte, ok bool) {
	if s.b != nil {
		*s.b = (*s.b)[:0]
	}
	if len(dict) > 1<<bits {
		dict = dict[len(dict)-1<<bits:] // out of reach anyway
	}
	switch {
	case s.fw == nil || s.level != level || s.bits != bits:
		if s.fw != nil {
			pool.PutFlateWriterWindow(s.fw, s.level, int(s.bits))
		}
		s.fw, s.level, s.bits = pool.GetFlateWriterWindow(s, level, int(bits), dict), level, bits
	default:
		// ResetDict, not Reset: Reset would prime with the last dictionary.
		s.fw.ResetDict(s, dict)
	}
	s.fw.Write(p) // a sink does not fail
	s.fw.Flush()
	if len(dict) > 0 {
		s.fw.ResetDict(s, nil) // let go of the connection's window
	}
	z = *s.b
	if !bytes.HasSuffix(z, deflateTail) {
		return nil, false // not a flate stream we know; send it plain
	}
	z = z[:len(z)-len(deflateTail)]
	return z, len(z) < len(p)
}

// trim drops an output buffer too big to keep between messages.
func (s *sink) trim() {
	if s.b != nil && cap(*s.b) > maxSpare {
		pool.Put(s.b)
		s.b = nil
	}
}

// deliverDeflated inflates the compressed message just completed, checks
// it and hands it to the handler (a FrameHandler gets it as one final
// frame). On failure the connection is failed. Loop only.
func (c *Conn) deliverDeflated() {
	op := c.msgOp
	c.msgOp, c.msgLen = 0, 0
	out, err := c.inflate()
	c.releaseMsg()
	if err == nil && op == codec.OpText && !(c.utf8.Write(*out) && c.utf8.Done()) {
		c.loop.z.putMsg(out)
		err = codec.ErrInvalidUTF8
	}
	if err != nil {
		c.fail(err)
		return
	}
	held := int64(cap(*out)) // counts in the memory budget while the handler has it
	c.loop.srv.mem.add(held)
	if c.loop.srv.frames != nil {
		c.dispatchFrame(op, true, *out)
	} else {
		c.dispatchMessage(op, *out)
	}
	c.loop.srv.mem.add(-held)
	c.loop.z.putMsg(out)
}

// offerValue is the Sec-WebSocket-Extensions value a client sends: its
// permessage-deflate offer, or "" with compression off. For the client role.
func (z *CompressionConfig) offerValue() string {
	if !z.Enabled {
		return ""
	}
	return string(codec.AppendDeflateOffer(nil, z.offer()))
}

// acceptDeflate puts in force what the server answered to the client's
// offer (resp.Validate has checked that it names nothing else); nothing
// when the server declined. For the client role.
func (c *Conn) acceptDeflate(resp *codec.Response) error {
	z := &c.loop.srv.cfg.Compression
	p, ok, err := z.accept(resp)
	if ok {
		c.enableDeflate(p)
	}
	return err
}

// accept reads the server's answer to the offer z made (offerValue): the
// parameters in force, ok false when the server declined (or z offered
// nothing), and an error for an answer that names parameters we did not
// offer or cannot honour. Both clients take their answer from here.
func (z *CompressionConfig) accept(resp *codec.Response) (p codec.DeflateParams, ok bool, err error) {
	ext := resp.Header("Sec-WebSocket-Extensions")
	if !z.Enabled || len(ext) == 0 {
		return p, false, nil
	}
	if p, err = codec.ParseDeflateResponse(ext, z.offer()); err != nil {
		return p, false, err
	}
	return p, true, nil
}
