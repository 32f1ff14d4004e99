package main

import (
	"bytes"
	_ "embed"
	"html"
	"net/http"
)

// testPage is what a plain GET of / returns: a page whose script opens a
// WebSocket to the echo server, exchanges text and binary messages, and
// shows (and sets as the document title) whether every echo matched; with
// -sse it first opens an EventSource, and passes only if the text message
// also arrived on the stream.
//
//go:embed page.html
var testPage []byte

// pageHandler serves the test page at / and 404 elsewhere; it is the
// engine's Fallback, so it only ever sees requests that are not upgrades.
func pageHandler(wsPath, ssePath string) http.Handler {
	meta := `<meta name="ws-path" content="` + html.EscapeString(wsPath) + `">`
	if ssePath != "" {
		meta += `<meta name="sse-path" content="` + html.EscapeString(ssePath) + `">`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(bytes.Replace(testPage, []byte("<title>"), []byte(meta+`<title>`), 1))
	})
}
