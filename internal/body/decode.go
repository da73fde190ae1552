package body

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/andybalholm/brotli"
)

// ErrTooLarge is Decode's answer for a body that decodes to more than the
// bound it was given.
var ErrTooLarge = errors.New("decoded body over the size read")

// maxCodings is the most content codings Decode undoes: clients send one,
// rarely two; a longer list is refused rather than unwrapped layer after
// layer.
const maxCodings = 4

// Decode undoes the content codings named in contentEncoding (the values
// of a request's Content-Encoding header as the client sent them: codings
// in the order they were applied, so undone from the last) on b, a body
// read by Peek, and returns it decoded. Gzip (and x-gzip), deflate (zlib
// as the standard says, or raw as some clients send it) and br are read;
// identity is nothing to undo. Any other coding, a corrupt or truncated
// stream, bytes after a stream's end, more than maxCodings codings, or a
// body that decodes (at any step) to more than max bytes is an error: the
// body cannot be read as the upstream would read it. No step reads more
// than max+1 decoded bytes, whatever the ratio, so a decompression bomb
// costs the bound and no more. b itself is not changed.
func Decode(b []byte, contentEncoding []string, max int64) ([]byte, error) {
	codings, err := parseCodings(contentEncoding)
	if err != nil {
		return nil, err
	}
	for i := len(codings) - 1; i >= 0; i-- {
		if b, err = decodeOne(bytes.NewReader(b), codings[i], max); err != nil {
			return nil, err
		}
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

// parseCodings lists the codings in a Content-Encoding header's values, in
// lower case and in order, without identity. Several header lines are one
// list, as for any list-valued header.
func parseCodings(values []string) ([]string, error) {
	var codings []string
	for _, v := range values {
		for c := range strings.SplitSeq(v, ",") {
			c = strings.ToLower(strings.Trim(c, " \t"))
			if c == "" || c == "identity" {
				continue
			}
			if len(codings) == maxCodings {
				return nil, fmt.Errorf("content coding: more than %d codings", maxCodings)
			}
			codings = append(codings, c)
		}
	}
	return codings, nil
}

// decodeOne undoes one coding on src and reads at most max+1 decoded bytes.
func decodeOne(src io.Reader, coding string, max int64) ([]byte, error) {
	in := bufio.NewReader(src) // a flate.Reader: decoders read no further than they need
	dec, err := decoder(in, coding)
	if err != nil {
		return nil, fmt.Errorf("content coding %q: %w", coding, err)
	}
	out, err := io.ReadAll(io.LimitReader(dec, max+1))
	switch {
	case int64(len(out)) > max:
		return nil, fmt.Errorf("content coding %q: %w", coding, ErrTooLarge)
	case err != nil:
		return nil, fmt.Errorf("content coding %q: %w", coding, err)
	}
	// Bytes after the end of the stream are something another reader
	// might make more of (a second zlib stream, say): not readable here.
	if _, err := in.ReadByte(); err != io.EOF {
		return nil, fmt.Errorf("content coding %q: data after the end of the stream", coding)
	}
	return out, nil
}

func decoder(in *bufio.Reader, coding string) (io.Reader, error) {
	switch coding {
	case "gzip", "x-gzip":
		return gzip.NewReader(in) // concatenated members read as one, as Node's gunzip does
	case "deflate":
		if zlibHeader(in) {
			return zlib.NewReader(in)
		}
		return flate.NewReader(in), nil
	case "br":
		return brotli.NewReader(in), nil
	default: // zstd, compress and anything unknown
		return nil, errors.New("not a coding Gatekeeper reads")
	}
}

// zlibHeader reports whether in starts with a zlib header (RFC 1950: the
// deflate method, a window of at most 32 KiB, a valid check), as the
// deflate coding should; a raw deflate stream, as some clients send under
// that name, seldom does, and one that does fails zlib's checksum.
func zlibHeader(in *bufio.Reader) bool {
	h, err := in.Peek(2)
	return err == nil && h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}
