package natsbroker

import (
	"strings"
	"testing"
)

func TestSubject(t *testing.T) {
	for _, tc := range []struct{ topic, subj string }{
		{"news", "gale.topic.news"},
		{"room-42_x", "gale.topic.room-42_x"},
		{"a.b", "gale.topic.~YS5i"},
		{"", "gale.topic.~"},
		{"a b", "gale.topic.~YSBi"},
		{"*", "gale.topic.~Kg"},
		{">", "gale.topic.~Pg"},
		{"~x", "gale.topic.~fng"},
		{"é", "gale.topic.~w6k"},
		{"tab\t", "gale.topic.~dGFiCQ"},
	} {
		got := subject(DefaultPrefix, tc.topic)
		if got != tc.subj {
			t.Errorf("subject(%q) = %q, want %q", tc.topic, got, tc.subj)
		}
		back, err := decodeSubject(DefaultPrefix, got)
		if err != nil || back != tc.topic {
			t.Errorf("decodeSubject(%q) = %q, %v, want %q", got, back, err, tc.topic)
		}
		// One token: NATS sees a literal subject under the prefix.
		if tok := strings.TrimPrefix(got, DefaultPrefix); strings.ContainsAny(tok, ".*> \t") {
			t.Errorf("subject(%q) = %q: not one literal token", tc.topic, got)
		}
	}
	for _, bad := range []string{
		"other.news",            // another prefix
		"gale.topic.a.b",        // two tokens
		"gale.topic.",           // no token
		"gale.topic.*",          // a wildcard
		"gale.topic.~YS5i=",     // padded
		"gale.topic.~bmV3cw",    // "news", which is plain: not its subject
		"gale.topic.~!!",        // not base64url
		"gale.topic.~YS5i.more", // two tokens
	} {
		if topic, err := decodeSubject(DefaultPrefix, bad); err == nil {
			t.Errorf("decodeSubject(%q) = %q, want an error", bad, topic)
		}
	}
}

// FuzzDecodeSubject: decoding never panics, and what decodes encodes back
// to the same subject (one subject per topic); every topic round-trips.
func FuzzDecodeSubject(f *testing.F) {
	for _, s := range []string{"gale.topic.news", "gale.topic.~YS5i", "gale.topic.~", "gale.topic.", "x", "gale.topic.~~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if topic, err := decodeSubject(DefaultPrefix, s); err == nil {
			if back := subject(DefaultPrefix, topic); back != s {
				t.Fatalf("decodeSubject(%q) = %q, which encodes to %q", s, topic, back)
			}
		}
		topic := strings.TrimPrefix(s, DefaultPrefix)
		if back, err := decodeSubject(DefaultPrefix, subject(DefaultPrefix, topic)); err != nil || back != topic {
			t.Fatalf("topic %q: round trip gives %q, %v", topic, back, err)
		}
	})
}
