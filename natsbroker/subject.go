package natsbroker

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Subjects. A topic becomes one NATS subject token under the prefix: as it
// is when it is a valid token of printable ASCII (no space, '.', '*' or
// '>'), so that other NATS clients can publish to it by name
// ("gale.topic.news"); otherwise, and when it starts with the marker '~',
// as '~' followed by its unpadded base64url encoding (RFC 4648 §5), which
// is always a valid token ("gale.topic.~YS5i" is the topic "a.b", and
// "gale.topic.~" the empty topic). Every topic thus has one subject and
// each subject under the prefix names at most one topic.

// encodedMark starts an encoded token; no plain token starts with it.
const encodedMark = '~'

// errNotTopic is returned by decodeSubject for a subject that no topic
// encodes to.
var errNotTopic = errors.New("natsbroker: subject does not name a topic")

// plainToken reports whether topic can be its own subject token.
func plainToken(topic string) bool {
	if topic == "" || topic[0] == encodedMark {
		return false
	}
	for i := 0; i < len(topic); i++ {
		switch b := topic[i]; {
		case b <= ' ' || b >= 0x7f, b == '.', b == '*', b == '>':
			return false
		}
	}
	return true
}

// subject returns the subject carrying topic under prefix (which ends
// with '.').
func subject(prefix, topic string) string {
	if plainToken(topic) {
		return prefix + topic
	}
	return prefix + string(encodedMark) + base64.RawURLEncoding.EncodeToString([]byte(topic))
}

// decodeSubject returns the topic subj carries under prefix.
func decodeSubject(prefix, subj string) (string, error) {
	tok, ok := strings.CutPrefix(subj, prefix)
	if !ok {
		return "", errNotTopic
	}
	if tok != "" && tok[0] == encodedMark {
		b, err := base64.RawURLEncoding.Strict().DecodeString(tok[1:])
		if err != nil {
			return "", errNotTopic
		}
		// Only what subject would encode: one subject per topic.
		if t := string(b); !plainToken(t) {
			return t, nil
		}
		return "", errNotTopic
	}
	if !plainToken(tok) {
		return "", errNotTopic
	}
	return tok, nil
}
