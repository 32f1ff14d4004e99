package main

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/galews/gale/codec"
	"github.com/galews/gale/engine"
)

func TestTopicOf(t *testing.T) {
	for _, tc := range []struct {
		prefix, path, topic string
		ok                  bool
	}{
		{"/", "/news", "news", true},
		{"/", "/", "", true},
		{"/", "/a%20b", "a b", true},
		{"/", "/a/b", "a/b", true},
		{"/", "/bad%zz", "", false},
		{"/topics", "/topics/news", "news", true},
		{"/topics", "/topics", "", true},
		{"/topics", "/topicsX", "", false},
		{"/topics", "/other/news", "", false},
	} {
		topic, ok := topicOf(tc.prefix, tc.path)
		if topic != tc.topic || ok != tc.ok {
			t.Errorf("topicOf(%q, %q) = %q %v, want %q %v", tc.prefix, tc.path, topic, ok, tc.topic, tc.ok)
		}
	}
}

// TestServeTopics: a message goes to every connection on its path, the
// sender included, and to no other.
func TestServeTopics(t *testing.T) {
	addr := startEcho(t, "-topics", "-path", "/t")
	ctx := t.Context()
	dial := func(path string) *engine.ClientConn {
		c, err := engine.Dial(ctx, "ws://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	a, b, other := dial("/t/news"), dial("/t/news"), dial("/t/other")
	if _, err := engine.Dial(ctx, "ws://"+addr+"/elsewhere", nil); !errors.Is(err, codec.ErrResponseStatus) {
		t.Fatalf("upgrade outside -path: %v, want a 404", err)
	}
	// The subscriptions are made in OnOpen, before the dial returns.
	a.WriteText([]byte("hello"))
	for _, c := range []*engine.ClientConn{a, b} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, p, err := c.ReadMessage(); err != nil || string(p) != "hello" {
			t.Fatalf("subscriber: %q %v", p, err)
		}
	}
	other.WriteBinary([]byte("x"))
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if op, p, err := other.ReadMessage(); err != nil || op != codec.OpBinary || string(p) != "x" {
		t.Fatalf("the other topic's sender got %v %q %v, want its own message only", op, p, err)
	}
}

func TestServeTopicsFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nats", "nats://127.0.0.1:4222"},
		{"-topics", "-max-echo", "3"},
		{"-topics", "-procs", "2"},
	} {
		var stderr strings.Builder
		if sf, code := parseServe(args, io.Discard, &stderr); sf != nil || code != 2 {
			t.Errorf("gale serve %v: accepted (exit %d)", args, code)
		}
	}
}
