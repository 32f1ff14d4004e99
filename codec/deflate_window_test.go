package codec

import (
	"errors"
	"fmt"
	"testing"
)

// Every window size 8..15 in offers and in answers, for both parameters and
// both roles (RFC 7692 §7.1.2), next to the invalid values around them.

func TestNegotiateDeflateWindows(t *testing.T) {
	var tests []negotiateTest
	for n := 8; n <= 15; n++ {
		tests = append(tests,
			negotiateTest{
				name:   fmt.Sprintf("server_max_window_bits=%d honoured", n),
				header: fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", n),
				want:   DeflateParams{ServerMaxWindowBits: n},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("client_max_window_bits=%d echoed", n),
				header: fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", n),
				want:   DeflateParams{ClientMaxWindowBits: n},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("both %d, quoted, with context takeover refused", n),
				header: fmt.Sprintf(`permessage-deflate; server_max_window_bits="%d"; client_max_window_bits="%d"`, n, n),
				policy: DeflatePolicy{ServerNoContextTakeover: true, ClientNoContextTakeover: true},
				want:   DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: n, ClientMaxWindowBits: n},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("server_max_window_bits=%d against a minimum of 12", n),
				header: fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", n),
				policy: DeflatePolicy{MinServerWindowBits: 12},
				want:   DeflateParams{ServerMaxWindowBits: n * b2i(n >= 12)},
				ok:     n >= 12,
			},
			// The policy's caps.
			negotiateTest{
				name:   fmt.Sprintf("server cap %d, no server_max_window_bits offered", n),
				header: "permessage-deflate",
				policy: DeflatePolicy{ServerMaxWindowBits: n},
				want:   DeflateParams{ServerMaxWindowBits: n},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("server cap 11, server_max_window_bits=%d offered", n),
				header: fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", n),
				policy: DeflatePolicy{ServerMaxWindowBits: 11},
				want:   DeflateParams{ServerMaxWindowBits: min(n, 11)},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("client cap %d, client_max_window_bits offered without a value", n),
				header: "permessage-deflate; client_max_window_bits",
				policy: DeflatePolicy{ClientMaxWindowBits: n},
				want:   DeflateParams{ClientMaxWindowBits: n},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("client cap 10, client_max_window_bits=%d offered", n),
				header: fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", n),
				policy: DeflatePolicy{ClientMaxWindowBits: 10},
				want:   DeflateParams{ClientMaxWindowBits: min(n, 10)},
				ok:     true,
			},
			negotiateTest{
				name:   fmt.Sprintf("client cap %d, client_max_window_bits not offered: no limit", n),
				header: "permessage-deflate; server_no_context_takeover",
				policy: DeflatePolicy{ClientMaxWindowBits: n},
				want:   DeflateParams{ServerNoContextTakeover: true},
				ok:     true,
			},
		)
	}
	for _, bad := range []string{"7", "16", "0", "abc", "08", `""`, "9.5", "-8", "150"} {
		for _, param := range []string{serverMaxWindowBits, clientMaxWindowBits} {
			tests = append(tests, negotiateTest{
				name:   fmt.Sprintf("%s=%s declined", param, bad),
				header: fmt.Sprintf("permessage-deflate; %s=%s", param, bad),
			}, negotiateTest{
				name:   fmt.Sprintf("%s=%s declined, the next offer taken", param, bad),
				header: fmt.Sprintf("permessage-deflate; %s=%s", param, bad) + fallbackMarker,
				want:   DeflateParams{ClientNoContextTakeover: true},
				ok:     true,
			})
		}
	}
	for n := 8; n <= 15; n++ {
		for _, param := range []string{serverMaxWindowBits, clientMaxWindowBits} {
			tests = append(tests, negotiateTest{
				name:   fmt.Sprintf("%s=%d repeated", param, n),
				header: fmt.Sprintf("permessage-deflate; %s=%d; %s=%d", param, n, param, n),
			}, negotiateTest{
				name:   fmt.Sprintf("%s=%d then 15", param, n),
				header: fmt.Sprintf("permessage-deflate; %s=%d; %s=15", param, n, param),
			})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, ok := NegotiateDeflate([]byte(tt.header), tt.policy)
			if p != tt.want || ok != tt.ok {
				t.Fatalf("NegotiateDeflate(%q, %+v) = %+v, %v; want %+v, %v", tt.header, tt.policy, p, ok, tt.want, tt.ok)
			}
			if !ok {
				return
			}
			// The response says exactly the windows in force.
			resp := string(AppendDeflateResponse(nil, p))
			for _, w := range []struct {
				name string
				n    int
			}{{serverMaxWindowBits, p.ServerMaxWindowBits}, {clientMaxWindowBits, p.ClientMaxWindowBits}} {
				if has, want := containsParam(resp, w.name, w.n), w.n != 0; has != want {
					t.Errorf("response %q: %s=%d present %v", resp, w.name, w.n, has)
				}
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func containsParam(ext, name string, n int) bool {
	want := fmt.Sprintf("; %s=%d", name, n)
	for i := 0; i+len(want) <= len(ext); i++ {
		if ext[i:i+len(want)] == want && (i+len(want) == len(ext) || ext[i+len(want)] == ';') {
			return true
		}
	}
	return false
}

// The client side: Gale offers client_max_window_bits without a value, so a
// server may answer either window at any size 8..15; each is returned for
// the client to compress (client_max_window_bits) or keep history
// (server_max_window_bits) by.
func TestParseDeflateResponseWindows(t *testing.T) {
	type tc struct {
		name  string
		ext   string
		offer DeflateParams
		want  DeflateParams
		err   error
	}
	noValue := DeflateParams{ClientMaxWindowBits: WindowBitsNoValue}
	var tests []tc
	for n := 8; n <= 15; n++ {
		tests = append(tests,
			tc{name: fmt.Sprintf("client_max_window_bits=%d", n), offer: noValue,
				ext: fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", n), want: DeflateParams{ClientMaxWindowBits: n}},
			tc{name: fmt.Sprintf("server_max_window_bits=%d imposed", n), offer: noValue,
				ext: fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", n), want: DeflateParams{ServerMaxWindowBits: n}},
			tc{name: fmt.Sprintf("both %d with no context takeover", n), offer: noValue,
				ext:  fmt.Sprintf("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=%d; client_max_window_bits=%d", n, n),
				want: DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: n, ClientMaxWindowBits: n}},
			// A client that offered a limit gets it or a smaller one.
			tc{name: fmt.Sprintf("server_max_window_bits=%d against an offer of 12", n),
				offer: DeflateParams{ServerMaxWindowBits: 12, ClientMaxWindowBits: WindowBitsNoValue},
				ext:   fmt.Sprintf("permessage-deflate; server_max_window_bits=%d", n),
				want:  DeflateParams{ServerMaxWindowBits: n * b2i(n <= 12)}, err: errIf(n > 12)},
			tc{name: fmt.Sprintf("client_max_window_bits=%d against an offer of 12", n),
				offer: DeflateParams{ClientMaxWindowBits: 12},
				ext:   fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", n),
				want:  DeflateParams{ClientMaxWindowBits: n * b2i(n <= 12)}, err: errIf(n > 12)},
			// Never offered: a server must not answer client_max_window_bits.
			tc{name: fmt.Sprintf("client_max_window_bits=%d not offered", n),
				ext: fmt.Sprintf("permessage-deflate; client_max_window_bits=%d", n), err: ErrExtensionParams},
			tc{name: fmt.Sprintf("server_max_window_bits=%d repeated", n), offer: noValue,
				ext: fmt.Sprintf("permessage-deflate; server_max_window_bits=%d; server_max_window_bits=%d", n, n), err: ErrExtensionParams},
			tc{name: fmt.Sprintf("client_max_window_bits=%d repeated", n), offer: noValue,
				ext: fmt.Sprintf("permessage-deflate; client_max_window_bits=%d; client_max_window_bits=%d", n, n), err: ErrExtensionParams},
		)
	}
	for _, bad := range []string{"7", "16", "0", "abc", "08"} {
		for _, param := range []string{serverMaxWindowBits, clientMaxWindowBits} {
			tests = append(tests, tc{name: fmt.Sprintf("%s=%s", param, bad), offer: noValue,
				ext: fmt.Sprintf("permessage-deflate; %s=%s", param, bad), err: ErrExtensionParams})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseDeflateResponse([]byte(tt.ext), tt.offer)
			if p != tt.want || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("ParseDeflateResponse(%q, %+v) = %+v, %v; want %+v, %v", tt.ext, tt.offer, p, err, tt.want, tt.err)
			}
		})
	}
}

func errIf(b bool) error {
	if b {
		return ErrExtensionParams
	}
	return nil
}

// A server answering an offer that Gale's client makes gets back, parsed,
// exactly what it answered: the two ends agree on every window.
func TestDeflateWindowsRoundTrip(t *testing.T) {
	offer := DeflateParams{ClientMaxWindowBits: WindowBitsNoValue}
	header := AppendDeflateOffer(nil, offer)
	for s := 8; s <= 15; s++ {
		for c := 8; c <= 15; c++ {
			policy := DeflatePolicy{ServerMaxWindowBits: s, ClientMaxWindowBits: c}
			p, ok := NegotiateDeflate(header, policy)
			if !ok || p.ServerMaxWindowBits != s || p.ClientMaxWindowBits != c {
				t.Fatalf("policy %+v: %+v, %v", policy, p, ok)
			}
			got, err := ParseDeflateResponse(AppendDeflateResponse(nil, p), offer)
			if err != nil || got != p {
				t.Fatalf("policy %+v: answer parsed as %+v, %v; want %+v", policy, got, err, p)
			}
		}
	}
}
