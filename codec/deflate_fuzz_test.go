package codec

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// The fuzz targets check NegotiateDeflate and ParseDeflateResponse against a
// reference written from the RFCs independently of deflate.go: slow, with
// allocations, over strings. Its one borrowed rule is where a quoted-string
// ends (the first '"' not preceded by '\'), which is httphead's.

type refElement struct {
	name   string
	params []refParam
}

type refParam struct {
	name, value string
	hasValue    bool
}

// refParse splits a Sec-WebSocket-Extensions value (RFC 6455 §9.1, RFC 7230
// §3.2.6 and §7), unescaping quoted values; ok is false on a syntax error.
func refParse(h string) (elems []refElement, ok bool) {
	i := 0
	skipLWS := func() {
		for i < len(h) {
			if h[i] == ' ' || h[i] == '\t' {
				i++
			} else if strings.HasPrefix(h[i:], "\r\n ") || strings.HasPrefix(h[i:], "\r\n\t") {
				i += 3
			} else {
				return
			}
		}
	}
	token := func() string {
		j := i
		for i < len(h) && h[i] > ' ' && h[i] < 0x7F && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(h[i])) {
			i++
		}
		return h[j:i]
	}
	quoted := func() (string, bool) {
		for j := i + 1; ; j++ {
			k := strings.IndexByte(h[j:], '"')
			if k < 0 {
				return "", false
			}
			j += k
			if j == i+1 || h[j-1] != '\\' {
				var b strings.Builder
				for m := i + 1; m < j; m++ {
					if h[m] == '\\' && m+1 < j {
						m++
					}
					b.WriteByte(h[m])
				}
				i = j + 1
				return b.String(), true
			}
		}
	}
	for {
		skipLWS()
		if i == len(h) {
			return elems, true
		}
		if h[i] == ',' {
			i++
			continue
		}
		e := refElement{name: token()}
		if e.name == "" {
			return nil, false
		}
		for {
			skipLWS()
			if i == len(h) || h[i] == ',' {
				break
			}
			if h[i] != ';' {
				return nil, false
			}
			i++
			skipLWS()
			p := refParam{name: token()}
			if p.name == "" {
				return nil, false
			}
			skipLWS()
			if i < len(h) && h[i] == '=' {
				i++
				skipLWS()
				p.hasValue = true
				if i < len(h) && h[i] == '"' {
					if p.value, ok = quoted(); !ok {
						return nil, false
					}
				} else if p.value = token(); p.value == "" {
					return nil, false
				}
			}
			e.params = append(e.params, p)
		}
		elems = append(elems, e)
	}
}

// refParams reads permessage-deflate parameters by RFC 7692 §7.1.
func refParams(params []refParam, offer bool) (p DeflateParams, ok bool) {
	bits := func(v string) int {
		n, err := strconv.Atoi(v)
		if err != nil || strconv.Itoa(n) != v || n < 8 || n > 15 {
			return 0
		}
		return n
	}
	seen := map[string]bool{}
	for _, q := range params {
		if seen[q.name] {
			return p, false
		}
		seen[q.name] = true
		switch q.name {
		case "server_no_context_takeover":
			p.ServerNoContextTakeover = true
			ok = !q.hasValue
		case "client_no_context_takeover":
			p.ClientNoContextTakeover = true
			ok = !q.hasValue
		case "server_max_window_bits":
			p.ServerMaxWindowBits = bits(q.value)
			ok = p.ServerMaxWindowBits != 0
		case "client_max_window_bits":
			if q.hasValue {
				p.ClientMaxWindowBits = bits(q.value)
				ok = p.ClientMaxWindowBits != 0
			} else {
				p.ClientMaxWindowBits, ok = -1, offer
			}
		default:
			ok = false
		}
		if !ok {
			return p, false
		}
	}
	return p, true
}

// refNegotiate returns the answer to the first acceptable offer and the offer.
func refNegotiate(h string, policy DeflatePolicy) (answer, offer DeflateParams, ok bool) {
	elems, ok := refParse(h)
	if !ok {
		return answer, offer, false
	}
	minBits := policy.MinServerWindowBits
	if minBits == 0 {
		minBits = 8
	}
	// capped lowers a window (0: none) to a policy's valid limit.
	capped := func(n, limit int) int {
		if limit >= 8 && limit <= 15 && (n == 0 || n > limit) {
			return limit
		}
		return n
	}
	for _, e := range elems {
		if e.name != "permessage-deflate" {
			continue
		}
		offer, ok := refParams(e.params, true)
		if !ok || (offer.ServerMaxWindowBits != 0 && offer.ServerMaxWindowBits < minBits) {
			continue
		}
		answer = offer
		answer.ServerNoContextTakeover = offer.ServerNoContextTakeover || policy.ServerNoContextTakeover
		answer.ClientNoContextTakeover = offer.ClientNoContextTakeover || policy.ClientNoContextTakeover
		answer.ServerMaxWindowBits = capped(offer.ServerMaxWindowBits, policy.ServerMaxWindowBits)
		answer.ClientMaxWindowBits = max(offer.ClientMaxWindowBits, 0)
		if offer.ClientMaxWindowBits != 0 {
			answer.ClientMaxWindowBits = capped(answer.ClientMaxWindowBits, policy.ClientMaxWindowBits)
		}
		return answer, offer, true
	}
	return answer, offer, false
}

// refResponse checks a response against an offer by RFC 7692 §7.
func refResponse(ext string, offer DeflateParams) (DeflateParams, bool) {
	elems, ok := refParse(ext)
	if !ok || len(elems) != 1 || elems[0].name != "permessage-deflate" {
		return DeflateParams{}, false
	}
	p, ok := refParams(elems[0].params, false)
	switch {
	case !ok:
	case p.ClientMaxWindowBits != 0 && offer.ClientMaxWindowBits == 0:
	case p.ClientMaxWindowBits != 0 && offer.ClientMaxWindowBits != -1 && p.ClientMaxWindowBits > offer.ClientMaxWindowBits:
	case offer.ServerMaxWindowBits != 0 && (p.ServerMaxWindowBits == 0 || p.ServerMaxWindowBits > offer.ServerMaxWindowBits):
	case offer.ServerNoContextTakeover && !p.ServerNoContextTakeover:
	default:
		return p, true
	}
	return DeflateParams{}, false
}

func FuzzNegotiateDeflate(f *testing.F) {
	for _, h := range []string{
		offerChromium,
		offerMultiple,
		"x-webkit-deflate-frame, permessage-deflate",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=9",
		`permessage-deflate; client_max_window_bits="1\0", permessage-deflate`,
		"permessage-deflate; client_max_window_bits; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=08, permessage-deflate;\tclient_no_context_takeover",
		"foo permessage-deflate",
		"permessage-deflate;\r\n server_no_context_takeover;",
		`x; p="\\", permessage-deflate`,
		"",
		// Every window size, offered for each side, and invalid neighbours.
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=9; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=15",
		"permessage-deflate; server_max_window_bits=11, permessage-deflate",
		"permessage-deflate; client_max_window_bits=12; server_max_window_bits=13",
		"permessage-deflate; server_max_window_bits=14; server_no_context_takeover",
		`permessage-deflate; server_max_window_bits="15"; client_max_window_bits="9"`,
		"permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=16, permessage-deflate; client_max_window_bits=abc",
		"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10, permessage-deflate",
	} {
		f.Add(h, false, false, 0, 0, 0)
		f.Add(h, true, true, 8, 0, 0)
		f.Add(h, false, true, 0, 10, 9)
		f.Add(h, true, false, 12, 15, 8)
	}
	f.Fuzz(func(t *testing.T, h string, snct, cnct bool, minBits, smwb, cmwb int) {
		policy := DeflatePolicy{ServerNoContextTakeover: snct, ClientNoContextTakeover: cnct, MinServerWindowBits: minBits,
			ServerMaxWindowBits: smwb, ClientMaxWindowBits: cmwb}
		p, ok := NegotiateDeflate([]byte(h), policy)
		want, offer, wantOK := refNegotiate(h, policy)
		if p != want || ok != wantOK {
			t.Fatalf("NegotiateDeflate(%q) = %+v, %v; reference %+v, %v", h, p, ok, want, wantOK)
		}
		if !ok {
			return
		}
		// The answer, as sent, is one the client that made the accepted
		// offer takes, with the same meaning.
		resp := AppendDeflateResponse(nil, p)
		got, err := ParseDeflateResponse(resp, offer)
		if err != nil || got != p {
			t.Fatalf("ParseDeflateResponse(%q, %+v) = %+v, %v; want %+v", resp, offer, got, err, p)
		}
	})
}

func FuzzParseDeflateResponse(f *testing.F) {
	for _, ext := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits=10",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=8",
		`permessage-deflate; server_max_window_bits="1\2"`,
		"permessage-deflate, permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"x-foo",
		"permessage-deflate;",
		"",
		// Every window size in answers, and invalid neighbours.
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8",
		"permessage-deflate; server_max_window_bits=11; client_max_window_bits=12",
		"permessage-deflate; server_max_window_bits=13; client_max_window_bits=14",
		"permessage-deflate; server_max_window_bits=15; client_max_window_bits=9",
		"permessage-deflate; client_max_window_bits=7",
		"permessage-deflate; server_max_window_bits=abc",
		"permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
	} {
		f.Add(ext, false, false, 0, -1)
		f.Add(ext, true, true, 10, 10)
		f.Add(ext, false, false, 12, -1)
		f.Add(ext, true, false, 0, 0)
	}
	f.Fuzz(func(t *testing.T, ext string, snct, cnct bool, smwb, cmwb int) {
		// Bring the offer into what a client can send.
		if smwb != 0 && !validWindowBits(smwb) {
			smwb = 15
		}
		if cmwb != 0 && cmwb != WindowBitsNoValue && !validWindowBits(cmwb) {
			cmwb = WindowBitsNoValue
		}
		offer := DeflateParams{ServerNoContextTakeover: snct, ClientNoContextTakeover: cnct, ServerMaxWindowBits: smwb, ClientMaxWindowBits: cmwb}
		p, err := ParseDeflateResponse([]byte(ext), offer)
		want, wantOK := refResponse(ext, offer)
		if p != want || (err == nil) != wantOK {
			t.Fatalf("ParseDeflateResponse(%q, %+v) = %+v, %v; reference %+v, %v", ext, offer, p, err, want, wantOK)
		}
		if err != nil {
			if !errors.Is(err, ErrExtensionParams) && !errors.Is(err, ErrExtensionNotOffer) {
				t.Fatalf("error %v wraps neither sentinel", err)
			}
			return
		}
		// Rendered again, the parameters parse back to themselves.
		again, err := ParseDeflateResponse(AppendDeflateResponse(nil, p), offer)
		if err != nil || again != p {
			t.Fatalf("re-parse of %+v: %+v, %v", p, again, err)
		}
	})
}
