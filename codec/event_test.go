package codec

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// parsedEvent is what an EventSource makes of a stream (WHATWG HTML,
// "Interpreting an event stream"): the events dispatched, the last event
// ID and the reconnection time.
type parsedEvent struct {
	Event, Data, LastID string
}

// parseEventStream follows the standard's parser over a whole stream.
func parseEventStream(stream []byte) (evs []parsedEvent, retry int) {
	var data, typ, lastID strings.Builder
	hasData := false
	retry = -1
	for len(stream) > 0 {
		end, next := lineEnd(stream)
		if next < 0 {
			break // an incomplete line is not processed
		}
		line := string(stream[:end])
		stream = stream[next:]
		if line == "" {
			if hasData {
				d := strings.TrimSuffix(data.String(), "\n")
				t := typ.String()
				if t == "" {
					t = "message"
				}
				evs = append(evs, parsedEvent{Event: t, Data: d, LastID: lastID.String()})
			}
			data.Reset()
			typ.Reset()
			hasData = false
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch name {
		case "event":
			typ.Reset()
			typ.WriteString(value)
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				lastID.Reset()
				lastID.WriteString(value)
			}
		case "retry":
			if n, err := strconv.Atoi(value); err == nil && value != "" && strings.Trim(value, "0123456789") == "" {
				retry = n
			}
		}
	}
	return evs, retry
}

func TestAppendEvent(t *testing.T) {
	for _, tt := range []struct {
		name string
		ev   Event
		want string
		err  error
	}{
		{"data only", Event{Data: []byte("hi")}, "data: hi\n\n", nil},
		{"empty", Event{}, "data: \n\n", nil},
		{"all fields", Event{ID: "7", Event: "tick", Data: []byte("a"), Retry: 2 * time.Second}, "id: 7\nevent: tick\nretry: 2000\ndata: a\n\n", nil},
		{"sub-millisecond retry", Event{Retry: time.Microsecond}, "retry: 1\ndata: \n\n", nil},
		{"line ends", Event{Data: []byte("a\nb\r\nc\rd\n")}, "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n", nil},
		{"CR LF split across", Event{Data: []byte("\r\r\n")}, "data: \ndata: \ndata: \n\n", nil},
		{"id LF", Event{ID: "a\nb"}, "", ErrEventField},
		{"id CR", Event{ID: "a\r"}, "", ErrEventField},
		{"id NUL", Event{ID: "\x00"}, "", ErrEventField},
		{"event LF", Event{Event: "x\ndata: y"}, "", ErrEventField},
		{"event NUL is fine", Event{Event: "\x00"}, "event: \x00\ndata: \n\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendEvent([]byte("prefix"), &tt.ev)
			if err != tt.err {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if string(got) != "prefix"+tt.want {
				t.Fatalf("got %q, want %q", got[6:], tt.want)
			}
			if err == nil && len(got)-6 > EventLen(&tt.ev) {
				t.Fatalf("EventLen %d under the %d bytes appended", EventLen(&tt.ev), len(got)-6)
			}
		})
	}
}

func TestAppendEventAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	ev := Event{ID: "123", Event: "tick", Data: []byte("one\ntwo"), Retry: time.Second}
	if n := testing.AllocsPerRun(100, func() { buf, _ = AppendEvent(buf[:0], &ev) }); n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for _, tt := range []struct {
		accept string
		want   bool
	}{
		{"text/event-stream", true},
		{"TEXT/Event-Stream", true},
		{"text/html, text/event-stream;q=0.5", true},
		{"text/event-stream ; charset=utf-8", true},
		{"text/event-stream;q=0", false},
		{"text/event-stream; q=0.000", false},
		{"text/event-stream;q=0.001", true},
		{"text/event-stream;Q=0.0, text/event-stream", true},
		{`text/plain; x="a,text/event-stream"`, false},
		{"*/*", false},
		{"text/*", false},
		{"text/event-streams", false},
		{"", false},
	} {
		if got := AcceptsEventStream([]byte(tt.accept)); got != tt.want {
			t.Errorf("AcceptsEventStream(%q) = %v, want %v", tt.accept, got, tt.want)
		}
	}
}

func TestAppendEventStreamResponse(t *testing.T) {
	got := string(AppendEventStreamResponse(nil, http.Header{
		"Access-Control-Allow-Origin": {"*"},
		"Content-Length":              {"5"},
		"Transfer-Encoding":           {"chunked"},
		"Content-Type":                {"text/plain"},
		"Bad\r\nName":                 {"x"},
		"X-Split":                     {"a\r\nSet-Cookie: b"},
	}))
	for _, want := range []string{"HTTP/1.1 200 OK\r\n", "Content-Type: text/event-stream\r\n", "Cache-Control: no-cache\r\n",
		"Connection: close\r\n", "Access-Control-Allow-Origin: *\r\n", "X-Split: a  Set-Cookie: b\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("response lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"Content-Length", "Transfer-Encoding", "text/plain", "Bad"} {
		if strings.Contains(got, bad) {
			t.Errorf("response has %q:\n%s", bad, got)
		}
	}
	if !strings.HasSuffix(got, "\r\n\r\n") || strings.Count(got, "\r\n\r\n") != 1 {
		t.Errorf("head not ended once:\n%q", got)
	}
	if own := string(AppendEventStreamResponse(nil, http.Header{"Cache-Control": {"no-store"}})); strings.Contains(own, "no-cache") || !strings.Contains(own, "Cache-Control: no-store\r\n") {
		t.Errorf("the hook's Cache-Control not kept alone:\n%s", own)
	}
}

// FuzzAppendEvent: whatever the fields, an encoded event is read back by
// the standard's parser as exactly that event (line ends made LF), or the
// encoder refuses it; and a stream of it never dispatches more than one.
func FuzzAppendEvent(f *testing.F) {
	f.Add("1", "tick", []byte("a\nb"), int64(1000))
	f.Add("", "", []byte("\r\n\r"), int64(0))
	f.Add("x\ny", "", []byte(""), int64(-5))
	f.Add("", "a:b", []byte(": comment\n\ndata: x"), int64(1))
	f.Fuzz(func(t *testing.T, id, event string, data []byte, retryMs int64) {
		ev := Event{ID: id, Event: event, Data: data, Retry: time.Duration(retryMs) * time.Millisecond}
		b, err := AppendEvent(nil, &ev)
		if err != nil {
			if err != ErrEventField {
				t.Fatal(err)
			}
			if !strings.ContainsAny(id, "\r\n\x00") && !strings.ContainsAny(event, "\r\n") {
				t.Fatalf("refused valid fields %q %q", id, event)
			}
			return
		}
		if len(b) > EventLen(&ev) {
			t.Fatalf("EventLen %d < %d", EventLen(&ev), len(b))
		}
		evs, retry := parseEventStream(b)
		if len(evs) != 1 {
			t.Fatalf("%q dispatched %d events", b, len(evs))
		}
		want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(string(data))
		wantType := event
		if wantType == "" {
			wantType = "message"
		}
		if got := evs[0]; got.Data != want || got.Event != wantType || got.LastID != id {
			t.Fatalf("%q read back as %+v", b, got)
		}
		if ev.Retry > 0 && int64(retry) != max(ev.Retry.Milliseconds(), 1) || ev.Retry <= 0 && retry != -1 {
			t.Fatalf("%q: retry %d for %v", b, retry, ev.Retry)
		}
	})
}

// FuzzAcceptsEventStream: no input panics, and a yes always names the
// type, not preceded by a zero q of its own.
func FuzzAcceptsEventStream(f *testing.F) {
	for _, s := range []string{"text/event-stream", "text/event-stream;q=0", `a;b="x,y", text/event-stream`, "*/*"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, accept []byte) {
		if AcceptsEventStream(accept) && !bytes.Contains(bytes.ToLower(accept), []byte("text/event-stream")) {
			t.Fatalf("%q accepted without naming text/event-stream", accept)
		}
	})
}
