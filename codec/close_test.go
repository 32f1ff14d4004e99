package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStatusCodeIsValid(t *testing.T) {
	valid := func(c StatusCode) bool {
		return c >= 1000 && c <= 1003 || c >= 1007 && c <= 1014 || c >= 3000 && c <= 4999
	}
	// Exhaustive over the whole 16-bit space, against the RFC's table.
	for c := 0; c <= 0xFFFF; c++ {
		if got := StatusCode(c).IsValid(); got != valid(StatusCode(c)) {
			t.Fatalf("IsValid(%d) = %v", c, got)
		}
	}
	for _, c := range []StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		if c.IsValid() {
			t.Errorf("%d must be invalid", c)
		}
	}
}

func TestParseClosePayload(t *testing.T) {
	tests := []struct {
		name       string
		payload    []byte
		wantCode   StatusCode
		wantReason string
		wantErr    error
		wantStatus StatusCode // close code the connection fails with
	}{
		{
			name:     "empty",
			payload:  nil,
			wantCode: StatusNoStatusReceived,
		},
		{
			name:       "one byte",
			payload:    []byte{0x03},
			wantErr:    ErrCloseTooShort,
			wantStatus: StatusProtocolError,
		},
		{
			name:     "1000 no reason",
			payload:  []byte{0x03, 0xE8},
			wantCode: StatusNormalClosure,
		},
		{
			name:       "1000 with reason",
			payload:    append([]byte{0x03, 0xE8}, "bye now"...),
			wantCode:   StatusNormalClosure,
			wantReason: "bye now",
		},
		{
			name:       "4999 with utf8 reason",
			payload:    append([]byte{0x13, 0x87}, "κόσμε"...),
			wantCode:   4999,
			wantReason: "κόσμε",
		},
		{
			name:       "999",
			payload:    []byte{0x03, 0xE7},
			wantErr:    ErrCloseCode,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "1005 on the wire",
			payload:    []byte{0x03, 0xED},
			wantErr:    ErrCloseCode,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "1006 on the wire",
			payload:    []byte{0x03, 0xEE},
			wantErr:    ErrCloseCode,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "1015 on the wire",
			payload:    []byte{0x03, 0xF7},
			wantErr:    ErrCloseCode,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "5000",
			payload:    []byte{0x13, 0x88},
			wantErr:    ErrCloseCode,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "invalid utf8 reason",
			payload:    []byte{0x03, 0xE8, 0xCE, 0xBA, 0xE1, 0xBD},
			wantErr:    ErrCloseReasonUTF8,
			wantStatus: StatusInvalidPayloadData,
		},
		{
			name:       "surrogate in reason",
			payload:    []byte{0x03, 0xE8, 0xED, 0xA0, 0x80},
			wantErr:    ErrCloseReasonUTF8,
			wantStatus: StatusInvalidPayloadData,
		},
		{
			name:       "over-long payload",
			payload:    append([]byte{0x03, 0xE8}, strings.Repeat("x", 124)...),
			wantErr:    ErrCloseReasonLong,
			wantStatus: StatusProtocolError,
		},
		{
			name:       "longest payload",
			payload:    append([]byte{0x03, 0xE8}, strings.Repeat("x", 123)...),
			wantCode:   StatusNormalClosure,
			wantReason: strings.Repeat("x", 123),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, reason, err := ParseClosePayload(tt.payload)
			if err != tt.wantErr {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if CloseStatus(err) != tt.wantStatus {
					t.Fatalf("CloseStatus = %d, want %d", CloseStatus(err), tt.wantStatus)
				}
				return
			}
			if code != tt.wantCode || string(reason) != tt.wantReason {
				t.Fatalf("got %d %q, want %d %q", code, reason, tt.wantCode, tt.wantReason)
			}
		})
	}
}

func TestAppendClosePayload(t *testing.T) {
	tests := []struct {
		name   string
		code   StatusCode
		reason string
		want   []byte
	}{
		{
			name: "no status",
			code: StatusNoStatusReceived,
			want: []byte{},
		},
		{
			name: "zero code",
			code: 0,
			want: []byte{},
		},
		{
			name:   "1001 with reason",
			code:   StatusGoingAway,
			reason: "restart",
			want:   append([]byte{0x03, 0xE9}, "restart"...),
		},
		{
			name:   "long reason is cut",
			code:   StatusNormalClosure,
			reason: strings.Repeat("y", 200),
			want:   append([]byte{0x03, 0xE8}, strings.Repeat("y", 123)...),
		},
		{
			name:   "cut keeps runes whole",
			code:   StatusNormalClosure,
			reason: strings.Repeat("a", 122) + "é",
			want:   append([]byte{0x03, 0xE8}, strings.Repeat("a", 122)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AppendClosePayload([]byte{}, tt.code, tt.reason)
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got % x, want % x", got, tt.want)
			}
			if len(got) > 0 {
				code, reason, err := ParseClosePayload(got)
				if err != nil || code != tt.code || !utf8.Valid(reason) {
					t.Fatalf("round trip: %d %q %v", code, reason, err)
				}
			}
		})
	}
}

func TestCloseError(t *testing.T) {
	err := fmt.Errorf("read: %w", &CloseError{Code: StatusGoingAway, Reason: "shutdown"})
	if got := CloseStatus(err); got != StatusGoingAway {
		t.Fatalf("CloseStatus = %d", got)
	}
	if got := err.Error(); got != "read: gale: close 1001 (GoingAway): shutdown" {
		t.Fatalf("Error() = %q", got)
	}
	if got := CloseStatus(fmt.Errorf("x: %w", ErrInvalidUTF8)); got != StatusInvalidPayloadData {
		t.Fatalf("CloseStatus(ProtocolError) = %d", got)
	}
	if got := CloseStatus(errors.New("EOF")); got != 0 {
		t.Fatalf("CloseStatus(transport error) = %d", got)
	}
	if got := CloseStatus(nil); got != 0 {
		t.Fatalf("CloseStatus(nil) = %d", got)
	}
	var pe *ProtocolError
	if !errors.As(fmt.Errorf("wrapped: %w", ErrFrameTooBig), &pe) || pe.Code != StatusMessageTooBig {
		t.Fatalf("errors.As ProtocolError: %v", pe)
	}
}
