package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCertFiles writes a throwaway CA and an ECDSA P-256 leaf for
// localhost and 127.0.0.1 signed by it, and returns the files' paths.
func testCertFiles(t *testing.T) (ca, cert, key string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gale cli test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	must(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	must(err)
	dir := t.TempDir()
	ca, cert, key = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	must(os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600))
	must(os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	return ca, cert, key
}

// TestServeDialTLS: gale serve -tls-cert/-tls-key serves wss:// and its
// test page over https; gale dial reaches it with -ca or -insecure and
// refuses an unknown authority without them; gale bench runs over wss://.
func TestServeDialTLS(t *testing.T) {
	ca, cert, key := testCertFiles(t)
	addr := startEcho(t, "-tls-cert", cert, "-tls-key", key)
	url := "wss://" + addr + "/"

	for _, extra := range [][]string{{"-ca", ca}, {"-insecure"}} {
		code, out, errs := runDial(t, 30*time.Second, url, "hello over tls\n", true, extra...)
		if code != 0 || !strings.Contains(out, `< Text fin=true len=14 "hello over tls"`) {
			t.Errorf("gale dial %v: exit %d\nstdout:\n%s\nstderr:\n%s", extra, code, out, errs)
		}
	}
	if code, _, errs := runDial(t, 30*time.Second, url, "", true); code != 2 || !strings.Contains(errs, "certificate") {
		t.Errorf("gale dial without -ca: exit %d, stderr %q", code, errs)
	}

	pool := x509.NewCertPool()
	pemCA, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pemCA)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("<html")) {
		t.Errorf("https page: %s, %d bytes", resp.Status, len(page))
	}

	for _, mode := range [][]string{
		{"echo", "-size", "1024", "-conns", "4", "-duration", "300ms", "-warmup", "0"},
		{"handshake", "-conns", "2", "-duration", "300ms"},
	} {
		r := runBench(t, append(mode, "-url", url, "-ca", ca, "-json")...)
		if r.Errors != 0 {
			t.Errorf("gale bench %s over wss://: %d errors", mode[0], r.Errors)
		}
	}
}

// TestServeTLSFlags: the TLS flags are checked before the server starts.
func TestServeTLSFlags(t *testing.T) {
	_, cert, key := testCertFiles(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls-cert", cert}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-key", key}, "-tls-cert and -tls-key go together"},
		{[]string{"-tls-cert", key, "-tls-key", cert}, "-tls-cert"},
		{[]string{"-tls-cert", "/nonexistent", "-tls-key", key}, "/nonexistent"},
	} {
		var errb bytes.Buffer
		sf, code := parseServe(tc.args, io.Discard, &errb)
		if sf != nil || code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("gale serve %v: exit %d, stderr %q, want %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
