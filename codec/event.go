package codec

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Server-Sent Events (the WHATWG HTML standard, "Server-sent events"): the
// text/event-stream format an EventSource reads. An event is a block of
// "field: value" lines ended by a blank line; Gale writes LF line ends,
// which every EventSource accepts.

// ErrEventField is returned by AppendEvent for an ID or event name that
// would break the stream's framing: a CR or LF ends the field early and
// lets the rest be read as other fields; a NUL in an ID makes browsers
// ignore it.
var ErrEventField = errors.New("gale: event ID or name contains CR, LF or (in an ID) NUL")

// Event is one server-sent event.
type Event struct {
	// ID, when set, becomes the stream's last event ID: a client that
	// reconnects sends it back in Last-Event-ID.
	ID string
	// Event is the event's type, "message" when empty (EventSource's
	// onmessage; others need addEventListener).
	Event string
	// Data is the payload, text for an EventSource (decoded as UTF-8). It is
	// split at each line end (CRLF, CR or LF) into "data:" lines, which the
	// client joins with LF, so other line ends arrive as LF. Every event
	// carries at least one data line: an empty Data still dispatches an
	// event, with empty data.
	Data []byte
	// Retry, when positive, tells the client how long to wait before
	// reconnecting after the stream ends (sent in whole milliseconds, at
	// least 1).
	Retry time.Duration
}

// AppendEvent appends ev in the text/event-stream format, ending with the
// blank line that dispatches it. It returns dst unchanged and
// ErrEventField when ev.ID or ev.Event cannot be sent. It does not
// allocate beyond growing dst.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	if !validEventField(ev.ID, true) || !validEventField(ev.Event, false) {
		return dst, ErrEventField
	}
	if ev.ID != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, ev.ID...)
		dst = append(dst, '\n')
	}
	if ev.Event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, ev.Event...)
		dst = append(dst, '\n')
	}
	if ev.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, max(ev.Retry.Milliseconds(), 1), 10)
		dst = append(dst, '\n')
	}
	p := ev.Data
	for {
		end, next := lineEnd(p)
		// "data: " rather than "data:": the parser drops one space after
		// the colon, so data that starts with a space survives.
		dst = append(dst, "data: "...)
		dst = append(dst, p[:end]...)
		dst = append(dst, '\n')
		if next < 0 {
			break
		}
		p = p[next:]
	}
	return append(dst, '\n'), nil
}

// EventLen returns the bytes AppendEvent appends for ev (when it is valid).
func EventLen(ev *Event) int {
	n := 1 // the blank line
	if ev.ID != "" {
		n += len("id: \n") + len(ev.ID)
	}
	if ev.Event != "" {
		n += len("event: \n") + len(ev.Event)
	}
	if ev.Retry > 0 {
		n += len("retry: \n") + 20
	}
	p := ev.Data
	for {
		end, next := lineEnd(p)
		n += len("data: \n") + end
		if next < 0 {
			return n
		}
		p = p[next:]
	}
}

// lineEnd returns the length of p's first line and the index where the
// next begins, or -1 when the line runs to p's end.
func lineEnd(p []byte) (end, next int) {
	for i, c := range p {
		switch c {
		case '\n':
			return i, i + 1
		case '\r':
			if i+1 < len(p) && p[i+1] == '\n' {
				return i, i + 2
			}
			return i, i + 1
		}
	}
	return len(p), -1
}

func validEventField(s string, id bool) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\r', '\n':
			return false
		case 0:
			if id {
				return false
			}
		}
	}
	return true
}

// EventStreamHeartbeat is a comment line: an EventSource ignores it, while
// it keeps proxies and the client's own timeouts from taking an idle
// stream for a dead one.
const EventStreamHeartbeat = ":\n\n"

// AcceptsEventStream reports whether an Accept field value lists
// text/event-stream (ignoring case and parameters) with a non-zero q.
// Wildcards do not count: an EventSource names the type, and a request
// that accepts anything is not asking for a stream.
func AcceptsEventStream(accept []byte) bool {
	for len(accept) > 0 {
		var item []byte
		item, accept = cutComma(accept)
		item = trimOWS(item)
		typ, params := item, []byte(nil)
		for i, c := range item {
			if c == ';' {
				typ, params = trimOWS(item[:i]), item[i+1:]
				break
			}
		}
		if equalFold(typ, "text/event-stream") && !zeroQ(params) {
			return true
		}
	}
	return false
}

// cutComma splits a list at its first comma outside a quoted string.
func cutComma(p []byte) (item, rest []byte) {
	quoted := false
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return p[:i], p[i+1:]
		}
	}
	return p, nil
}

// zeroQ reports whether media-type parameters carry q=0 (any of 0, 0.,
// 0.0, 0.00, 0.000): "not acceptable" (RFC 9110 §12.4.2).
func zeroQ(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		p, params = cutSemicolon(params)
		p = trimOWS(p)
		if len(p) < 2 || lower(p[0]) != 'q' || p[1] != '=' {
			continue
		}
		v := p[2:]
		if len(v) == 0 || v[0] != '0' {
			return false
		}
		v = v[1:]
		if len(v) > 0 {
			if v[0] != '.' || len(v) > 4 {
				return false
			}
			for _, c := range v[1:] {
				if c != '0' {
					return false
				}
			}
		}
		return true
	}
	return false
}

func cutSemicolon(p []byte) (item, rest []byte) {
	for i, c := range p {
		if c == ';' {
			return p[:i], p[i+1:]
		}
	}
	return p, nil
}

// AppendEventStreamResponse appends the 200 response that starts an event
// stream: Content-Type text/event-stream, Cache-Control no-cache unless
// extra sets its own, then extra's fields. The body has no length and is
// not chunked: it ends when the connection closes (RFC 9112 §6.3), which
// every EventSource and HTTP client reads, and it costs no framing per
// event; Connection: close says the connection is not reused after it.
// Content-Type, Content-Length, Transfer-Encoding and Connection in extra
// are skipped: they are the stream's framing.
func AppendEventStreamResponse(dst []byte, extra http.Header) []byte {
	dst = append(dst, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n"...)
	if extra.Get("Cache-Control") == "" {
		dst = append(dst, "Cache-Control: no-cache\r\n"...)
	}
	dst = appendHeader(dst, extra, eventStreamField)
	return append(dst, "\r\n"...)
}

func eventStreamField(name string) bool {
	return equalFold(name, "content-type") || rejectResponseField(name)
}
