package body

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

const bound = 256 << 10

// Every coding a client may send, alone or listed after another, is
// undone in the right order, and the decoded body is what was encoded.
func TestDecodeUndoesEveryCodingInOrder(t *testing.T) {
	plain := []byte("title=x&_method=DELETE")
	for _, tc := range []struct {
		header  []string // Content-Encoding as sent
		applied []string // what the client did
	}{
		{[]string{"gzip"}, []string{"gzip"}},
		{[]string{"x-gzip"}, []string{"gzip"}},
		{[]string{"GZip"}, []string{"gzip"}},
		{[]string{"deflate"}, []string{"deflate"}},
		{[]string{"deflate"}, []string{"raw-deflate"}}, // what some clients send as deflate
		{[]string{"br"}, []string{"br"}},
		{[]string{"gzip, br"}, []string{"gzip", "br"}},
		{[]string{"br,gzip"}, []string{"br", "gzip"}},
		{[]string{"gzip", "br"}, []string{"gzip", "br"}}, // two header lines are one list
		{[]string{"deflate, gzip, br"}, []string{"deflate", "gzip", "br"}},
		{[]string{"identity, gzip"}, []string{"gzip"}},
		{[]string{"identity"}, nil},
		{nil, nil},
	} {
		got, err := Decode(testutil.Encode(t, plain, tc.applied...), tc.header, bound)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%q: %q, %v; want %q", tc.header, got, err, plain)
		}
	}
}

// What cannot be read as the header says is an error, never the raw bytes:
// an unknown or unsupported coding, a corrupt stream, one that ends early
// or carries more after its end, and a list of codings longer than anyone
// sends.
func TestDecodeRefusesWhatItCannotRead(t *testing.T) {
	plain := []byte("_method=DELETE")
	gz := testutil.Encode(t, plain, "gzip")
	corrupt := bytes.Clone(gz)
	corrupt[len(corrupt)-6] ^= 0xff // the CRC
	for _, tc := range []struct {
		name   string
		body   []byte
		header []string
	}{
		{"zstd", []byte("(\xb5/\xfd\x20\x0e_method=DELETE"), []string{"zstd"}},
		{"compress", plain, []string{"compress"}},
		{"a coding with parameters", gz, []string{"gzip;q=1"}},
		{"gzip on a plain body", plain, []string{"gzip"}},
		{"deflate on a plain body", plain, []string{"deflate"}},
		{"br on a plain body", plain, []string{"br"}},
		{"a wrong checksum", corrupt, []string{"gzip"}},
		{"a truncated stream", gz[:len(gz)-4], []string{"gzip"}},
		{"gzip with bytes after it", append(bytes.Clone(gz), "&_method=PUT"...), []string{"gzip"}},
		{"zlib with bytes after it", append(testutil.Encode(t, plain, "deflate"), "&_method=PUT"...), []string{"deflate"}},
		{"raw deflate with bytes after it", append(testutil.Encode(t, plain, "raw-deflate"), "&_method=PUT"...), []string{"deflate"}},
		{"br with bytes after it", append(testutil.Encode(t, plain, "br"), "&_method=PUT"...), []string{"br"}},
		{"codings in the wrong order", testutil.Encode(t, plain, "gzip", "br"), []string{"br, gzip"}},
		{"more codings than anyone sends", testutil.Encode(t, plain, "gzip", "gzip", "gzip", "gzip", "gzip"), []string{"gzip,gzip,gzip,gzip,gzip"}},
	} {
		if got, err := Decode(tc.body, tc.header, bound); err == nil {
			t.Errorf("%s: decoded to %q, want an error", tc.name, got)
		}
	}
}

// A body that decodes to more than the bound is refused, whether it gets
// there in one step or through a list of codings.
func TestDecodeBoundsTheDecodedBody(t *testing.T) {
	big := bytes.Repeat([]byte("a"), bound+1)
	for _, codings := range [][]string{{"gzip"}, {"deflate"}, {"raw-deflate"}, {"br"}, {"gzip", "br"}} {
		header := strings.ReplaceAll(strings.Join(codings, ","), "raw-deflate", "deflate")
		if _, err := Decode(testutil.Encode(t, big, codings...), []string{header}, bound); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", header, err)
		}
		if got, err := Decode(testutil.Encode(t, big[:bound], codings...), []string{header}, bound); err != nil || len(got) != bound {
			t.Errorf("%s at the bound: %d bytes, %v", header, len(got), err)
		}
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zeroBomb is a gzip stream of as many MiB of zeros as members: a 1 MiB
// member of zeros (about 1 KiB) repeated, so that the zeros are never in
// memory. Gzip readers read concatenated members as one stream.
func zeroBomb(t testing.TB, members int) []byte {
	t.Helper()
	member := testutil.Encode(t, make([]byte, 1<<20), "gzip")
	return bytes.Repeat(member, members)
}

// A decompression bomb (1 GiB of zeros in about 1 MiB) is refused at once:
// the decoder reads past the bound neither in decoded bytes nor in the
// compressed bytes that would make more of them.
func TestDecompressionBombIsRefusedAtTheBound(t *testing.T) {
	bomb := zeroBomb(t, 1024)
	if len(bomb) > 2<<20 {
		t.Fatalf("the bomb is %d bytes; the test wants about 1 MiB", len(bomb))
	}
	src := &countingReader{r: bytes.NewReader(bomb)}
	start := time.Now()
	_, err := decodeOne(src, "gzip", bound)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("the bomb: %v, want ErrTooLarge", err)
	}
	// 256 KiB of zeros come from about 256 bytes of it; the rest is a
	// reader's buffer.
	if src.n > 64<<10 {
		t.Fatalf("read %d bytes of the bomb to refuse it; the bound needs a few hundred", src.n)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("refusing the bomb took %v", d)
	}
	if _, err := Decode(bomb, []string{"gzip"}, bound); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of the bomb: %v, want ErrTooLarge", err)
	}
}

// Peeking at an encoded body and decoding the copy leaves the body for the
// upstream as the client sent it, byte for byte.
func TestPeekLeavesAnEncodedBodyAsSent(t *testing.T) {
	sent := testutil.Encode(t, []byte("title=x&_method=DELETE"), "gzip", "br")
	r := httptest.NewRequest("POST", "/api/x", bytes.NewReader(sent))
	r.Header.Set("Content-Encoding", "gzip, br")
	b := Peek(r, bound)
	if got, err := Decode(b, r.Header.Values("Content-Encoding"), bound); err != nil || string(got) != "title=x&_method=DELETE" {
		t.Fatalf("decoded %q, %v", got, err)
	}
	rest, err := io.ReadAll(r.Body)
	if err != nil || !bytes.Equal(rest, sent) {
		t.Fatalf("the upstream would read %d bytes (%v), want the %d sent", len(rest), err, len(sent))
	}
	if r.Header.Get("Content-Encoding") != "gzip, br" || r.ContentLength != int64(len(sent)) {
		t.Fatalf("the request changed: %v, length %d", r.Header, r.ContentLength)
	}
}
