package codec

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

func FuzzDecodeFrameHeader(f *testing.F) {
	f.Add([]byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f})
	f.Add([]byte{0x82, 126, 0x01, 0x00})
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0})
	f.Add([]byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x09, 0xFE, 0x00})
	f.Add([]byte{0xFF, 0xFF})
	f.Add([]byte{0x81})
	f.Fuzz(func(t *testing.T, p []byte) {
		h, n, err := DecodeFrameHeader(p)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n=%d", err, n)
			}
			if err == ErrNeedMore && len(p) >= MaxHeaderLen {
				t.Fatalf("need more with %d bytes", len(p))
			}
			return
		}
		if n < 2 || n > MaxHeaderLen || n > len(p) || h.Length < 0 {
			t.Fatalf("n=%d len=%d length=%d", n, len(p), h.Length)
		}
		// A decoded header re-encodes to its own bytes when the sender used
		// the minimal length encoding, and always decodes back to itself.
		enc := AppendFrameHeader(nil, h)
		h2, n2, err := DecodeFrameHeader(enc)
		if err != nil || h2 != h || n2 != len(enc) || n2 != h.Len() {
			t.Fatalf("re-decode: %+v %d %v, want %+v", h2, n2, err, h)
		}
		if len(enc) == n && !bytes.Equal(enc, p[:n]) {
			t.Fatalf("minimal encoding differs: % x vs % x", enc, p[:n])
		}
		for _, s := range []State{StateServer, StateClient, StateServer | StateDeflate | StateFragmented} {
			_ = CheckFrameHeader(h, s) // must not panic
		}
	})
}

func FuzzParseClosePayload(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xE8})
	f.Add(append([]byte{0x03, 0xE8}, "normal"...))
	f.Add([]byte{0x03, 0xE8, 0xED, 0xA0, 0x80})
	f.Add([]byte{0x0F, 0xA0, 0xF0, 0x90})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClosePayload(p)
		if err != nil {
			if s := CloseStatus(err); s != StatusProtocolError && s != StatusInvalidPayloadData {
				t.Fatalf("error %v maps to %d", err, s)
			}
			return
		}
		if len(p) == 0 {
			if code != StatusNoStatusReceived {
				t.Fatalf("empty payload gave %d", code)
			}
			return
		}
		if !code.IsValid() || !utf8.Valid(reason) || len(reason) > MaxCloseReason {
			t.Fatalf("accepted %d %q", code, reason)
		}
		if got := AppendClosePayload(nil, code, string(reason)); !bytes.Equal(got, p) {
			t.Fatalf("round trip % x != % x", got, p)
		}
	})
}
