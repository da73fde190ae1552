package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// A site on a unix socket learns its clients' addresses only from a proxy
// it trusts there. Trusting it without trusted_proxies_strict (the client
// would pick its own address) or not at all (no client would be known) is
// refused at load; a request whose client still cannot be known is
// refused and logged, never passed.
func TestUnixSocketClientsAreKnownOrRefused(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "gk.sock")
	site := "\tbind unix/" + sock + "\n" + echoSite
	for _, tc := range []struct{ name, globals, says string }{
		{"not trusted", "", "listens on a unix socket without trusted_proxies_unix"},
		{"trusted, not strict", "\tservers {\n\t\ttrusted_proxies_unix\n\t}\n", "trusted_proxies_unix) without trusted_proxies_strict"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "Caddyfile")
			writeFile(t, path, "{\n\tadmin off\n\tgatekeeper {\n\t\tstore file "+dir+"/data\n\t}\n"+tc.globals+"}\nhttp://:"+port(t)+" {\n"+site+"\n}\n")
			for _, cmd := range []string{"adapt", "validate"} {
				out, err := runBin(t, cmd, "--config", path, "--adapter", "caddyfile")
				if cmd == "adapt" && !strings.Contains(tc.globals, "trusted_proxies_unix") {
					continue // the listener is known only once the config loads
				}
				if err == nil || !strings.Contains(out, tc.says) {
					t.Fatalf("%s: %v\n%s\nwant a refusal saying %q", cmd, err, out, tc.says)
				}
			}
		})
	}

	in := startSite(t, "\t\tstore file ./data\n\t}\n\tservers {\n\t\ttrusted_proxies_unix\n\t\ttrusted_proxies_strict\n\t\tclient_ip_headers X-Forwarded-For\n\t", site)
	id, _ := in.register(nil)
	viaSocket := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	get := func(headers ...string) answer {
		t.Helper()
		resp, err := viaSocket.Do(newRequest("GET", "proxy", "acme.localhost", "/", headers...))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return answer{resp.StatusCode, string(b), resp.Header}
	}
	if a := get("X-Forwarded-For", "127.0.0.2"); a.code != 200 || a.body != "tenant=acme approval="+id+" token=" {
		t.Fatalf("the proxy's client is the approved address: %d %q", a.code, a.body)
	}
	// A client's own entry before the proxy's: the right-most one counts.
	if a := get("X-Forwarded-For", "127.0.0.2, 127.0.0.3"); a.code != 200 || a.body != "tenant=acme approval= token=" {
		t.Fatalf("a client writing the approved address first: %d %q, want it treated as 127.0.0.3", a.code, a.body)
	}
	if a := get(); a.code != 403 {
		t.Fatalf("no client address: %d %q, want 403", a.code, a.body)
	}
	if !strings.Contains(in.logText(), "its client address cannot be known") {
		t.Fatal("the refusal of a request without a client address is not logged")
	}
}

// Trailers are headers that arrive after the body; Caddy's reverse_proxy
// passes them on and some upstreams merge them into the headers, so
// Gatekeeper's names are dropped from them as from the headers.
func TestTrailersCannotCarryGatekeeperHeaders(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = json.NewEncoder(w).Encode(r.Trailer)
	}))
	defer upstream.Close()
	in := startSite(t, "\t\tstore file ./data", "\tgatekeeper {\n\t\ttenant {http.request.host.labels.1}\n\t}\n\treverse_proxy "+strings.TrimPrefix(upstream.URL, "http://"))
	conn, err := net.Dial("tcp", in.Site)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprint(conn, "POST /upload HTTP/1.1\r\nHost: acme.localhost\r\nTransfer-Encoding: chunked\r\n"+
		"Trailer: Gatekeeper-Approval, X-Checksum\r\n\r\n5\r\nhello\r\n0\r\n"+
		"Gatekeeper-Approval: apr_forged\r\nGatekeeper_Verdict: clean\r\nGATEKEEPER-REASONS: none\r\nX-Checksum: abc\r\n\r\n")
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got http.Header
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatalf("%d: %v", resp.StatusCode, err)
	}
	if got.Get("X-Checksum") != "abc" {
		t.Fatalf("the upstream saw trailers %v; without X-Checksum the test proves nothing", got)
	}
	for name := range got {
		if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "gatekeeper-") {
			t.Errorf("trailer %s reached the upstream: %v", name, got)
		}
	}
}

// Someone inside a broad range approved for another tenant is not testing
// this one: they browse it like anyone else. The test's own traffic, its
// token or its scanner, is still refused here, and a source dedicated to a
// test still cannot reach other tenants at all.
func TestBystandersInABroadApprovedRangeBrowseOtherTenants(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	campus, token := in.register(func(b map[string]any) {
		b["tenant"], b["sources"], b["require_token"] = "globex", []string{"127.0.0.0/16"}, true
	})
	in.register(func(b map[string]any) { b["tenant"], b["sources"] = "globex", []string{"127.1.0.9"} })
	person := from(t, in, "127.0.0.3")
	if a := person.get("acme.localhost", "/"); a.code != 200 || a.body != "tenant=acme approval= token=" {
		t.Fatalf("a person in globex's approved range browsing acme: %d %q, want 200 like anyone", a.code, a.body)
	}
	if a := person.get("globex.localhost", "/", "Proxy-Authorization", "Gatekeeper "+token); a.code != 200 || a.body != "tenant=globex approval="+campus+" token=" {
		t.Fatalf("the tester on its own tenant: %d %q", a.code, a.body)
	}
	if a := person.get("acme.localhost", "/", "Proxy-Authorization", "Gatekeeper "+token); a.code != 403 {
		t.Fatalf("the test's token on another tenant: %d %q, want 403", a.code, a.body)
	}
	scanner := from(t, in, "127.0.0.4")
	if a := scanner.get("acme.localhost", "/", "User-Agent", sqlmapUA); a.code != 403 {
		t.Fatalf("a scanner in the range on another tenant: %d, want 403", a.code)
	}
	if a := from(t, in, "127.1.0.9").get("acme.localhost", "/"); a.code != 403 {
		t.Fatalf("a source dedicated to globex's test on acme: %d, want 403", a.code)
	}
	var a approvalJSON
	in.get("/gatekeeper/approvals/"+campus, &a)
	if a.Usage.OutOfScope > 1 {
		t.Fatalf("the bystander's visits were counted as the test's: %+v", a.Usage)
	}
}

// A tester approved for GET and POST cannot send anything else through an
// override in the query, a header or a body, nor hide one in a body too
// large or streamed to be read.
func TestMethodOverridesCannotEscapeAMethodScope(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.register(func(b map[string]any) { b["methods"], b["paths"] = []string{"GET", "POST"}, []string{"/api/*"} })
	c := from(t, in, "127.0.0.2")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("title", "x")
	_ = mw.WriteField("_method", "DELETE")
	_ = mw.Close()
	big := "a=" + strings.Repeat("x", 300<<10) + "&_method=DELETE"
	for _, tc := range []struct {
		name, target, contentType, body string
		header                          http.Header
		streamed                        bool
		code                            int
	}{
		{name: "plain POST", target: "/api/x", contentType: "application/json", body: `{"title":"x"}`, code: 200},
		{name: "encoded query name", target: "/api/x?%5Fmethod=DELETE", code: 403},
		// (Caddy drops header names with "_" unless the server expects them; the unit test covers those.)
		{name: "header in odd case", target: "/api/x", header: http.Header{"x-HTTP-method-OVERRIDE": {"PUT"}}, code: 403},
		{name: "JSON body", target: "/api/x", contentType: "application/json", body: `{"_method":"DELETE"}`, code: 403},
		{name: "multipart body", target: "/api/x", contentType: mw.FormDataContentType(), body: mp.String(), code: 403},
		{name: "form over the size read", target: "/api/x", contentType: "application/x-www-form-urlencoded", body: big, code: 403},
		{name: "streamed form", target: "/api/x", contentType: "application/x-www-form-urlencoded", body: "_method=DELETE", streamed: true, code: 403},
		{name: "streamed upload of another kind", target: "/api/x", contentType: "application/octet-stream", body: "bytes", streamed: true, code: 200},
	} {
		var body io.Reader = strings.NewReader(tc.body)
		if tc.streamed {
			body = io.MultiReader(body) // no length: sent chunked
		}
		req, _ := http.NewRequest("POST", "http://"+in.Site+tc.target, body)
		req.Host = "acme.localhost"
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		for k, v := range tc.header {
			req.Header[k] = v
		}
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.code)
		}
	}
}

// A compressed body is read as the upstream's body parser reads it,
// decompressed: an override inside is out of a GET/POST scope, a body
// Gatekeeper cannot decode (zstd, a bomb) counts as one it cannot read,
// and a compressed body without one reaches the upstream as sent, byte
// for byte, with its Content-Encoding.
func TestCompressedBodiesCannotHideAnOverride(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %x", r.Header.Get("Content-Encoding"), sha256.Sum256(b))
	}))
	defer upstream.Close()
	in := startSite(t, "\t\tstore file ./data", "\tgatekeeper {\n\t\ttenant {http.request.host.labels.1}\n\t}\n\treverse_proxy "+strings.TrimPrefix(upstream.URL, "http://"))
	in.register(func(b map[string]any) { b["methods"], b["paths"] = []string{"GET", "POST"}, []string{"/api/*"} })
	c := from(t, in, "127.0.0.2")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("_method", "DELETE")
	_ = mw.Close()
	const form = "application/x-www-form-urlencoded"
	bomb := bytes.Repeat(testutil.Encode(t, make([]byte, 1<<20), "gzip"), 240) // 240 MiB of zeros in 250 KiB
	for _, tc := range []struct {
		name, contentType, contentEncoding string
		body                               []byte
		code                               int
	}{
		{"gzip form", form, "gzip", testutil.Encode(t, []byte("title=x&_method=DELETE"), "gzip"), 403},
		{"deflate multipart", mw.FormDataContentType(), "deflate", testutil.Encode(t, mp.Bytes(), "deflate"), 403},
		{"br JSON", "application/json", "br", testutil.Encode(t, []byte(`{"_method":"DELETE"}`), "br"), 403},
		{"gzip then br form", form, "gzip, br", testutil.Encode(t, []byte("_method=DELETE"), "gzip", "br"), 403},
		{"zstd form", form, "zstd", []byte("(\xb5/\xfd\x04\x00\x71\x00\x00_method=DELETE"), 403},
		{"gzip bomb", form, "gzip", bomb, 403},
		{"gzip form without an override", form, "gzip", testutil.Encode(t, []byte("title=x"), "gzip"), 200},
		{"gzip then br JSON without an override", "application/json", "gzip, br", testutil.Encode(t, []byte(`{"title":"x"}`), "gzip", "br"), 200},
	} {
		req, _ := http.NewRequest("POST", "http://"+in.Site+"/api/x", bytes.NewReader(tc.body))
		req.Host = "acme.localhost"
		req.Header.Set("Content-Type", tc.contentType)
		req.Header.Set("Content-Encoding", tc.contentEncoding)
		start := time.Now()
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.code)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s: answered in %v", tc.name, took)
		}
		if want := fmt.Sprintf("%s %x", tc.contentEncoding, sha256.Sum256(tc.body)); tc.code == 200 && string(b) != want {
			t.Errorf("%s: the upstream got %q, want the body as sent: %q", tc.name, b, want)
		}
	}
}

func TestClientCannotForgeGatekeeperHeaders(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	req, _ := http.NewRequest("GET", "http://"+in.Site+"/", nil)
	req.Host = "acme.localhost"
	req.Header.Set("Gatekeeper-Approval", "apr_forged")
	req.Header.Set("gatekeeper-verdict", "approved")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "tenant=acme approval= token=" {
		t.Fatalf("upstream saw %q; a forged Gatekeeper-Approval must never reach it", b)
	}
}
