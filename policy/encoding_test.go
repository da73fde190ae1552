package policy

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// encodedBody is a body as a client sends it: its type, its encoding and
// its bytes on the wire.
type encodedBody struct {
	name, contentType, contentEncoding string
	wire                               []byte
}

// encodedBodies are plain in every encoding a client may send it in.
func encodedBodies(t testing.TB, contentType string, plain []byte) []encodedBody {
	var out []encodedBody
	for _, e := range []struct{ header, name string }{
		{"gzip", "gzip"}, {"x-gzip", "gzip"}, {"deflate", "deflate"}, {"deflate", "raw-deflate"}, {"br", "br"},
		{"gzip, br", "gzip,br"}, {"identity, Deflate", "deflate"},
	} {
		out = append(out, encodedBody{e.name + " as " + e.header, contentType, e.header,
			testutil.Encode(t, plain, strings.Split(e.name, ",")...)})
	}
	return out
}

// readEncoded is Read on a POST from an address the GET/POST-only approval
// covers, with an encoded body; it returns the view, the decision on it
// and what the upstream would read of the body.
func readEncoded(t *testing.T, b encodedBody) (View, Decision, []byte) {
	t.Helper()
	r := httptest.NewRequest("POST", "http://acme.example/api/x", bytes.NewReader(b.wire))
	r.Header.Set("Content-Type", b.contentType)
	r.Header.Set("Content-Encoding", b.contentEncoding)
	v := Read(r, netip.MustParseAddr("192.0.2.3"), snapshot(), at, pathMatcher{})
	v.Access.Tenant = "acme"
	d := Decide(&Inputs{View: v, Request: r, Snapshot: snapshot(), Now: at, Mode: ModeBlock, Limiter: admitAll})
	upstream, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return v, d, upstream
}

// A tester approved for GET and POST cannot send DELETE in a compressed
// form, multipart or JSON body, in any coding an upstream decompresses;
// the same bodies without an override are admitted; and either way the
// upstream reads the body as the client sent it, compressed, byte for byte.
func TestEncodedBodiesCannotHideAnOverride(t *testing.T) {
	var mp, mpPlain bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.SetBoundary("XyZ")
	_ = mw.WriteField("title", "x")
	_ = mw.WriteField("_method", "DELETE")
	_ = mw.Close()
	mw = multipart.NewWriter(&mpPlain)
	_ = mw.SetBoundary("XyZ")
	_ = mw.WriteField("title", "x")
	_ = mw.Close()
	const form, multi, json = "application/x-www-form-urlencoded", "multipart/form-data; boundary=XyZ", "application/json"

	var overrides, plain []encodedBody
	overrides = append(overrides, encodedBodies(t, form, []byte("title=x&_method=DELETE"))...)
	overrides = append(overrides, encodedBodies(t, multi, mp.Bytes())...)
	overrides = append(overrides, encodedBodies(t, json, []byte(`{"title":"x","_method":"DELETE"}`))...)
	plain = append(plain, encodedBodies(t, form, []byte("title=x&method=DELETE"))...)
	plain = append(plain, encodedBodies(t, multi, mpPlain.Bytes())...)
	plain = append(plain, encodedBodies(t, json, []byte(`{"title":"x"}`))...)

	for _, b := range overrides {
		v, d, upstream := readEncoded(t, b)
		if !slices.Contains(v.Access.Methods, "DELETE") {
			t.Errorf("%s %s: methods %v, want DELETE among them", b.contentType, b.name, v.Access.Methods)
		}
		if d.Reason != ReasonOutOfScope || d.Status != 403 {
			t.Errorf("%s %s with _method=DELETE: %s/%s %d, want out_of_scope 403", b.contentType, b.name, d.Verdict, d.Reason, d.Status)
		}
		if !bytes.Equal(upstream, b.wire) {
			t.Errorf("%s %s: the upstream would read %d bytes, not the %d sent", b.contentType, b.name, len(upstream), len(b.wire))
		}
	}
	for _, b := range plain {
		v, d, upstream := readEncoded(t, b)
		if d.Verdict != VerdictApproved || !slices.Equal(v.Access.Methods, []string{"POST"}) {
			t.Errorf("%s %s without an override: %s/%s, methods %v; want approved", b.contentType, b.name, d.Verdict, d.Reason, v.Access.Methods)
		}
		if !bytes.Equal(upstream, b.wire) {
			t.Errorf("%s %s: the upstream would read %d bytes, not the %d sent", b.contentType, b.name, len(upstream), len(b.wire))
		}
	}
}

// A body Gatekeeper cannot decode is an override it cannot read, out of a
// method scope, never admitted as a plain POST: a coding it does not read,
// a stream the header lies about, one that decodes past the bound (a bomb
// among them), and more codings than anyone sends.
func TestUndecodableBodiesAreOutOfAMethodScope(t *testing.T) {
	const form = "application/x-www-form-urlencoded"
	// 256 MiB of zeros in about 256 KiB: 1 MiB gzip members, repeated.
	bomb := bytes.Repeat(testutil.Encode(t, make([]byte, 1<<20), "gzip"), 240)
	if len(bomb) > maxOverrideBody {
		t.Fatalf("the bomb is %d bytes, over the size read; it would not be decoded at all", len(bomb))
	}
	for _, b := range []encodedBody{
		{"zstd", form, "zstd", []byte("(\xb5/\xfd\x04\x00\x71\x00\x00_method=DELETE")},
		{"compress", form, "compress", []byte("\x1f\x9d\x90_method=DELETE")},
		{"gzip on a plain body", form, "gzip", []byte("_method=DELETE")},
		{"br on a plain body", form, "br", []byte("title=x")},
		{"over the bound decoded", form, "gzip", testutil.Encode(t, []byte("a="+strings.Repeat("x", maxOverrideBody)), "gzip")},
		{"a bomb", form, "gzip", bomb},
		{"five codings", form, "gzip, gzip, gzip, gzip, gzip", testutil.Encode(t, []byte("title=x"), "gzip", "gzip", "gzip", "gzip", "gzip")},
	} {
		start := time.Now()
		v, d, upstream := readEncoded(t, b)
		if !slices.Contains(v.Access.Methods, UnreadableOverride) {
			t.Errorf("%s: methods %v, want %q among them", b.name, v.Access.Methods, UnreadableOverride)
		}
		if d.Reason != ReasonOutOfScope || d.Status != 403 {
			t.Errorf("%s: %s/%s %d, want out_of_scope 403", b.name, d.Verdict, d.Reason, d.Status)
		}
		if !bytes.Equal(upstream, b.wire) {
			t.Errorf("%s: the upstream would read %d bytes, not the %d sent", b.name, len(upstream), len(b.wire))
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: took %v", b.name, took)
		}
	}
}

// The Content-Encoding header is the client's, and lying in it gains
// nothing. "identity" on a gzip body has it read as it is, and the
// override inside is not seen, but neither is it by an upstream, which
// trusts the same header; the gzip body it then reads is not a form.
func TestIdentityOnAnEncodedBodyHidesNothingFromTheUpstream(t *testing.T) {
	b := encodedBody{"gzip sent as identity", "application/x-www-form-urlencoded", "identity",
		testutil.Encode(t, []byte("_method=DELETE"), "gzip")}
	v, _, upstream := readEncoded(t, b)
	if !slices.Equal(v.Access.Methods, []string{"POST"}) || !bytes.Equal(upstream, b.wire) {
		t.Fatalf("methods %v, upstream read %d of %d bytes", v.Access.Methods, len(upstream), len(b.wire))
	}
}
