package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/galews/gale/codec"
)

// upgradeTimeout bounds one dial plus upgrade.
const upgradeTimeout = 10 * time.Second

// request is a prebuilt upgrade request and the key it carries.
type request struct {
	key   [codec.KeyLen]byte
	bytes []byte
}

func newRequest(addr string) request {
	var r request
	r.key = codec.NewKey()
	r.bytes = codec.AppendClientRequest(nil, &codec.ClientRequest{Host: addr, URI: "/"}, r.key[:])
	return r
}

// upgrade sends req on nc and reads the 101 response into buf, returning
// how many bytes of buf follow the response head (the first frames, if the
// server sent any already).
func upgrade(nc net.Conn, req *request, buf []byte) (rest int, err error) {
	if _, err := nc.Write(req.bytes); err != nil {
		return 0, err
	}
	var resp codec.Response
	n := 0
	for {
		m, err := nc.Read(buf[n:])
		n += m
		if err != nil {
			return 0, fmt.Errorf("reading upgrade response: %w", err)
		}
		resp.Reset()
		hn, perr := resp.Parse(buf[:n], len(buf))
		if errors.Is(perr, codec.ErrNeedMore) {
			if n == len(buf) {
				return 0, codec.ErrHeaderTooLarge
			}
			continue
		}
		if perr != nil {
			return 0, perr
		}
		if err := resp.Validate(req.key[:], nil); err != nil {
			return 0, err
		}
		return copy(buf, buf[hn:n]), nil
	}
}

// dialUpgrade dials addr (from local when not nil), upgrades, and returns
// the connection with any bytes already read past the response kept at the
// start of buf.
func dialUpgrade(ctx context.Context, addr string, local net.IP, buf []byte) (net.Conn, int, error) {
	d := net.Dialer{Timeout: upgradeTimeout}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, 0, err
	}
	nc.SetDeadline(time.Now().Add(upgradeTimeout))
	req := newRequest(addr)
	rest, err := upgrade(nc, &req, buf)
	if err != nil {
		nc.Close()
		return nil, 0, err
	}
	nc.SetDeadline(time.Time{})
	return nc, rest, nil
}

// closeFrame is the masked Close 1000 every client sends.
var closeFrame = func() []byte {
	p := codec.AppendClosePayload(nil, codec.StatusNormalClosure, "")
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	f := codec.AppendFrameHeader(nil, codec.Header{Fin: true, Opcode: codec.OpClose, Masked: true, Mask: key, Length: int64(len(p))})
	start := len(f)
	f = append(f, p...)
	codec.Mask(f[start:], key, 0)
	return f
}()

// isCloseFrame reports whether p starts with a complete, unmasked Close
// frame, and how long that frame is.
func isCloseFrame(p []byte) (ok bool, n int, err error) {
	h, hn, err := codec.DecodeFrameHeader(p)
	if err != nil {
		return false, 0, err
	}
	if h.Length > codec.MaxControlPayload {
		return false, 0, errors.New("control frame too long")
	}
	if len(p) < hn+int(h.Length) {
		return false, 0, codec.ErrNeedMore
	}
	return h.Opcode == codec.OpClose && !h.Masked, hn + int(h.Length), nil
}

// equal is bytes.Equal, named for what it checks.
func equal(got, want []byte) bool { return bytes.Equal(got, want) }
