package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// byteSize is a flag holding a size in bytes, written as a plain number of
// bytes (1048576) or with a binary suffix: KiB, MiB or GiB (64KiB, 4MiB).
type byteSize int64

var sizeUnits = []struct {
	suffix string
	shift  uint
}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}}

func (b *byteSize) String() string {
	if b == nil {
		return "0"
	}
	n := int64(*b)
	for _, u := range sizeUnits {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// parseSize parses a non-negative size: digits, optionally followed by KiB,
// MiB or GiB (case-insensitive). Decimal units (KB, MB, GB) are refused
// rather than guessed at.
func parseSize(s string) (int64, error) {
	num, shift := s, uint(0)
	for _, u := range sizeUnits {
		if len(s) > len(u.suffix) && strings.EqualFold(s[len(s)-len(u.suffix):], u.suffix) {
			num, shift = s[:len(s)-len(u.suffix)], u.shift
			break
		}
	}
	n, err := strconv.ParseUint(num, 10, 63)
	switch {
	case errors.Is(err, strconv.ErrRange), err == nil && n > math.MaxInt64>>shift:
		return 0, fmt.Errorf("%q is too large", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a size: want bytes (1048576) or a number with KiB, MiB or GiB (4MiB)", s)
	}
	return int64(n) << shift, nil
}

// parseFlags parses args into fs. -h prints the usage on stdout and returns
// done with status 0; a bad flag prints the error and the usage on stderr
// and returns done with status 2; arguments left over are refused unless
// the command takes them (positional).
func parseFlags(fs *flag.FlagSet, args []string, positional bool, stdout, stderr io.Writer) (status int, done bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		stdout.Write(buf.Bytes())
		return 0, true
	}
	stderr.Write(buf.Bytes())
	if err != nil {
		return 2, true
	}
	if !positional && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gale %s: unexpected argument %q (flags come as -name value; see gale %[1]s -h)\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// flagError reports an invalid flag value the way parseFlags reports a bad
// flag, and returns exit status 2.
func flagError(stderr io.Writer, fs *flag.FlagSet, format string, a ...any) int {
	fmt.Fprintf(stderr, "gale %s: %s (see gale %[1]s -h)\n", fs.Name(), fmt.Sprintf(format, a...))
	return 2
}

// clientTLSConfig is the TLS configuration of the -ca and -insecure flags:
// roots read from a PEM file, or no certificate check at all.
func clientTLSConfig(caFile string, insecure bool) (*tls.Config, error) {
	switch {
	case caFile != "" && insecure:
		return nil, errors.New("-ca and -insecure: choose one")
	case insecure:
		return &tls.Config{InsecureSkipVerify: true}, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("-ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca %s: no PEM certificate in it", caFile)
	}
	return &tls.Config{RootCAs: roots}, nil
}
