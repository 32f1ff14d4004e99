package codec

import "errors"

// ErrNeedMore is returned by the incremental decoders when the input holds
// less than a whole unit (a request head, a response head, a frame header).
// Nothing was consumed; call again once more bytes have arrived.
var ErrNeedMore = errors.New("gale: need more data")

// ProtocolError is a violation of RFC 6455 or RFC 7692 by the peer. Code is
// the status the connection must be failed with (1002, 1007, 1009 …).
//
// The package's ProtocolError values are sentinels: compare with == or
// errors.Is, read the code with errors.As. Returning them never allocates.
type ProtocolError struct {
	Code StatusCode
	Msg  string
}

func (e *ProtocolError) Error() string { return "gale: " + e.Msg }

// HandshakeError is an upgrade request or response Gale refuses. Status is the
// HTTP status to answer a rejected request with (400, 405, 426, 431); on the
// client side it is 0, or the status the server answered with.
//
// The package's HandshakeError values are sentinels, like ProtocolError's.
type HandshakeError struct {
	Status int
	Msg    string
}

func (e *HandshakeError) Error() string { return "gale: " + e.Msg }

// Frame-level protocol errors. All fail the connection with 1002 except where
// noted.
var (
	ErrReservedOpcode       = &ProtocolError{StatusProtocolError, "reserved opcode"}
	ErrReservedBits         = &ProtocolError{StatusProtocolError, "RSV bits set that no extension defines"}
	ErrLengthOverflow       = &ProtocolError{StatusProtocolError, "64-bit payload length with the most significant bit set"}
	ErrControlTooLong       = &ProtocolError{StatusProtocolError, "control frame payload longer than 125 bytes"}
	ErrControlFragmented    = &ProtocolError{StatusProtocolError, "fragmented control frame"}
	ErrMaskRequired         = &ProtocolError{StatusProtocolError, "unmasked frame from a client"}
	ErrMaskUnexpected       = &ProtocolError{StatusProtocolError, "masked frame from a server"}
	ErrUnexpectedContinue   = &ProtocolError{StatusProtocolError, "continuation frame with no message started"}
	ErrExpectedContinuation = &ProtocolError{StatusProtocolError, "new data frame inside a fragmented message"}
	ErrFrameTooBig          = &ProtocolError{StatusMessageTooBig, "frame payload exceeds the limit"}
	ErrMessageTooBig        = &ProtocolError{StatusMessageTooBig, "message exceeds the limit"}
	ErrInvalidUTF8          = &ProtocolError{StatusInvalidPayloadData, "invalid UTF-8 in a text message"}
	// ErrDeflateData: a compressed message does not inflate (RFC 7692 §7.2.2
	// says only to fail the connection; 1007 is RFC 6455's code for data
	// inconsistent with its message).
	ErrDeflateData = &ProtocolError{StatusInvalidPayloadData, "invalid permessage-deflate data"}
)

// Close payload errors (RFC 6455 §5.5.1, §7.4).
var (
	ErrCloseTooShort   = &ProtocolError{StatusProtocolError, "close payload of 1 byte"}
	ErrCloseCode       = &ProtocolError{StatusProtocolError, "invalid close status code"}
	ErrCloseReasonUTF8 = &ProtocolError{StatusInvalidPayloadData, "close reason is not valid UTF-8"}
	ErrCloseReasonLong = &ProtocolError{StatusProtocolError, "close reason longer than 123 bytes"}
)

// Upgrade request errors (RFC 6455 §4.2.1), each with the status it is
// answered with.
var (
	ErrHeaderTooLarge   = &HandshakeError{431, "request header block exceeds the limit"}
	ErrMalformedRequest = &HandshakeError{400, "malformed HTTP request"}
	ErrNotUpgrade       = &HandshakeError{426, "not a WebSocket upgrade request"}
	ErrMethod           = &HandshakeError{405, "upgrade request method is not GET"}
	ErrHTTPVersion      = &HandshakeError{400, "upgrade request is not HTTP/1.1 or later"}
	ErrMissingHost      = &HandshakeError{400, "missing or repeated Host header"}
	ErrConnectionHeader = &HandshakeError{400, "Connection header lacks the upgrade token"}
	ErrUpgradeHeader    = &HandshakeError{400, "Upgrade header lacks the websocket token"}
	ErrKey              = &HandshakeError{400, "missing or invalid Sec-WebSocket-Key"}
	ErrVersion          = &HandshakeError{426, "unsupported Sec-WebSocket-Version (want 13)"}
	ErrDraft76          = &HandshakeError{426, "draft-76 (hixie) handshake is not supported (want version 13)"}
	ErrDuplicateHeader  = &HandshakeError{400, "header that must appear once appears more than once"}
	ErrForbiddenOrigin  = &HandshakeError{403, "origin not allowed"}
)

// Upgrade response errors, on the client side (Status 0 unless noted).
var (
	ErrMalformedResponse = &HandshakeError{0, "malformed HTTP response"}
	ErrResponseStatus    = &HandshakeError{0, "server did not answer 101 Switching Protocols"}
	ErrResponseUpgrade   = &HandshakeError{0, "response Upgrade header lacks the websocket token"}
	ErrResponseConn      = &HandshakeError{0, "response Connection header lacks the upgrade token"}
	ErrAccept            = &HandshakeError{0, "response Sec-WebSocket-Accept does not match the key"}
	ErrProtocolNotOffer  = &HandshakeError{0, "server chose a subprotocol the client did not offer"}
	ErrExtensionNotOffer = &HandshakeError{0, "server chose an extension the client did not offer"}
	ErrExtensionParams   = &HandshakeError{0, "server answered an extension with invalid parameters"}
)
