package codec

import "encoding/binary"

// RSV bits as they sit in a frame's first byte.
const (
	Rsv1 byte = 0x40 // permessage-deflate: the message is compressed (RFC 7692 §6)
	Rsv2 byte = 0x20
	Rsv3 byte = 0x10
)

// MaxHeaderLen is the longest frame header: 2 bytes, an 8-byte length and a
// 4-byte mask.
const MaxHeaderLen = 14

// Header is a frame header (RFC 6455 §5.2).
type Header struct {
	Fin    bool
	Rsv    byte // RSV1..RSV3 in place: a mask of Rsv1, Rsv2, Rsv3
	Opcode Opcode
	Masked bool
	Mask   [4]byte
	Length int64 // payload length, 0 to 1<<63-1
}

// Len returns the encoded size of h.
func (h Header) Len() int {
	n := 2
	switch {
	case h.Length > 0xFFFF:
		n += 8
	case h.Length > 125:
		n += 2
	}
	if h.Masked {
		n += 4
	}
	return n
}

// AppendFrameHeader appends the wire form of h, with the length in its
// minimal encoding as RFC 6455 §5.2 requires of senders.
func AppendFrameHeader(dst []byte, h Header) []byte {
	b0 := h.Rsv&(Rsv1|Rsv2|Rsv3) | byte(h.Opcode)&0x0F
	if h.Fin {
		b0 |= 0x80
	}
	var b1 byte
	if h.Masked {
		b1 = 0x80
	}
	switch {
	case h.Length > 0xFFFF:
		dst = append(dst, b0, b1|127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(h.Length))
	case h.Length > 125:
		dst = append(dst, b0, b1|126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(h.Length))
	default:
		dst = append(dst, b0, b1|byte(h.Length))
	}
	if h.Masked {
		dst = append(dst, h.Mask[:]...)
	}
	return dst
}

// AppendFrame appends a whole frame: h, with Length set to len(payload), and
// the payload, masked with h.Mask in the appended copy when h.Masked (payload
// itself is left untouched).
func AppendFrame(dst []byte, h Header, payload []byte) []byte {
	h.Length = int64(len(payload))
	dst = AppendFrameHeader(dst, h)
	n := len(dst)
	dst = append(dst, payload...)
	if h.Masked {
		Mask(dst[n:], h.Mask, 0)
	}
	return dst
}

// DecodeFrameHeader decodes the frame header at the start of p and returns
// it with its encoded size. With fewer bytes than the header needs it returns
// ErrNeedMore; a 64-bit length with its top bit set is ErrLengthOverflow.
// It checks only the encoding: see CheckFrameHeader for the protocol rules.
func DecodeFrameHeader(p []byte) (h Header, n int, err error) {
	if len(p) < 2 {
		return h, 0, ErrNeedMore
	}
	b0, b1 := p[0], p[1]
	h.Fin = b0&0x80 != 0
	h.Rsv = b0 & (Rsv1 | Rsv2 | Rsv3)
	h.Opcode = Opcode(b0 & 0x0F)
	h.Masked = b1&0x80 != 0
	n = 2
	switch l := b1 & 0x7F; l {
	case 126:
		if len(p) < 4 {
			return h, 0, ErrNeedMore
		}
		h.Length = int64(binary.BigEndian.Uint16(p[2:]))
		n = 4
	case 127:
		if len(p) < 10 {
			return h, 0, ErrNeedMore
		}
		u := binary.BigEndian.Uint64(p[2:])
		if u>>63 != 0 {
			return h, 0, ErrLengthOverflow
		}
		h.Length = int64(u)
		n = 10
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		if len(p) < n+4 {
			return h, 0, ErrNeedMore
		}
		copy(h.Mask[:], p[n:n+4])
		n += 4
	}
	return h, n, nil
}

// State tells CheckFrameHeader what the receiving end has agreed to and where
// it is in the message stream. Combine the flags with |.
type State uint8

const (
	// StateServer: we are the server, so frames come from a client and must
	// be masked.
	StateServer State = 1 << iota
	// StateClient: we are the client, so frames must not be masked.
	StateClient
	// StateDeflate: permessage-deflate was negotiated, which defines RSV1 on
	// the first frame of a data message.
	StateDeflate
	// StateFragmented: a data message has started and not finished, so the
	// next data frame must be a continuation.
	StateFragmented
)

// CheckFrameHeader applies RFC 6455 §5 (and RFC 7692 §6 under StateDeflate)
// to a decoded header: reserved opcodes, RSV bits, the masking direction,
// control frame size and fragmentation, and the continuation sequence. Every
// error it returns is a *ProtocolError with code 1002.
func CheckFrameHeader(h Header, s State) error {
	if h.Opcode.IsReserved() {
		return ErrReservedOpcode
	}
	if h.Rsv != 0 {
		// RSV1 is permessage-deflate's "compressed" bit, and it may only mark
		// the first frame of a data message (RFC 7692 §6.1).
		if h.Rsv != Rsv1 || s&StateDeflate == 0 || h.Opcode.IsControl() || h.Opcode == OpContinuation {
			return ErrReservedBits
		}
	}
	switch {
	case s&StateServer != 0 && !h.Masked:
		return ErrMaskRequired
	case s&StateClient != 0 && h.Masked:
		return ErrMaskUnexpected
	}
	if h.Opcode.IsControl() {
		if h.Length > MaxControlPayload {
			return ErrControlTooLong
		}
		if !h.Fin {
			return ErrControlFragmented
		}
		return nil
	}
	if s&StateFragmented != 0 {
		if h.Opcode != OpContinuation {
			return ErrExpectedContinuation
		}
	} else if h.Opcode == OpContinuation {
		return ErrUnexpectedContinue
	}
	return nil
}
