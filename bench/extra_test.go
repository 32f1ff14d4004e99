package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseExtra(t *testing.T) {
	e, err := parseExtra("uws=/path/to/uws-echo {port} {compress}")
	if err != nil || e.Name != "uws" || e.Command != "/path/to/uws-echo {port} {compress}" ||
		!slices.Equal(e.Args, []string{"/path/to/uws-echo", "{port}", "{compress}"}) {
		t.Fatalf("%+v, %v", e, err)
	}
	for _, bad := range []struct{ in, why string }{
		{"/path/to/uws-echo {port}", "no ="},
		{"uws=/path/to/uws-echo 9001", "{port}"},
		{"uws=", "no command"},
		{"=/bin/echo {port}", "server name"},
		{"a b=/bin/echo {port}", "server name"},
		{"gorilla=/bin/echo {port}", "built-in"},
	} {
		if _, err := parseExtra(bad.in); err == nil || !strings.Contains(err.Error(), bad.why) {
			t.Errorf("%q: err = %v, want one about %q", bad.in, err, bad.why)
		}
	}
	var f extraFlags
	if err := f.Set("a=/bin/x {port}"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("a=/bin/y {port}"); err == nil {
		t.Error("the same name twice accepted")
	}
	if err := f.Set("b=/bin/y -p {port}"); err != nil || len(f) != 2 || f.String() != "a=/bin/x {port} b=/bin/y -p {port}" {
		t.Errorf("%v %q", err, f.String())
	}
}

func TestExtraArgv(t *testing.T) {
	e, _ := parseExtra("x=srv --listen=127.0.0.1:{port} -z {compress} {port}")
	if got := e.argv(9001, true); !slices.Equal(got, []string{"srv", "--listen=127.0.0.1:9001", "-z", "1", "9001"}) {
		t.Errorf("compress: %q", got)
	}
	if got := e.argv(80, false); !slices.Equal(got, []string{"srv", "--listen=127.0.0.1:80", "-z", "0", "80"}) {
		t.Errorf("no compress: %q", got)
	}
	if e.Args[1] != "--listen=127.0.0.1:{port}" {
		t.Error("argv changed the template")
	}
}

func TestExtraMissing(t *testing.T) {
	e, _ := parseExtra("gone=/no/such/server {port}")
	if why := e.missing(); !strings.Contains(why, "/no/such/server is not there") {
		t.Errorf("missing() = %q", why)
	}
	dir := t.TempDir()
	plain := filepath.Join(dir, "notexec")
	os.WriteFile(plain, []byte("x"), 0o644)
	e, _ = parseExtra("plain=" + plain + " {port}")
	if e.missing() == "" {
		t.Error("a file that is not executable counts as there")
	}
	e, _ = parseExtra("sh=sh -c {port}")
	if why := e.missing(); why != "" {
		t.Errorf("sh from PATH: %q", why)
	}
}

func TestExtraScenarios(t *testing.T) {
	extraServers["outside"] = extraServer{Name: "outside"}
	defer delete(extraServers, "outside")
	for _, sc := range scenarios {
		want := sc.Kind != kindBroadcast && !sc.TLS
		if sc.runs("outside") != want {
			t.Errorf("%s: runs = %v, want %v", sc.Name, !want, want)
		}
		if !want && extraSkip(sc) == "" {
			t.Errorf("%s: no reason given", sc.Name)
		}
	}
	if !isPeer("outside") {
		t.Error("an outside server is a peer")
	}
	bc, _ := scenarioByName("broadcast")
	if note := extraNote(bc, []string{"gale", "outside"}); !strings.Contains(note, "outside left out: the scenario needs") {
		t.Errorf("note: %q", note)
	}
}

// echoServer builds testdata/echoserver once per test binary.
func echoServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a server")
	}
	echoOnce.Do(func() {
		dir, err := os.MkdirTemp("", "benchtest")
		if err != nil {
			echoErr = err
			return
		}
		echoBin = filepath.Join(dir, "echoserver")
		out, err := exec.Command("go", "build", "-o", echoBin, "./testdata/echoserver").CombinedOutput()
		if err != nil {
			echoErr = err
			t.Logf("%s", out)
		}
	})
	if echoErr != nil {
		t.Fatal(echoErr)
	}
	return echoBin
}

var (
	echoOnce sync.Once
	echoBin  string
	echoErr  error
)

func TestStartExtra(t *testing.T) {
	bin := echoServer(t)
	e, _ := parseExtra("mini=" + bin + " {port} {compress}")
	s, err := startExtra(e, false, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if s.pid != s.root || !s.alive() {
		t.Errorf("pid %d root %d alive %v", s.pid, s.root, s.alive())
	}
	if err := s.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}

	// A server that ignores SIGTERM is killed.
	defer func(d time.Duration) { stopTimeout = d }(stopTimeout)
	stopTimeout = 300 * time.Millisecond
	e, _ = parseExtra("stubborn=" + bin + " {port} 0 ignore-term")
	s, err = startExtra(e, false, false, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.stop(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("stop: %v", err)
	}
	if s.alive() {
		t.Error("still alive")
	}
}

func TestStartExtraFails(t *testing.T) {
	e, _ := parseExtra("quits=sh -c exit {port}")
	if _, err := startExtra(e, false, false, ""); err == nil || !strings.Contains(err.Error(), "exited before listening") {
		t.Errorf("err = %v", err)
	}
	defer func(d time.Duration) { extraStartTimeout = d }(extraStartTimeout)
	extraStartTimeout = 300 * time.Millisecond
	e, _ = parseExtra("deaf=sleep 30 {port}")
	start := time.Now()
	if _, err := startExtra(e, false, false, ""); err == nil || !strings.Contains(err.Error(), "did not accept") {
		t.Errorf("err = %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("waited too long")
	}
}

// TestDefaultImplsBuiltIn: every server -impls runs by default is one the
// driver knows, so a plain run is never refused as naming an unknown one.
func TestDefaultImplsBuiltIn(t *testing.T) {
	for _, impl := range strings.Split(defaultImpls, ",") {
		if !slices.Contains(builtinImpls, impl) {
			t.Errorf("default server %q is not built in (%v)", impl, builtinImpls)
		}
	}
}
