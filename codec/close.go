package codec

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

//go:generate go run golang.org/x/tools/cmd/stringer@v0.30.0 -type=StatusCode -trimprefix=Status -output=statuscode_string.go

// StatusCode is a close status code (RFC 6455 §7.4).
type StatusCode uint16

// Status codes registered by RFC 6455 §7.4.1 and the IANA registry.
const (
	StatusNormalClosure      StatusCode = 1000
	StatusGoingAway          StatusCode = 1001
	StatusProtocolError      StatusCode = 1002
	StatusUnsupportedData    StatusCode = 1003
	StatusNoStatusReceived   StatusCode = 1005 // never on the wire: the Close had no payload
	StatusAbnormalClosure    StatusCode = 1006 // never on the wire: the connection dropped
	StatusInvalidPayloadData StatusCode = 1007
	StatusPolicyViolation    StatusCode = 1008
	StatusMessageTooBig      StatusCode = 1009
	StatusMandatoryExtension StatusCode = 1010
	StatusInternalError      StatusCode = 1011
	StatusServiceRestart     StatusCode = 1012
	StatusTryAgainLater      StatusCode = 1013
	StatusBadGateway         StatusCode = 1014
	StatusTLSHandshake       StatusCode = 1015 // never on the wire
)

// MaxControlPayload is the largest control frame payload (RFC 6455 §5.5).
const MaxControlPayload = 125

// MaxCloseReason is the longest close reason that fits a control frame.
const MaxCloseReason = MaxControlPayload - 2

// IsValid reports whether c may appear in a Close frame (RFC 6455 §7.4):
// 1000–1003, 1007–1014 and 3000–4999. 1004–1006 and 1015 are reserved,
// codes below 1000 and 1016–2999 are unassigned, 5000 and up do not exist.
func (c StatusCode) IsValid() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// ParseClosePayload splits a Close frame's (unmasked) payload into its code
// and reason. An empty payload yields StatusNoStatusReceived and no error.
// A 1-byte payload, an invalid code and an over-long reason are 1002
// errors; a reason that is not UTF-8 is a 1007 error (RFC 6455 §5.5.1,
// §7.4, §8.1). The reason aliases p.
func ParseClosePayload(p []byte) (code StatusCode, reason []byte, err error) {
	switch {
	case len(p) == 0:
		return StatusNoStatusReceived, nil, nil
	case len(p) == 1:
		return 0, nil, ErrCloseTooShort
	case len(p) > MaxControlPayload:
		return 0, nil, ErrCloseReasonLong
	}
	code = StatusCode(binary.BigEndian.Uint16(p))
	if !code.IsValid() {
		return code, nil, ErrCloseCode
	}
	reason = p[2:]
	if !utf8.Valid(reason) {
		return code, nil, ErrCloseReasonUTF8
	}
	return code, reason, nil
}

// AppendClosePayload appends a Close payload: code, then reason cut to
// MaxCloseReason bytes on a rune boundary. StatusNoStatusReceived (or 0)
// appends nothing, which is how a Close without a code is sent.
func AppendClosePayload(dst []byte, code StatusCode, reason string) []byte {
	if code == 0 || code == StatusNoStatusReceived {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	return append(dst, truncateReason(reason)...)
}

// truncateReason cuts s to MaxCloseReason bytes without splitting a rune, so a
// long reason never turns a valid Close into a 1007 at the peer.
func truncateReason(s string) string {
	if len(s) <= MaxCloseReason {
		return s
	}
	n := MaxCloseReason
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// CloseError is how a connection ended: the code and reason of the Close
// frame received, or the code Gale failed the connection with.
type CloseError struct {
	Code   StatusCode
	Reason string
}

func (e *CloseError) Error() string {
	s := "gale: close " + strconv.Itoa(int(e.Code)) + " (" + e.Code.String() + ")"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// CloseStatus returns the code of the CloseError or ProtocolError in err's
// chain, or 0 when there is none (a transport error, or nil).
func CloseStatus(err error) StatusCode {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}
