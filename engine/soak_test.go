package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/flate"

	"github.com/galews/gale/codec"
)

var (
	soakDuration = flag.Duration("soak", 0, "TestSoak: traffic for this long (e.g. 10m; give go test a -timeout a few minutes longer); 0 runs the short CI version")
	soakRand     = flag.Uint64("soakrand", 0, "TestSoak: the random generator's starting value (0: from the clock; it is logged)")
	soakConns    = flag.Int("soakconns", 200, "TestSoak: connections echoing for the whole run")
)

// Short mode: long enough for every kind of traffic to happen many times,
// short enough for -race on two cores.
const soakShort = 5 * time.Second

// TestSoak runs a child echo server under mixed traffic, all at once:
// -soakconns connections (half with permessage-deflate, a raw-frame client
// compressing every message, fragmented ones too; the other half plain,
// Gale's Dial) echoing text and binary messages of 0–256 KiB, some
// fragmented (with pings between fragments and multi-byte runes split
// across frames), every echo checked byte for byte
// and in order; churning clients that connect, echo a few messages and
// leave cleanly (1000) or by dropping TCP (some mid-frame); a few slow
// readers; and stallers that send without ever reading. It samples the
// child's RSS, descriptors and goroutines every second and checks, after
// everyone left, that descriptors and goroutines are back to their baseline,
// RSS near it, and that the server saw every close the clients made.
func TestSoak(t *testing.T) {
	dur := *soakDuration
	if dur == 0 {
		dur = soakShort
	}
	if dl, ok := t.Deadline(); ok && time.Until(dl) < dur+2*time.Minute {
		t.Fatalf("-soak=%v does not fit in the test timeout (%v left): run with -timeout %v", dur, time.Until(dl).Round(time.Second), (dur + 5*time.Minute).Round(time.Minute))
	}
	rstart := *soakRand
	if rstart == 0 {
		rstart = uint64(time.Now().UnixNano())
	}
	t.Logf("random start %d (rerun with -soakrand=%d)", rstart, rstart)

	ch := startChild(t, childConfig{Compression: true})
	base := soakBaseline(t, ch)
	t.Logf("child pid %d at %s: baseline RSS %.1f MiB, %d fds, %d goroutines", ch.pid, ch.addr, mib(base.rss), base.fds, base.goroutines)

	s := &soak{t: t, url: ch.url(), src: newSoakSource(rstart), stop: make(chan struct{})}
	var wg sync.WaitGroup
	start := time.Now()
	for i := range *soakConns {
		kind := soakDeflate
		if i%2 == 1 {
			kind = soakGale
		}
		wg.Go(func() { s.echoer(i, kind, rstart, 4, 256<<10, 0) })
	}
	for i := range 4 { // slow readers: a deep window, small messages, naps between reads
		wg.Go(func() { s.echoer(10000+i, soakKind(i%2), rstart, 32, 64<<10, 50*time.Millisecond) })
	}
	for i := range 8 {
		wg.Go(func() { s.churner(20000+i, rstart) })
	}
	for i := range 2 {
		wg.Go(func() { s.staller(30000 + i) })
	}

	// Sample the child every second while the traffic runs.
	peak := base
	// GET /stats is answered on a busy event loop: a slow or failed one is
	// counted and logged (its latency is not what this test checks), three
	// failures in a row fail the test.
	var statsSlowest time.Duration
	statsFailures, statsFailedInARow := 0, 0
	sample := func() childSample {
		cs := childSample{rss: ch.rss(), fds: ch.fds(), goroutines: -1}
		t0 := time.Now()
		st, err := ch.stats()
		statsSlowest = max(statsSlowest, time.Since(t0))
		if err == nil {
			cs.goroutines = st.Goroutines
			cs.st = st
			statsFailedInARow = 0
		} else {
			statsFailures++
			statsFailedInARow++
			t.Logf("%5.1fs: GET /stats: %v", time.Since(start).Seconds(), err)
			if statsFailedInARow == 3 {
				s.fail("GET /stats failed 3 times in a row: %v", err)
			}
		}
		peak.rss, peak.fds, peak.goroutines = max(peak.rss, cs.rss), max(peak.fds, cs.fds), max(peak.goroutines, cs.goroutines)
		return cs
	}
	// A sample waits for GET /stats, which runs on a busy event loop: under
	// -race the first ones can take seconds, which stretches the run.
	tick := time.NewTicker(time.Second)
	lastLog := start
	for end := start.Add(dur); time.Now().Before(end) && !s.failed(); {
		<-tick.C
		cs := sample()
		if time.Since(lastLog) >= 10*time.Second || dur <= soakShort {
			lastLog = time.Now()
			t.Logf("%5.1fs: RSS %6.1f MiB, %4d fds, %4d goroutines, heap in use %6.1f MiB; verified %d msgs, %.1f MiB; churned %d, stalled %d",
				time.Since(start).Seconds(), mib(cs.rss), cs.fds, cs.goroutines, mib(int64(cs.st.HeapInuse)),
				s.msgs.Load(), mib(s.bytes.Load()), s.clean.Load()+s.abrupt.Load(), s.stalls.Load())
		}
	}
	tick.Stop()
	close(s.stop)
	traffic := time.Since(start)

	// Every client finishes its window, closes and returns; each of its waits
	// is bounded, this is the backstop.
	allDone := make(chan struct{})
	go func() { wg.Wait(); close(allDone) }()
	select {
	case <-allDone:
	case <-time.After(90 * time.Second):
		t.Fatalf("clients still running 90 s after the traffic stopped")
	}
	for _, e := range s.errorList() {
		t.Error(e)
	}

	// The server sees every connection close, and each the way it ended.
	var st Stats
	settled := waitFor(20*time.Second, func() bool {
		x, err := ch.stats()
		st = x.Stats
		return err == nil && st.Open == 1 && closesSum(st) == st.Upgrades // Open counts the stats request itself
	})
	if !settled {
		t.Errorf("server not settled 20 s after the clients left: open %d (the stats request included), upgrades %d, closes %v", st.Open, st.Upgrades, st.Closes)
	}
	wantClean := s.cleanConns.Load() + s.clean.Load()
	wantDropped := s.abrupt.Load() + s.stalls.Load()
	gotDropped := st.Closes[codec.StatusAbnormalClosure] + st.Closes[codec.StatusPolicyViolation]
	if st.Upgrades != wantClean+wantDropped || st.Closes[codec.StatusNormalClosure] != wantClean || gotDropped != wantDropped {
		t.Errorf("closes seen by the server %v (%d upgrades); the clients made %d upgrades, closed %d with 1000 and dropped %d (%d churners, %d stallers)",
			st.Closes, st.Upgrades, wantClean+wantDropped, wantClean, wantDropped, s.abrupt.Load(), s.stalls.Load())
	}
	if st.MessagesIn < uint64(s.msgs.Load()) || st.MessagesOut < uint64(s.msgs.Load()) {
		t.Errorf("server counted %d messages in and %d out, the clients verified %d echoes", st.MessagesIn, st.MessagesOut, s.msgs.Load())
	}

	// Descriptors and goroutines back to baseline; RSS near it.
	var final childSample
	back := waitFor(15*time.Second, func() bool {
		final = sample()
		return final.fds == base.fds && final.goroutines == base.goroutines
	})
	if !back {
		t.Errorf("15 s after the clients left: %d fds (baseline %d), %d goroutines (baseline %d)", final.fds, base.fds, final.goroutines, base.goroutines)
	}
	// The server returns a burst's memory within seconds of going quiet
	// (limits.go: releaseAfterBurst); under -race
	// the detector's shadow memory is never given back.
	var rssSlack int64 = 32 << 20
	if soakRace {
		rssSlack = 256 << 20
	}
	rssOK := waitFor(10*time.Second, func() bool { final.rss = ch.rss(); return final.rss <= base.rss+rssSlack })
	if !rssOK {
		t.Errorf("RSS %.1f MiB 10 s after the clients left, baseline %.1f MiB (+%d MiB allowed), peak %.1f MiB", mib(final.rss), mib(base.rss), rssSlack>>20, mib(peak.rss))
	}
	if ch.raced() {
		t.Errorf("the race detector fired in the child")
	}
	t.Logf("SOAK rand=%d traffic=%v conns=%d(+4 slow readers, half deflate) churned=%d(clean %d, dropped %d) stallers=%d: verified %d msgs / %.1f MiB (%d fragmented) = %.0f msg/s, %.1f MiB/s; server in/out %d/%d msgs; child RSS base/peak/final %.1f/%.1f/%.1f MiB, fds %d/%d/%d, goroutines %d/%d/%d; GET /stats slowest %v, %d failed",
		rstart, traffic.Round(time.Second), *soakConns, s.clean.Load()+s.abrupt.Load(), s.clean.Load(), s.abrupt.Load(), s.stalls.Load(),
		s.msgs.Load(), mib(s.bytes.Load()), s.frags.Load(), float64(s.msgs.Load())/traffic.Seconds(), mib(s.bytes.Load())/traffic.Seconds(),
		st.MessagesIn, st.MessagesOut,
		mib(base.rss), mib(peak.rss), mib(final.rss), base.fds, peak.fds, final.fds, base.goroutines, peak.goroutines, final.goroutines,
		statsSlowest.Round(time.Millisecond), statsFailures)
}

type childSample struct {
	rss        int64
	fds        int
	goroutines int
	st         childStats
}

// soakBaseline samples an idle child (after one stats request has warmed
// the route up).
func soakBaseline(t *testing.T, ch *child) childSample {
	t.Helper()
	if _, err := ch.stats(); err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	st, err := ch.stats()
	if err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // the stats connection closes
	return childSample{rss: ch.rss(), fds: ch.fds(), goroutines: st.Goroutines, st: st}
}

// waitFor polls cond every 100 ms until it holds or d passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

func closesSum(st Stats) uint64 {
	var n uint64
	for _, v := range st.Closes {
		n += v
	}
	return n
}

type soak struct {
	t    *testing.T
	url  string
	src  *soakSource
	stop chan struct{}

	msgs, bytes, frags atomic.Int64
	cleanConns         atomic.Uint64 // echoers and slow readers that closed with 1000
	clean, abrupt      atomic.Uint64 // churners by how they left
	stalls             atomic.Uint64 // staller connections

	mu   sync.Mutex
	errs []string
	nerr int
}

func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nerr++
	if len(s.errs) < 20 {
		s.errs = append(s.errs, fmt.Sprintf(format, args...))
	}
}

func (s *soak) failed() bool { s.mu.Lock(); defer s.mu.Unlock(); return s.nerr > 0 }

func (s *soak) errorList() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nerr > len(s.errs) {
		return append(s.errs, fmt.Sprintf("… %d errors in all", s.nerr))
	}
	return s.errs
}

func (s *soak) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// soakSource holds the bytes messages are cut from: text with many
// multi-byte runes (compressible: it repeats words) and binary, half random
// and half patterned.
type soakSource struct{ text, bin []byte }

const soakSourceLen = 320 << 10 // > the largest message

func newSoakSource(rstart uint64) *soakSource {
	rng := rand.New(rand.NewPCG(rstart, 1))
	words := []string{"gale", "wind", "the", "of", "héllo", "naïve", "€", "日本語", "テキスト", "😀", "🎉🎊", "Ωμέγα", "Ђура", "中文字符", "ß", "\U0010FFFD", " ", " ", "\n"}
	var text []byte
	for len(text) < soakSourceLen {
		text = append(text, words[rng.IntN(len(words))]...)
	}
	bin := make([]byte, soakSourceLen)
	for i := range bin[:len(bin)/2] {
		bin[i] = byte(rng.Uint32())
	}
	for i := len(bin) / 2; i < len(bin); i++ {
		bin[i] = byte(i % 251)
	}
	return &soakSource{text: text, bin: bin}
}

// soakMsg is one message sent and expected back: hdr (conn and sequence
// number, when the message is long enough to hold it) then a cut of the
// source.
type soakMsg struct {
	op   codec.Opcode
	seq  int
	hdr  []byte
	body []byte
}

func (m *soakMsg) size() int { return len(m.hdr) + len(m.body) }

func (m *soakMsg) appendTo(b []byte) []byte { return append(append(b, m.hdr...), m.body...) }

// check compares an echo with m.
func (m *soakMsg) check(op codec.Opcode, p []byte) error {
	if op != m.op || len(p) != m.size() || !bytes.Equal(p[:len(m.hdr)], m.hdr) || !bytes.Equal(p[len(m.hdr):], m.body) {
		want := m.appendTo(nil)
		i := 0
		for i < min(len(p), len(want)) && p[i] == want[i] {
			i++
		}
		return fmt.Errorf("echo of message %d (%s, %d bytes) came back as %s, %d bytes, first difference at byte %d; got %q…",
			m.seq, m.op, m.size(), op, len(p), i, p[:min(len(p), 40)])
	}
	return nil
}

// newMsg makes message seq of connection id, of at most maxSize bytes.
func (src *soakSource) newMsg(rng *rand.Rand, id, seq, maxSize int) *soakMsg {
	var n int
	switch r := rng.IntN(100); {
	case r < 10:
		n = rng.IntN(33)
	case r < 55:
		n = 33 + rng.IntN(4<<10)
	case r < 85:
		n = 4<<10 + rng.IntN(60<<10)
	default:
		n = 64<<10 + rng.IntN(192<<10+1)
	}
	n = min(n, maxSize)
	m := &soakMsg{op: codec.OpBinary, seq: seq}
	if rng.IntN(2) == 0 {
		m.op = codec.OpText
	}
	if hdr := fmt.Appendf(nil, "#%05d:%09d|", id, seq); n >= len(hdr) {
		m.hdr = hdr
		n -= len(hdr)
	}
	if m.op == codec.OpBinary {
		off := rng.IntN(len(src.bin) - n + 1)
		m.body = src.bin[off : off+n]
		return m
	}
	off := rng.IntN(len(src.text) - n + 1)
	end := off + n
	for off < end && !utf8.RuneStart(src.text[off]) {
		off++
	}
	for end > off && end < len(src.text) && !utf8.RuneStart(src.text[end]) {
		end--
	}
	m.body = src.text[off:end]
	return m
}

// splits returns 1–5 cut points in p, ascending, possibly equal (empty
// frames) and mostly inside multi-byte runes for text.
func splits(rng *rand.Rand, n int) []int {
	k := 1 + rng.IntN(5)
	cuts := make([]int, k)
	for i := range cuts {
		cuts[i] = rng.IntN(n + 1)
	}
	for i := 1; i < len(cuts); i++ { // insertion sort: k ≤ 5
		for j := i; j > 0 && cuts[j] < cuts[j-1]; j-- {
			cuts[j], cuts[j-1] = cuts[j-1], cuts[j]
		}
	}
	return cuts
}

type soakKind int

const (
	soakDeflate soakKind = iota // zSoakConn: raw frames with permessage-deflate
	soakGale                    // engine.Dial, plain, frame-level writes
)

func (k soakKind) String() string { return [...]string{"deflate", "gale"}[k] }

// soakConn is one client connection of either kind.
type soakConn interface {
	// send writes m (payload is its bytes); cuts, when not nil, fragment it,
	// with a ping between fragments when ping is set.
	send(m *soakMsg, payload []byte, cuts []int, ping bool) error
	read() (codec.Opcode, []byte, error)
	closeClean() error // sends Close 1000
	isClose1000(err error) bool
	netConn() net.Conn
}

const soakIOTimeout = 30 * time.Second

func soakDial(url string, kind soakKind) (soakConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if kind == soakDeflate {
		return dialZSoak(ctx, url)
	}
	c, err := Dial(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	return &galeSoakConn{c}, nil
}

// zSoakConn is a permessage-deflate client made of raw frames (Gale's
// blocking client does not negotiate compression). It offers no context
// takeover either way, compresses every message at level 1 with a fresh
// stream, cuts a fragmented message's compressed bytes at the places its
// cuts fall in proportion (RSV1 on the first frame only, pings between the
// frames when asked), and inflates the server's compressed messages. A
// reader goroutine and a writer may use it at once: it answers pings and
// the server's Close from read, so writes are serialised.
type zSoakConn struct {
	conn net.Conn
	br   *bufio.Reader

	wmu       sync.Mutex
	closeSent bool
	wbuf      []byte
	fw        *flate.Writer
	zbuf      bytes.Buffer

	// Read side, owned by the reading goroutine.
	rbuf []byte // the current frame's payload
	msg  []byte // the message being reassembled
	out  bytes.Buffer
	fr   io.ReadCloser
}

func dialZSoak(ctx context.Context, rawURL string) (*zSoakConn, error) {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*zSoakConn, error) { conn.Close(); return nil, err }
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	req := rawRequest("GET "+u.RequestURI()+" HTTP/1.1", "Host: "+u.Host,
		"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover")
	if _, err := conn.Write([]byte(req)); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 64<<10)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != rawAccept {
		return fail(fmt.Errorf("upgrade: %s %v", resp.Status, resp.Header))
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
		return fail(fmt.Errorf("permessage-deflate not negotiated: %q", ext))
	}
	conn.SetDeadline(time.Time{})
	fw, _ := flate.NewWriter(nil, 1)
	return &zSoakConn{conn: conn, br: br, fw: fw}, nil
}

// writeFrame sends one masked frame with a fresh key. After a Close only
// the Close's own write goes out.
func (z *zSoakConn) writeFrame(op codec.Opcode, rsv byte, fin bool, p []byte) error {
	z.wmu.Lock()
	defer z.wmu.Unlock()
	return z.writeFrameLocked(op, rsv, fin, p)
}

func (z *zSoakConn) writeFrameLocked(op codec.Opcode, rsv byte, fin bool, p []byte) error {
	if z.closeSent {
		return ErrClosed
	}
	if op == codec.OpClose {
		z.closeSent = true
	}
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], rand.Uint32())
	z.wbuf = codec.AppendFrame(z.wbuf[:0], codec.Header{Fin: fin, Rsv: rsv, Opcode: op, Masked: true, Mask: key}, p)
	z.conn.SetWriteDeadline(time.Now().Add(soakIOTimeout))
	_, err := z.conn.Write(z.wbuf)
	return err
}

func (z *zSoakConn) send(m *soakMsg, p []byte, cuts []int, ping bool) error {
	z.wmu.Lock()
	defer z.wmu.Unlock()
	z.zbuf.Reset()
	z.fw.Reset(&z.zbuf)
	z.fw.Write(p)
	z.fw.Flush()
	c := z.zbuf.Bytes()
	if !bytes.HasSuffix(c, deflateTail) {
		return fmt.Errorf("flush ended with % x", c[max(0, len(c)-4):])
	}
	c = c[:len(c)-4]
	if cuts == nil {
		return z.writeFrameLocked(m.op, codec.Rsv1, true, c)
	}
	op, rsv, prev := m.op, codec.Rsv1, 0
	for _, cut := range cuts {
		zc := max(prev, cut*len(c)/max(1, len(p)))
		if err := z.writeFrameLocked(op, rsv, false, c[prev:zc]); err != nil {
			return err
		}
		op, rsv, prev = codec.OpContinuation, 0, zc
		if ping {
			if err := z.writeFrameLocked(codec.OpPing, 0, true, []byte("between")); err != nil {
				return err
			}
		}
	}
	return z.writeFrameLocked(op, rsv, true, c[prev:])
}

// readFrame reads one server frame, which must be unmasked, into z.rbuf.
func (z *zSoakConn) readFrame() (codec.Header, []byte, error) {
	for n := 2; ; n++ {
		b, err := z.br.Peek(n)
		if err != nil {
			return codec.Header{}, nil, err
		}
		h, hn, err := codec.DecodeFrameHeader(b)
		if err == codec.ErrNeedMore {
			continue
		}
		if err != nil {
			return h, nil, err
		}
		if h.Masked {
			return h, nil, errors.New("server frame is masked")
		}
		z.br.Discard(hn)
		z.rbuf = slices.Grow(z.rbuf[:0], int(h.Length))[:h.Length]
		_, err = io.ReadFull(z.br, z.rbuf)
		return h, z.rbuf, err
	}
}

// read returns the next message, inflated when it came compressed; the
// payload is valid until the next read.
func (z *zSoakConn) read() (codec.Opcode, []byte, error) {
	z.conn.SetReadDeadline(time.Now().Add(soakIOTimeout))
	var op codec.Opcode
	compressed := false
	z.msg = z.msg[:0]
	for {
		h, p, err := z.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch h.Opcode {
		case codec.OpPing:
			if err := z.writeFrame(codec.OpPong, 0, true, p); err != nil && err != ErrClosed {
				return 0, nil, err
			}
			continue
		case codec.OpPong:
			continue
		case codec.OpClose:
			code, reason, err := codec.ParseClosePayload(p)
			if err != nil {
				return 0, nil, err
			}
			z.writeFrame(codec.OpClose, 0, true, codec.AppendClosePayload(nil, closeEchoCode(code), "")) // ErrClosed when we closed first
			return 0, nil, &codec.CloseError{Code: code, Reason: string(reason)}
		case codec.OpText, codec.OpBinary:
			op, compressed = h.Opcode, h.Rsv&codec.Rsv1 != 0
		}
		z.msg = append(z.msg, p...)
		if h.Fin {
			break
		}
	}
	if !compressed {
		return op, z.msg, nil
	}
	src := io.MultiReader(bytes.NewReader(z.msg), bytes.NewReader(deflateTail))
	if z.fr == nil {
		z.fr = flate.NewReader(src)
	} else {
		z.fr.(flate.Resetter).Reset(src, nil)
	}
	z.out.Reset()
	if _, err := z.out.ReadFrom(z.fr); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return 0, nil, fmt.Errorf("inflate: %w", err)
	}
	return op, z.out.Bytes(), nil
}

func (z *zSoakConn) closeClean() error {
	return z.writeFrame(codec.OpClose, 0, true, codec.AppendClosePayload(nil, 1000, ""))
}

func (z *zSoakConn) isClose1000(err error) bool {
	var ce *codec.CloseError
	return errors.As(err, &ce) && ce.Code == 1000
}

func (z *zSoakConn) netConn() net.Conn { return z.conn }

type galeSoakConn struct{ c *ClientConn }

func (g *galeSoakConn) send(m *soakMsg, p []byte, cuts []int, ping bool) error {
	g.c.SetWriteDeadline(time.Now().Add(soakIOTimeout))
	if cuts == nil {
		return g.c.WriteMessage(m.op, p)
	}
	op, prev := m.op, 0
	for _, cut := range cuts {
		if err := g.c.WriteFrame(op, p[prev:cut], false); err != nil {
			return err
		}
		op, prev = codec.OpContinuation, cut
		if ping {
			if err := g.c.Ping([]byte("between")); err != nil {
				return err
			}
		}
	}
	return g.c.WriteFrame(op, p[prev:], true)
}

func (g *galeSoakConn) read() (codec.Opcode, []byte, error) {
	g.c.SetReadDeadline(time.Now().Add(soakIOTimeout))
	return g.c.ReadMessage()
}

// closeClean completes the closing handshake; the server's Close then comes
// back from every read.
func (g *galeSoakConn) closeClean() error { return g.c.Close(1000, "") }

func (g *galeSoakConn) isClose1000(err error) bool {
	var ce *codec.CloseError
	return errors.As(err, &ce) && ce.Code == 1000
}

func (g *galeSoakConn) netConn() net.Conn { return g.c.NetConn() }

// echoer sends messages with up to window unanswered until the soak stops,
// checks every echo in order, waits for the last ones and closes with 1000.
// A positive nap makes it a slow reader: it sleeps up to nap between reads.
func (s *soak) echoer(id int, kind soakKind, rstart uint64, window, maxSize int, nap time.Duration) {
	c, err := soakDial(s.url, kind)
	if err != nil {
		s.fail("conn %d (%s): dial: %v", id, kind, err)
		return
	}
	defer c.netConn().Close()
	rng := rand.New(rand.NewPCG(rstart, uint64(id)))
	expect := make(chan *soakMsg, window)
	var closing atomic.Bool
	var verified atomic.Int64
	readDone := make(chan error, 1)
	go func() {
		rrng := rand.New(rand.NewPCG(rstart, uint64(id)+1<<32))
		for {
			if nap > 0 {
				time.Sleep(time.Duration(rrng.Int64N(int64(nap))))
			}
			op, p, err := c.read()
			if err != nil {
				if closing.Load() && c.isClose1000(err) && len(expect) == 0 {
					err = nil
				}
				readDone <- err
				return
			}
			var m *soakMsg
			select {
			case m = <-expect:
			default:
				readDone <- fmt.Errorf("unexpected %s message of %d bytes: %q…", op, len(p), p[:min(len(p), 40)])
				return
			}
			if err := m.check(op, p); err != nil {
				readDone <- err
				return
			}
			verified.Add(1)
			s.msgs.Add(1)
			s.bytes.Add(int64(len(p)))
		}
	}()
	var buf []byte
	seq := 0
	for !s.stopped() {
		m := s.src.newMsg(rng, id, seq, maxSize)
		seq++
		select {
		case expect <- m:
		case err := <-readDone:
			s.fail("conn %d (%s): read after %d echoes: %v", id, kind, verified.Load(), err)
			return
		case <-s.stop:
			seq--
			continue
		}
		buf = m.appendTo(buf[:0])
		var cuts []int
		if rng.IntN(10) < 3 {
			cuts = splits(rng, len(buf))
			s.frags.Add(1)
		}
		if err := c.send(m, buf, cuts, rng.IntN(2) == 0); err != nil {
			s.fail("conn %d (%s): send message %d (%d bytes): %v", id, kind, m.seq, m.size(), err)
			return
		}
	}
	// The last echoes, then the closing handshake.
	if !waitFor(soakIOTimeout, func() bool { return verified.Load() == int64(seq) || len(readDone) > 0 }) {
		s.fail("conn %d (%s): %d of %d echoes after %v", id, kind, verified.Load(), seq, soakIOTimeout)
		return
	}
	closing.Store(true)
	if err := c.closeClean(); err != nil {
		s.fail("conn %d (%s): close: %v", id, kind, err)
		return
	}
	select {
	case err := <-readDone:
		if err != nil {
			s.fail("conn %d (%s): after %d of %d echoes, waiting for the server's Close 1000: %v", id, kind, verified.Load(), seq, err)
			return
		}
		s.cleanConns.Add(1)
	case <-time.After(soakIOTimeout + 5*time.Second):
		s.fail("conn %d (%s): no Close from the server", id, kind)
	}
}

// churner connects, echoes a few messages, leaves (cleanly, by dropping TCP,
// or by dropping it in the middle of a frame), and again until the soak
// stops.
func (s *soak) churner(id int, rstart uint64) {
	rng := rand.New(rand.NewPCG(rstart, uint64(id)))
	var buf []byte
	for round := 0; !s.stopped(); round++ {
		kind := soakKind(rng.IntN(2))
		c, err := soakDial(s.url, kind)
		if err != nil {
			s.fail("churner %d round %d (%s): dial: %v", id, round, kind, err)
			return
		}
		for i := range 1 + rng.IntN(5) {
			m := s.src.newMsg(rng, id, round*10+i, 64<<10)
			buf = m.appendTo(buf[:0])
			var cuts []int
			if rng.IntN(4) == 0 {
				cuts = splits(rng, len(buf))
			}
			if err := c.send(m, buf, cuts, true); err != nil {
				s.fail("churner %d round %d (%s): send: %v", id, round, kind, err)
				c.netConn().Close()
				return
			}
			op, p, err := c.read()
			if err == nil {
				err = m.check(op, p)
			}
			if err != nil {
				s.fail("churner %d round %d (%s): %v", id, round, kind, err)
				c.netConn().Close()
				return
			}
			s.msgs.Add(1)
			s.bytes.Add(int64(len(p)))
		}
		switch rng.IntN(4) {
		case 0, 1: // the closing handshake
			if err := c.closeClean(); err != nil {
				s.fail("churner %d round %d (%s): close: %v", id, round, kind, err)
				c.netConn().Close()
				return
			}
			_, _, err := c.read()
			c.netConn().Close()
			if !c.isClose1000(err) {
				s.fail("churner %d round %d (%s): waiting for Close 1000: %v", id, round, kind, err)
				return
			}
			s.clean.Add(1)
		case 2: // drop TCP, sometimes with a reset
			if tc, ok := c.netConn().(*net.TCPConn); ok && rng.IntN(2) == 0 {
				tc.SetLinger(0)
			}
			c.netConn().Close()
			s.abrupt.Add(1)
		case 3: // drop TCP in the middle of a frame (and of a message)
			key := [4]byte{1, 2, 3, 4}
			b := codec.AppendFrameHeader(nil, codec.Header{Fin: rng.IntN(2) == 0, Opcode: codec.OpBinary, Masked: true, Mask: key, Length: 100000})
			b = append(b, s.src.bin[:rng.IntN(50000)]...)
			c.netConn().SetWriteDeadline(time.Now().Add(soakIOTimeout))
			c.netConn().Write(b)
			c.netConn().Close()
			s.abrupt.Add(1)
		}
	}
}

// staller sends 256 KiB messages and never reads, until the server drops
// it or its writes stall for 2 s; then it drops the connection and comes
// back.
func (s *soak) staller(id int) {
	p := s.src.bin[:256<<10]
	for !s.stopped() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := Dial(ctx, s.url, nil)
		cancel()
		if err != nil {
			s.fail("staller %d: dial: %v", id, err)
			return
		}
		s.stalls.Add(1)
		for !s.stopped() {
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if c.WriteMessage(codec.OpBinary, p) != nil {
				break
			}
		}
		c.CloseNow()
		select {
		case <-s.stop:
		case <-time.After(200 * time.Millisecond):
		}
	}
}
