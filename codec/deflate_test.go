package codec

import (
	"errors"
	"testing"
)

// Default offers of the peers we test against.
const (
	offerChromium  = "permessage-deflate; client_max_window_bits"
	offerFirefox   = "permessage-deflate"
	offerNodeWS    = "permessage-deflate; client_max_window_bits"
	offerPython    = "permessage-deflate; client_max_window_bits" // websockets 10.4
	offerMultiple  = "permessage-deflate; client_max_window_bits=8; server_max_window_bits=10, permessage-deflate"
	fallbackMarker = ", permessage-deflate; client_no_context_takeover" // accepted when what precedes it is declined
)

type negotiateTest struct {
	name   string
	header string
	policy DeflatePolicy
	want   DeflateParams
	ok     bool
}

func TestNegotiateDeflate(t *testing.T) {
	tests := []negotiateTest{
		{
			name:   "chromium",
			header: offerChromium,
			ok:     true,
		},
		{
			name:   "firefox",
			header: offerFirefox,
			ok:     true,
		},
		{
			name:   "node ws",
			header: offerNodeWS,
			ok:     true,
		},
		{
			name:   "python websockets",
			header: offerPython,
			ok:     true,
		},
		{
			name:   "first offer honoured by default",
			header: offerMultiple,
			want:   DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 8},
			ok:     true,
		},
		{
			name:   "first offer asks for a window below the minimum",
			header: offerMultiple,
			policy: DeflatePolicy{MinServerWindowBits: 11},
			ok:     true,
		},
		{
			name:   "first offer honoured with a minimum it meets",
			header: offerMultiple,
			policy: DeflatePolicy{MinServerWindowBits: 10},
			want:   DeflateParams{ServerMaxWindowBits: 10, ClientMaxWindowBits: 8},
			ok:     true,
		},
		{
			name:   "minimum 8 honours 8",
			header: "permessage-deflate; server_max_window_bits=8",
			policy: DeflatePolicy{MinServerWindowBits: 8},
			want:   DeflateParams{ServerMaxWindowBits: 8},
			ok:     true,
		},
		{
			name:   "server_max_window_bits=15 is honoured by default",
			header: "permessage-deflate; server_max_window_bits=15",
			want:   DeflateParams{ServerMaxWindowBits: 15},
			ok:     true,
		},
		{
			name:   "server_max_window_bits=14 is honoured by default",
			header: "permessage-deflate; server_max_window_bits=14",
			want:   DeflateParams{ServerMaxWindowBits: 14},
			ok:     true,
		},
		{
			name:   "server_max_window_bits=14 is not with a minimum of 15",
			header: "permessage-deflate; server_max_window_bits=14",
			policy: DeflatePolicy{MinServerWindowBits: 15},
			ok:     false,
		},
		{
			name:   "the first acceptable offer wins",
			header: "permessage-deflate; server_no_context_takeover, permessage-deflate",
			want:   DeflateParams{ServerNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "other extension before",
			header: "x-webkit-deflate-frame, permessage-deflate",
			ok:     true,
		},
		{
			name:   "other extension with parameters before and after",
			header: `x-webkit-deflate-frame; max_window_bits=10; x="a,b;c", permessage-deflate; server_no_context_takeover, foo; bar`,
			want:   DeflateParams{ServerNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "only other extensions",
			header: "x-webkit-deflate-frame, foo; bar=1",
			ok:     false,
		},
		{
			name:   "empty",
			header: "",
			ok:     false,
		},
		{
			name:   "empty elements only",
			header: " , ,\t",
			ok:     false,
		},
		{
			name:   "empty elements around an offer",
			header: ", ,permessage-deflate,,",
			ok:     true,
		},
		{
			name:   "server_no_context_takeover is echoed",
			header: "permessage-deflate; server_no_context_takeover",
			want:   DeflateParams{ServerNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "client_no_context_takeover is echoed",
			header: "permessage-deflate; client_no_context_takeover",
			want:   DeflateParams{ClientNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "policy adds server_no_context_takeover",
			header: offerChromium,
			policy: DeflatePolicy{ServerNoContextTakeover: true},
			want:   DeflateParams{ServerNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "policy adds client_no_context_takeover without client_max_window_bits offered",
			header: offerFirefox,
			policy: DeflatePolicy{ClientNoContextTakeover: true},
			want:   DeflateParams{ClientNoContextTakeover: true},
			ok:     true,
		},
		{
			name:   "client_max_window_bits with a value is echoed",
			header: "permessage-deflate; client_max_window_bits=10",
			want:   DeflateParams{ClientMaxWindowBits: 10},
			ok:     true,
		},
		{
			name:   "all four",
			header: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9",
			want:   DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 9},
			ok:     true,
		},
		{
			name:   "quoted client_max_window_bits",
			header: `permessage-deflate; client_max_window_bits="10"`,
			want:   DeflateParams{ClientMaxWindowBits: 10},
			ok:     true,
		},
		{
			name:   "quoted server_max_window_bits",
			header: `permessage-deflate; server_max_window_bits="15"`,
			want:   DeflateParams{ServerMaxWindowBits: 15},
			ok:     true,
		},
		{
			name:   "quoted with an escape",
			header: `permessage-deflate; client_max_window_bits="1\1"`,
			want:   DeflateParams{ClientMaxWindowBits: 11},
			ok:     true,
		},
		{
			name:   "white space everywhere",
			header: " \tpermessage-deflate ;\tclient_max_window_bits = \"12\" ; server_no_context_takeover ,  ",
			want:   DeflateParams{ServerNoContextTakeover: true, ClientMaxWindowBits: 12},
			ok:     true,
		},
		{
			name:   "folded line",
			header: "permessage-deflate;\r\n client_max_window_bits=13",
			want:   DeflateParams{ClientMaxWindowBits: 13},
			ok:     true,
		},
		{
			name:   "later malformed offer is only declined",
			header: "permessage-deflate, permessage-deflate; foo",
			ok:     true,
		},
		{
			name:   "name in another case is another extension",
			header: "Permessage-Deflate" + fallbackMarker,
			want:   DeflateParams{ClientNoContextTakeover: true},
			ok:     true,
		},

		// Malformed offers (RFC 7692 §5): declined, the next one accepted.
		declined("repeated server_no_context_takeover", "permessage-deflate; server_no_context_takeover; server_no_context_takeover"),
		declined("repeated client_no_context_takeover", "permessage-deflate; client_no_context_takeover; client_no_context_takeover"),
		declined("repeated client_max_window_bits without values", "permessage-deflate; client_max_window_bits; client_max_window_bits"),
		declined("repeated client_max_window_bits, one value", "permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
		declined("repeated server_max_window_bits", "permessage-deflate; server_max_window_bits=15; server_max_window_bits=15"),
		declined("window 16", "permessage-deflate; client_max_window_bits=16"),
		declined("window 7", "permessage-deflate; client_max_window_bits=7"),
		declined("window 0", "permessage-deflate; client_max_window_bits=0"),
		declined("window abc", "permessage-deflate; client_max_window_bits=abc"),
		declined("window with a leading zero", "permessage-deflate; client_max_window_bits=09"),
		declined("window 010", "permessage-deflate; client_max_window_bits=010"),
		declined("window +9", "permessage-deflate; client_max_window_bits=+9"),
		declined("window -1", "permessage-deflate; client_max_window_bits=-1"),
		declined("window 1e1", "permessage-deflate; client_max_window_bits=1e1"),
		declined("window empty quoted", `permessage-deflate; client_max_window_bits=""`),
		declined("window quoted with a space", `permessage-deflate; client_max_window_bits=" 10"`),
		declined("window quoted 100 with an escape", `permessage-deflate; client_max_window_bits="10\0"`),
		declined("server window 16", "permessage-deflate; server_max_window_bits=16"),
		declined("server window without a value", "permessage-deflate; server_max_window_bits"),
		declined("server_no_context_takeover with a value", "permessage-deflate; server_no_context_takeover=1"),
		declined("client_no_context_takeover with an empty quoted value", `permessage-deflate; client_no_context_takeover=""`),
		declined("unknown parameter", "permessage-deflate; foo"),
		declined("unknown parameter with a value", "permessage-deflate; mux=1"),
		declined("parameter name in another case", "permessage-deflate; Server_No_Context_Takeover"),
		declined("max_window_bits of the old draft", "permessage-deflate; max_window_bits=10"),

		// The line does not follow RFC 6455 §9.1: nothing on it is trusted.
		malformed("trailing semicolon", "permessage-deflate;"),
		malformed("trailing semicolon after a parameter", "permessage-deflate; server_no_context_takeover;"),
		malformed("trailing equals", "permessage-deflate; client_max_window_bits="),
		malformed("equals then comma", "permessage-deflate; client_max_window_bits=, permessage-deflate"),
		malformed("two names", "foo permessage-deflate"),
		malformed("name after a value", "permessage-deflate; client_max_window_bits=10 permessage-deflate"),
		malformed("two values", "permessage-deflate; client_max_window_bits=10 11"),
		malformed("semicolon first", "; permessage-deflate"),
		malformed("empty parameter", "permessage-deflate;; client_max_window_bits"),
		malformed("parameter without a name", "permessage-deflate; =10"),
		malformed("value on the name", "permessage-deflate=1"),
		malformed("quoted name", `"permessage-deflate"`),
		malformed("quoted parameter name", `permessage-deflate; "client_max_window_bits"`),
		malformed("unterminated quote", `permessage-deflate; client_max_window_bits="10`),
		malformed("something after a quoted value", `permessage-deflate; client_max_window_bits="10"x`),
		malformed("comment", "permessage-deflate (comment)"),
		malformed("backslash outside quotes", `permessage-deflate; client_max_window_bits=1\0`),
		malformed("control byte", "permessage-deflate\x00"),
		malformed("bare CR LF", "permessage-deflate;\r\nclient_max_window_bits"),
		malformed("non-ASCII", "permessage-deflate, caf\xc3\xa9"),
		malformed("other separator", "permessage-deflate; a/b"),
		malformed("error after an acceptable offer", "permessage-deflate, ;"),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NegotiateDeflate([]byte(tt.header), tt.policy)
			if got != tt.want || ok != tt.ok {
				t.Errorf("NegotiateDeflate(%q) = %+v, %v; want %+v, %v", tt.header, got, ok, tt.want, tt.ok)
			}
		})
	}
}

// declined is a case whose offer is malformed and so declined, followed by an
// offer that is accepted: a malformed offer is not a malformed line.
func declined(name, offer string) struct {
	name   string
	header string
	policy DeflatePolicy
	want   DeflateParams
	ok     bool
} {
	return struct {
		name   string
		header string
		policy DeflatePolicy
		want   DeflateParams
		ok     bool
	}{
		name:   "declined: " + name,
		header: offer + fallbackMarker,
		want:   DeflateParams{ClientNoContextTakeover: true},
		ok:     true,
	}
}

// malformed is a case whose line breaks the grammar, with an acceptable offer
// on it.
func malformed(name, header string) struct {
	name   string
	header string
	policy DeflatePolicy
	want   DeflateParams
	ok     bool
} {
	return struct {
		name   string
		header string
		policy DeflatePolicy
		want   DeflateParams
		ok     bool
	}{
		name:   "malformed: " + name,
		header: header + fallbackMarker,
		ok:     false,
	}
}

// The engine calls NegotiateDeflate on each Sec-WebSocket-Extensions line in
// order and stops at the first acceptance.
func TestNegotiateDeflateLines(t *testing.T) {
	negotiate := func(lines []string, policy DeflatePolicy) (DeflateParams, bool) {
		for _, line := range lines {
			if p, ok := NegotiateDeflate([]byte(line), policy); ok {
				return p, true
			}
		}
		return DeflateParams{}, false
	}
	tests := []struct {
		name  string
		lines []string
		want  DeflateParams
		ok    bool
	}{
		{
			name:  "offers on separate lines keep their order",
			lines: []string{"permessage-deflate; server_max_window_bits=7", "x-foo", "permessage-deflate; server_no_context_takeover", "permessage-deflate"},
			want:  DeflateParams{ServerNoContextTakeover: true},
			ok:    true,
		},
		{
			name:  "a malformed line does not hide the next",
			lines: []string{"permessage-deflate;", "permessage-deflate; client_max_window_bits=10"},
			want:  DeflateParams{ClientMaxWindowBits: 10},
			ok:    true,
		},
		{
			name:  "nothing acceptable",
			lines: []string{"permessage-deflate; server_max_window_bits=7", "x-foo"},
			ok:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := negotiate(tt.lines, DeflatePolicy{})
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestAppendDeflate(t *testing.T) {
	tests := []struct {
		name     string
		p        DeflateParams
		offer    string
		response string
	}{
		{
			name:     "no parameters",
			p:        DeflateParams{},
			offer:    "permessage-deflate",
			response: "permessage-deflate",
		},
		{
			name:     "client_max_window_bits without a value",
			p:        DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			offer:    "permessage-deflate; client_max_window_bits",
			response: "permessage-deflate",
		},
		{
			name:     "all four",
			p:        DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: 8},
			offer:    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8",
			response: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8",
		},
		{
			name:     "windows 9 and 15",
			p:        DeflateParams{ServerMaxWindowBits: 15, ClientMaxWindowBits: 9},
			offer:    "permessage-deflate; server_max_window_bits=15; client_max_window_bits=9",
			response: "permessage-deflate; server_max_window_bits=15; client_max_window_bits=9",
		},
		{
			name:     "invalid windows left out",
			p:        DeflateParams{ServerMaxWindowBits: 16, ClientMaxWindowBits: 7},
			offer:    "permessage-deflate",
			response: "permessage-deflate",
		},
		{
			name:     "negative windows left out",
			p:        DeflateParams{ServerMaxWindowBits: -1, ClientMaxWindowBits: -2},
			offer:    "permessage-deflate",
			response: "permessage-deflate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("x-foo, ")
			if got := AppendDeflateOffer(prefix[:len(prefix):len(prefix)], tt.p); string(got) != "x-foo, "+tt.offer {
				t.Errorf("AppendDeflateOffer = %q, want %q", got, "x-foo, "+tt.offer)
			}
			if got := AppendDeflateResponse(nil, tt.p); string(got) != tt.response {
				t.Errorf("AppendDeflateResponse = %q, want %q", got, tt.response)
			}
		})
	}
}

func TestParseDeflateResponse(t *testing.T) {
	tests := []struct {
		name    string
		ext     string
		offer   DeflateParams
		want    DeflateParams
		wantErr error
	}{
		{
			name:  "plain acceptance of chromium's offer",
			ext:   "permessage-deflate",
			offer: DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
		},
		{
			name:  "server limits the client window",
			ext:   "permessage-deflate; client_max_window_bits=10",
			offer: DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			want:  DeflateParams{ClientMaxWindowBits: 10},
		},
		{
			name:  "quoted value",
			ext:   `permessage-deflate; client_max_window_bits="10"`,
			offer: DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			want:  DeflateParams{ClientMaxWindowBits: 10},
		},
		{
			name:    "client_max_window_bits not offered",
			ext:     "permessage-deflate; client_max_window_bits=10",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "client_max_window_bits without a value",
			ext:     "permessage-deflate; client_max_window_bits",
			offer:   DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			wantErr: ErrExtensionParams,
		},
		{
			name:  "client_max_window_bits equal to the offer",
			ext:   "permessage-deflate; client_max_window_bits=10",
			offer: DeflateParams{ClientMaxWindowBits: 10},
			want:  DeflateParams{ClientMaxWindowBits: 10},
		},
		{
			name:  "client_max_window_bits below the offer",
			ext:   "permessage-deflate; client_max_window_bits=9",
			offer: DeflateParams{ClientMaxWindowBits: 10},
			want:  DeflateParams{ClientMaxWindowBits: 9},
		},
		{
			name:  "client_max_window_bits offered with a value, not answered",
			ext:   "permessage-deflate",
			offer: DeflateParams{ClientMaxWindowBits: 10},
		},
		{
			name:    "client_max_window_bits above the offer",
			ext:     "permessage-deflate; client_max_window_bits=11",
			offer:   DeflateParams{ClientMaxWindowBits: 10},
			wantErr: ErrExtensionParams,
		},
		{
			name:  "server_max_window_bits equal to the offer",
			ext:   "permessage-deflate; server_max_window_bits=10",
			offer: DeflateParams{ServerMaxWindowBits: 10},
			want:  DeflateParams{ServerMaxWindowBits: 10},
		},
		{
			name:  "server_max_window_bits below the offer",
			ext:   "permessage-deflate; server_max_window_bits=9",
			offer: DeflateParams{ServerMaxWindowBits: 10},
			want:  DeflateParams{ServerMaxWindowBits: 9},
		},
		{
			name:    "server_max_window_bits above the offer",
			ext:     "permessage-deflate; server_max_window_bits=11",
			offer:   DeflateParams{ServerMaxWindowBits: 10},
			wantErr: ErrExtensionParams,
		},
		{
			name:    "server_max_window_bits offered, not answered",
			ext:     "permessage-deflate",
			offer:   DeflateParams{ServerMaxWindowBits: 10},
			wantErr: ErrExtensionParams,
		},
		{
			name: "server_max_window_bits imposed",
			ext:  "permessage-deflate; server_max_window_bits=12",
			want: DeflateParams{ServerMaxWindowBits: 12},
		},
		{
			name:    "server_max_window_bits without a value",
			ext:     "permessage-deflate; server_max_window_bits",
			wantErr: ErrExtensionParams,
		},
		{
			name:  "server_no_context_takeover answered",
			ext:   "permessage-deflate; server_no_context_takeover",
			offer: DeflateParams{ServerNoContextTakeover: true},
			want:  DeflateParams{ServerNoContextTakeover: true},
		},
		{
			name:    "server_no_context_takeover offered, not answered",
			ext:     "permessage-deflate",
			offer:   DeflateParams{ServerNoContextTakeover: true},
			wantErr: ErrExtensionParams,
		},
		{
			name: "server_no_context_takeover imposed",
			ext:  "permessage-deflate; server_no_context_takeover",
			want: DeflateParams{ServerNoContextTakeover: true},
		},
		{
			name: "client_no_context_takeover imposed",
			ext:  "permessage-deflate; client_no_context_takeover",
			want: DeflateParams{ClientNoContextTakeover: true},
		},
		{
			name:  "client_no_context_takeover answered",
			ext:   "permessage-deflate; client_no_context_takeover",
			offer: DeflateParams{ClientNoContextTakeover: true},
			want:  DeflateParams{ClientNoContextTakeover: true},
		},
		{
			name:  "client_no_context_takeover offered, not answered",
			ext:   "permessage-deflate",
			offer: DeflateParams{ClientNoContextTakeover: true},
		},
		{
			name:  "all four",
			ext:   "permessage-deflate; client_max_window_bits=8; server_max_window_bits=15; client_no_context_takeover; server_no_context_takeover",
			offer: DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: WindowBitsNoValue},
			want:  DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 15, ClientMaxWindowBits: 8},
		},
		{
			name: "empty elements",
			ext:  " , permessage-deflate , ",
		},
		{
			name:    "another extension",
			ext:     "x-webkit-deflate-frame",
			wantErr: ErrExtensionNotOffer,
		},
		{
			name:    "another extension too",
			ext:     "permessage-deflate, x-foo",
			wantErr: ErrExtensionNotOffer,
		},
		{
			name:    "name in another case",
			ext:     "Permessage-Deflate",
			wantErr: ErrExtensionNotOffer,
		},
		{
			name:    "accepted twice",
			ext:     "permessage-deflate, permessage-deflate",
			wantErr: ErrExtensionNotOffer,
		},
		{
			name:    "repeated parameter",
			ext:     "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "repeated window",
			ext:     "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
			offer:   DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			wantErr: ErrExtensionParams,
		},
		{
			name:    "unknown parameter",
			ext:     "permessage-deflate; foo",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "invalid window",
			ext:     "permessage-deflate; server_max_window_bits=16",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "value on a flag",
			ext:     "permessage-deflate; client_no_context_takeover=true",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "empty",
			ext:     "",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "empty elements only",
			ext:     " ,, ",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "trailing semicolon",
			ext:     "permessage-deflate;",
			wantErr: ErrExtensionParams,
		},
		{
			name:    "two names",
			ext:     "foo permessage-deflate",
			wantErr: ErrExtensionParams,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeflateResponse([]byte(tt.ext), tt.offer)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("ParseDeflateResponse(%q) error = %v, want %v", tt.ext, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseDeflateResponse(%q) = %+v, want %+v", tt.ext, got, tt.want)
			}
		})
	}
}

// An offer goes from the client to the server and the answer back.
func TestDeflateRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		offer  DeflateParams
		policy DeflatePolicy
		want   DeflateParams
	}{
		{
			name: "no parameters",
		},
		{
			name:  "chromium",
			offer: DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
		},
		{
			name:   "chromium, server imposes no context takeover both ways",
			offer:  DeflateParams{ClientMaxWindowBits: WindowBitsNoValue},
			policy: DeflatePolicy{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			want:   DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
		},
		{
			name:  "no context takeover asked both ways",
			offer: DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
			want:  DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
		},
		{
			name:  "server window 15",
			offer: DeflateParams{ServerMaxWindowBits: 15},
			want:  DeflateParams{ServerMaxWindowBits: 15},
		},
		{
			name:   "server window 10 with a policy that allows it",
			offer:  DeflateParams{ServerMaxWindowBits: 10},
			policy: DeflatePolicy{MinServerWindowBits: 9},
			want:   DeflateParams{ServerMaxWindowBits: 10},
		},
		{
			name:  "client window 9",
			offer: DeflateParams{ClientMaxWindowBits: 9},
			want:  DeflateParams{ClientMaxWindowBits: 9},
		},
		{
			name:   "all four",
			offer:  DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 8},
			policy: DeflatePolicy{MinServerWindowBits: 8},
			want:   DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 8, ClientMaxWindowBits: 8},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := AppendDeflateOffer(nil, tt.offer)
			p, ok := NegotiateDeflate(header, tt.policy)
			if !ok || p != tt.want {
				t.Fatalf("NegotiateDeflate(%q) = %+v, %v; want %+v", header, p, ok, tt.want)
			}
			resp := AppendDeflateResponse(nil, p)
			got, err := ParseDeflateResponse(resp, tt.offer)
			if err != nil || got != p {
				t.Fatalf("ParseDeflateResponse(%q) = %+v, %v; want %+v", resp, got, err, p)
			}
		})
	}
}

func TestParseWindowBits(t *testing.T) {
	tests := []struct {
		name   string
		v      string
		quoted bool
		want   int
	}{
		{
			name: "8",
			v:    "8",
			want: 8,
		},
		{
			name: "15",
			v:    "15",
			want: 15,
		},
		{
			name: "16",
			v:    "16",
			want: 0,
		},
		{
			name: "7",
			v:    "7",
			want: 0,
		},
		{
			name: "empty",
			v:    "",
			want: 0,
		},
		{
			name: "leading zero",
			v:    "08",
			want: 0,
		},
		{
			name: "three digits",
			v:    "100",
			want: 0,
		},
		{
			name: "escape unquoted",
			v:    `1\0`,
			want: 0,
		},
		{
			name:   "escape quoted",
			v:      `1\0`,
			quoted: true,
			want:   10,
		},
		{
			name:   "escaped both",
			v:      `\1\2`,
			quoted: true,
			want:   12,
		},
		{
			name:   "lone backslash",
			v:      `1\`,
			quoted: true,
			want:   0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseWindowBits([]byte(tt.v), tt.quoted); got != tt.want {
				t.Errorf("parseWindowBits(%q, %v) = %d, want %d", tt.v, tt.quoted, got, tt.want)
			}
		})
	}
}

func BenchmarkNegotiateDeflate(b *testing.B) {
	for _, bb := range []struct {
		name   string
		header string
	}{
		{
			name:   "chromium",
			header: offerChromium,
		},
		{
			name:   "multiple",
			header: offerMultiple,
		},
	} {
		b.Run(bb.name, func(b *testing.B) {
			header := []byte(bb.header)
			buf := make([]byte, 0, 128)
			b.SetBytes(int64(len(header)))
			b.ReportAllocs()
			for b.Loop() {
				p, ok := NegotiateDeflate(header, DeflatePolicy{})
				if !ok {
					b.Fatal("declined")
				}
				buf = AppendDeflateResponse(buf[:0], p)
			}
		})
	}
}
