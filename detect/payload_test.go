package detect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

func readLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, strings.NewReplacer(`\x00`, "\x00", `\x0a`, "\n").Replace(line))
		}
	}
	return out
}

var familySignal = map[string]Signal{
	"sqli": SignalSQLi, "xss": SignalXSS, "command_injection": SignalCommandInjection, "file_inclusion": SignalFileInclusion,
}

// Each family's payloads, as tools send them, are found in a query value,
// a form body and a JSON body.
func TestPayloadsAreFound(t *testing.T) {
	p := newPayloadInspector(0)
	for _, line := range readLines(t, "payloads.txt") {
		family, value, _ := strings.Cut(line, " | ")
		want := familySignal[family]
		if s := p.value(value); !s.Has(want) {
			t.Errorf("%s %q: signals %v", family, value, s.Names())
		}
		for name, r := range map[string]*http.Request{
			"query": browserRequest("/search?q=" + url.QueryEscape(value)),
			"form":  bodyRequest("application/x-www-form-urlencoded", "name=x&comment="+url.QueryEscape(value)),
			"json":  bodyRequest("application/json", `{"items":[{"note":`+jsonString(value)+`}]}`),
		} {
			var res Result
			if p.inspect(r, &res) == 0 || !res.Signals.Has(want) {
				t.Errorf("%s %q in the %s: signals %v", family, value, name, res.Signals.Names())
			}
		}
	}
}

// Everyday values match no payload signal.
func TestEverydayValuesAreNotPayloads(t *testing.T) {
	p := newPayloadInspector(0)
	values := readLines(t, "everyday_values.txt")
	if len(values) < 50 {
		t.Fatalf("only %d everyday values", len(values))
	}
	for _, v := range values {
		if s := p.value(v); s&payloadSet != 0 {
			t.Errorf("%q: %v", v, s.Names())
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func bodyRequest(contentType, body string) *http.Request {
	r := browserRequest("/submit")
	r.Method = "POST"
	r.Header.Set("Content-Type", contentType)
	r.Body = readCloser{strings.NewReader(body)}
	r.ContentLength = int64(len(body))
	return r
}

type readCloser struct{ *strings.Reader }

func (readCloser) Close() error { return nil }

// The body is put back whole for the upstream; bodies over max_body, or of
// unknown length, are not read at all.
func TestBodiesAreBoundedAndPutBack(t *testing.T) {
	p := newPayloadInspector(1024)
	body := "comment=" + url.QueryEscape("1' UNION SELECT password FROM users--")
	r := bodyRequest("application/x-www-form-urlencoded", body)
	var res Result
	p.inspect(r, &res)
	if !res.Signals.Has(SignalSQLi) {
		t.Fatalf("form body: %v", res.Signals.Names())
	}
	if b, _ := readAll(r); b != body {
		t.Fatalf("the body the upstream reads is %q", b)
	}
	big := bodyRequest("application/json", `{"a":"`+strings.Repeat("x", 2000)+`", "b":"<script>alert(1)</script>"}`)
	res = Result{}
	p.inspect(big, &res)
	if res.Signals&payloadSet != 0 {
		t.Fatalf("a body over max_body was read: %v", res.Signals.Names())
	}
	chunked := bodyRequest("application/json", `{"b":"<script>alert(1)</script>"}`)
	chunked.ContentLength = -1
	res = Result{}
	p.inspect(chunked, &res)
	if res.Signals&payloadSet != 0 {
		t.Fatalf("a streamed body was read: %v", res.Signals.Names())
	}
}

func readAll(r *http.Request) (string, error) {
	var b strings.Builder
	_, err := fmt.Fprint(&b, "")
	buf := make([]byte, 512)
	for {
		n, rerr := r.Body.Read(buf)
		b.Write(buf[:n])
		if rerr != nil {
			return b.String(), err
		}
	}
}

// Untrusted input never causes unbounded work: a 1 MiB query string and a
// JSON body nested 30 000 deep are inspected in bounded time.
func TestHugeAndDeepInputsAreBounded(t *testing.T) {
	d := newDetector(t, nil)
	q := "/search?" + strings.Repeat("q=a%27+OR+1%3D1+&", 1<<20/17)
	r := browserRequest("/")
	r.URL, _ = url.Parse(q)
	r.RequestURI = q
	start := time.Now()
	d.inspect(r, src, 0)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a 1 MiB query took %s", took)
	}
	deep := strings.Repeat(`{"a":[`, 5000) + `"<script>alert(1)</script>"` + strings.Repeat(`]}`, 5000)
	start = time.Now()
	d.inspect(bodyRequest("application/json", deep), netip.MustParseAddr("192.0.2.99"), 0)
	if took := time.Since(start); took > time.Second {
		t.Fatalf("a deep JSON body took %s", took)
	}
}

// One payload does not block; a source that keeps sending different ones
// fills the payload bucket; one repeating the same value (a person paging
// through results for an odd search) counts once.
func TestPayloadBucket(t *testing.T) {
	c := testutil.NewClock(time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC))
	d := newDetector(t, c)
	injector := netip.MustParseAddr("198.51.100.30")
	payloads := []string{"1' AND 1=1-- -", ";env;", "<svg/onload=alert(1)>", "a;sleep 60;", "1 AND 8413=8413", "|id"}
	caught := 0
	for i, v := range payloads {
		res := d.inspect(browserRequest("/item?id="+url.QueryEscape(v)), injector, 0)
		if d.Scanner(res.Score) {
			caught = i + 1
			break
		}
		c.Add(200 * time.Millisecond)
	}
	if caught < 5 || caught > 6 { // the 5th, or the 6th should the Bloom filter take one payload for another
		t.Fatalf("caught at payload %d, want the 5th (payload_hits 4/1m)", caught)
	}
	person := netip.MustParseAddr("198.51.100.31")
	for page := range 10 {
		r := browserRequest(fmt.Sprintf("/search?q=%s&page=%d", url.QueryEscape("select * from users where 1=1"), page))
		if res := d.inspect(r, person, 0); d.Scanner(res.Score) {
			t.Fatalf("paging through one odd search was blocked at page %d: %v", page, res.Signals.Names())
		}
		c.Add(2 * time.Second)
	}
}

func BenchmarkInspectValue(b *testing.B) {
	p := newPayloadInspector(0)
	for _, v := range []string{"garden-chair", "O'Brien", "rock & roll"} {
		b.Run(v, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p.value(v)
			}
		})
	}
}

func BenchmarkInspectBody(b *testing.B) {
	d := newDetector(b, nil)
	body := `{"items":[` + strings.Repeat(`{"name":"garden chair","note":"O'Brien's order, rock & roll"},`, 16) + `{}]}`
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		d.inspect(bodyRequest("application/json", body), src, 0)
	}
}
