package interop

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// buildGale builds cmd/gale from the working tree (bench/go.mod replaces
// github.com/galews/gale with ../) into a temporary directory.
func buildGale(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gale")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/galews/gale/cmd/gale")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/gale: %v\n%s", err, out)
	}
	return bin
}

// runServe starts `gale serve -addr 127.0.0.1:0 args…` and returns the
// address it prints; the process gets SIGTERM when the test ends and must
// exit 0.
func runServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...)...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("gale serve %v: %v", args, err)
			}
		case <-time.After(testTimeout):
			cmd.Process.Kill()
			t.Errorf("gale serve %v: still running %v after SIGTERM", args, testTimeout)
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	const prefix = "gale: echo server listening on "
	select {
	case s := <-line:
		if !strings.HasPrefix(s, prefix) {
			t.Fatalf("gale serve %v printed %q, want %q…", args, s, prefix)
		}
		return strings.TrimSpace(strings.TrimPrefix(s, prefix))
	case <-time.After(testTimeout):
		t.Fatalf("gale serve %v: no address within %v", args, testTimeout)
		panic("unreachable")
	}
}

// TestServeCompress: `gale serve -compress` accepts permessage-deflate from
// a compressing third-party client (gorilla with EnableCompression) and
// echoes through it; without -compress the extension is declined. The
// binary is the real command, built from the working tree. (cmd/gale's own
// TestServeCompress checks the same with Gale's event-loop client.)
func TestServeCompress(t *testing.T) {
	bin := buildGale(t)
	for _, on := range []bool{false, true} {
		args := []string{}
		if on {
			args = append(args, "-compress")
		}
		addr := runServe(t, bin, args...)
		d := websocket.Dialer{EnableCompression: true, HandshakeTimeout: testTimeout}
		c, resp, err := d.Dial("ws://"+addr+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if strings.HasPrefix(ext, "permessage-deflate") != on {
			t.Fatalf("-compress %v: Sec-WebSocket-Extensions %q", on, ext)
		}
		msg := strings.Repeat("compressible text ", 100)
		c.SetReadDeadline(time.Now().Add(testTimeout))
		if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, p, err := c.ReadMessage(); err != nil || string(p) != msg {
			t.Fatalf("echo: %v", err)
		}
		c.Close()
	}
}
