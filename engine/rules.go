package engine

import "github.com/galews/gale/codec"

// The protocol rules both read sides apply the same way: the event loop
// (read.go, state.go) and the blocking client (dial.go). Pure functions of what was
// received, so each side keeps its own I/O and state.

// closeEchoCode returns the code to answer a received Close with (RFC 6455
// §5.5.1): the peer's own code, or 1000 when its Close carried none.
func closeEchoCode(received codec.StatusCode) codec.StatusCode {
	if received == codec.StatusNoStatusReceived {
		return codec.StatusNormalClosure
	}
	return received
}

// failCode returns the code to fail the connection with for err (RFC 6455
// §7.1.7): the code the error carries (codec.CloseStatus), 1002 when it
// carries none.
func failCode(err error) codec.StatusCode {
	if code := codec.CloseStatus(err); code != 0 {
		return code
	}
	return codec.StatusProtocolError
}

// checkFrame applies the rules to a decoded frame header before its payload
// is read: codec.CheckFrameHeader for state s, then the size limits of a
// data frame, msgLen being the bytes of the message received before it.
// maxFrame <= 0 means no frame limit of its own.
func checkFrame(h codec.Header, s codec.State, msgLen, maxFrame, maxMsg int64) error {
	if err := codec.CheckFrameHeader(h, s); err != nil {
		return err
	}
	if h.Opcode.IsData() {
		switch {
		case maxFrame > 0 && h.Length > maxFrame:
			return codec.ErrFrameTooBig
		case h.Length > maxMsg-msgLen: // not msgLen+h.Length: that overflows for a 63-bit length
			return codec.ErrMessageTooBig
		}
	}
	return nil
}

// textValid feeds the next piece of a text message's payload to v, as it
// arrives, and reports whether the message may still be valid UTF-8; end
// says p finishes the message, which must then end on a rune boundary. An
// invalid byte fails the piece it arrives in (1007, codec.ErrInvalidUTF8).
func textValid(v *codec.UTF8Validator, p []byte, end bool) bool {
	return v.Write(p) && (!end || v.Done())
}
