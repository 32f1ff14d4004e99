package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{
			name:     "no command",
			args:     nil,
			code:     2,
			inStderr: "usage: gale",
		},
		{
			name:     "help",
			args:     []string{"help"},
			code:     0,
			inStdout: "serve",
		},
		{
			name:     "unknown",
			args:     []string{"frobnicate"},
			code:     2,
			inStderr: `unknown command "frobnicate"`,
		},
		{
			name:     "bench with an unknown mode",
			args:     []string{"bench", "nope"},
			code:     2,
			inStderr: `unknown mode "nope"`,
		},
		{
			name:     "serve with a bad flag",
			args:     []string{"serve", "-nope"},
			code:     2,
			inStderr: "flag provided but not defined",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(tt.args, &out, &errb); code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errb.String())
			}
			if !strings.Contains(out.String(), tt.inStdout) || !strings.Contains(errb.String(), tt.inStderr) {
				t.Fatalf("stdout %q, stderr %q", out.String(), errb.String())
			}
		})
	}
}
