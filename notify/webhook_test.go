package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/customernode/gatekeeper/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// receiver is a webhook endpoint: it keeps what it was sent and answers
// with answer(n), n counting requests from 0.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	got    []*http.Request
	bodies [][]byte
	open   int // connections not yet closed
	answer func(n int, w http.ResponseWriter, r *http.Request)
}

func newReceiver(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *receiver {
	rc := &receiver{answer: answer}
	rc.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		n := len(rc.got)
		rc.got, rc.bodies = append(rc.got, r), append(rc.bodies, body)
		rc.mu.Unlock()
		if rc.answer != nil {
			rc.answer(n, w, r)
		}
	}))
	rc.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		switch st {
		case http.StateNew:
			rc.open++
		case http.StateClosed, http.StateHijacked:
			rc.open--
		}
	}
	rc.Start()
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) conns() int { rc.mu.Lock(); defer rc.mu.Unlock(); return rc.open }

func (rc *receiver) requests() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.got) }

// messages are the bodies received, decoded.
func (rc *receiver) messages(t *testing.T) []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []map[string]any
	for _, b := range rc.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("body %q: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

// answering answers every request with code.
func answering(code int) func(int, http.ResponseWriter, *http.Request) {
	return func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// counts records Options.Count's calls.
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) add(event, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[event+"/"+result]++
}

func (c *counts) get(event, result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[event+"/"+result]
}

// waits records the backoffs asked of After and ends them at once.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) after(d time.Duration) <-chan time.Time {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	ch := make(chan time.Time, 1)
	ch <- time.Time{}
	return ch
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// open starts a webhook to url whose waits end at once; it is closed
// at the end of the test.
func open(t *testing.T, url string, opts Options) (*Webhook, *counts, *waits) {
	t.Helper()
	c, w := &counts{}, &waits{}
	opts.Count = c.add
	if opts.After == nil {
		opts.After = w.after
	}
	hook, err := New(url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hook.Close(ctx)
	})
	return hook, c, w
}

// closeNow closes hook, giving up on anything queued at once.
func closeNow(hook *Webhook) error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return hook.Close(ctx)
}

func drain(t *testing.T, hook *Webhook) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hook.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReceiverSeesSlackEscapedText(t *testing.T) {
	rc := newReceiver(t, answering(http.StatusOK))
	hook, c, _ := open(t, rc.URL+"/T0/B0", Options{})
	a := request()
	a.Tenant = "acme<!channel>"
	hook.Notify(Event{Kind: KindDenied, Approval: a, By: &bob, Note: "<!channel> <http://evil|x>"})
	drain(t, hook)

	msgs := rc.messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	want := "Security test request apr_1a2b for tenant *acme&lt;!channel&gt;* denied by bob (mtls): " +
		"&lt;!channel&gt; &lt;http://evil|x&gt;."
	if got := msgs[0]["text"]; got != want {
		t.Fatalf("text\n got %q\nwant %q", got, want)
	}
	if strings.Contains(string(rc.bodies[0]), a.TokenHash) {
		t.Fatal("the token hash was sent")
	}
	if c.get(KindDenied, ResultSent) != 1 {
		t.Fatalf("counts %v", c.m)
	}
}

func TestReceiverGetsJSONFromGatekeeper(t *testing.T) {
	rc := newReceiver(t, answering(http.StatusOK))
	hook, c, _ := open(t, rc.URL+"/T0/B0", Options{})
	a := request()
	hook.Notify(Event{Kind: KindRequested, Approval: a, By: &alice, At: start.Add(-2 * time.Hour)})
	a.Tenant = "changed after Notify"
	drain(t, hook)

	r := rc.got[0]
	if r.Method != http.MethodPost || r.URL.Path != "/T0/B0" {
		t.Fatalf("%s %s", r.Method, r.URL.Path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if ua := r.Header.Get("User-Agent"); !strings.Contains(ua, "Gatekeeper") {
		t.Fatalf("User-Agent %q", ua)
	}
	m := rc.messages(t)[0]
	ap := m["approval"].(map[string]any)
	if m["event"] != "requested" || ap["id"] != "apr_1a2b" || ap["tenant"] != "acme" || ap["status"] != "pending" ||
		ap["max_rps"] != 20.0 || ap["sources"].([]any)[0] != "203.0.113.0/28" || ap["not_before"] != "2026-12-01T09:00:00Z" {
		t.Fatalf("message %v", m)
	}
	if want := "Security test request apr_1a2b for tenant *acme* by alice (oidc): 20/s from 203.0.113.0/28, " +
		"2026-12-01 09:00–17:00 UTC. Waiting for 1 approval."; m["text"] != want {
		t.Fatalf("text %q", m["text"])
	}
	if a.TokenHash == "" {
		t.Fatal("Notify changed the caller's approval")
	}
	if c.get(KindRequested, ResultSent) != 1 {
		t.Fatalf("counts %v", c.m)
	}
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n < 3 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	hook, c, w := open(t, rc.URL, Options{FirstBackoff: time.Second, MaxBackoff: 3 * time.Second})
	hook.Notify(Event{Kind: KindApproved, Approval: request(), By: &bob})
	drain(t, hook)

	if rc.requests() != 4 || c.get(KindApproved, ResultRetried) != 3 || c.get(KindApproved, ResultSent) != 1 ||
		c.get(KindApproved, ResultDropped) != 0 {
		t.Fatalf("%d requests, counts %v", rc.requests(), c.m)
	}
	// Exponential, capped at MaxBackoff, jittered down by up to half.
	ceilings := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}
	got := w.all()
	if len(got) != len(ceilings) {
		t.Fatalf("waits %v", got)
	}
	for i, d := range got {
		if d > ceilings[i] || d < ceilings[i]/2 {
			t.Fatalf("wait %d is %s; want within [%s, %s]", i+1, d, ceilings[i]/2, ceilings[i])
		}
	}
}

func TestRetryAfterIsHonouredUpToMaxBackoff(t *testing.T) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name, header string
		code         int
		want         time.Duration
	}{
		{"seconds", "7", http.StatusTooManyRequests, 7 * time.Second},
		{"date", now.Add(20 * time.Second).Format(http.TimeFormat), http.StatusTooManyRequests, 20 * time.Second},
		{"longer than max backoff", "3600", http.StatusTooManyRequests, time.Minute},
		{"on a 503", "2", http.StatusServiceUnavailable, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.header)
					w.WriteHeader(tc.code)
				}
			})
			hook, c, w := open(t, rc.URL, Options{Now: func() time.Time { return now }})
			hook.Notify(Event{Kind: KindRevoked, Approval: request(), By: &bob})
			drain(t, hook)
			if got := w.all(); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("waits %v; want [%s]", got, tc.want)
			}
			if c.get(KindRevoked, ResultRetried) != 1 || c.get(KindRevoked, ResultSent) != 1 {
				t.Fatalf("counts %v", c.m)
			}
		})
	}
}

func TestRefusalsAreDroppedWithoutRetry(t *testing.T) {
	for _, tc := range []struct {
		code     int
		requests int
		retried  int
	}{
		{http.StatusBadRequest, 1, 0},
		{http.StatusNotFound, 1, 0},
		{http.StatusForbidden, 1, 0},
		{http.StatusFound, 1, 0}, // a redirect is not followed
		{http.StatusRequestTimeout, 3, 2},
		{http.StatusTooManyRequests, 3, 2},
		{http.StatusBadGateway, 3, 2},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			rc := newReceiver(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
				if tc.code == http.StatusFound {
					w.Header().Set("Location", "http://elsewhere.example/")
				}
				w.WriteHeader(tc.code)
			})
			hook, c, _ := open(t, rc.URL, Options{Attempts: 3})
			hook.Notify(Event{Kind: KindLapsed, Approval: request()})
			drain(t, hook)
			if rc.requests() != tc.requests || c.get(KindLapsed, ResultRetried) != tc.retried ||
				c.get(KindLapsed, ResultDropped) != 1 || c.get(KindLapsed, ResultSent) != 0 {
				t.Fatalf("%d requests, counts %v", rc.requests(), c.m)
			}
		})
	}
}

func TestLogsNeverShowTheWebhookSecret(t *testing.T) {
	// Nothing listens here: every attempt fails to connect.
	url := "http://" + testutil.FreeAddr(t) + "/services/T0/B0/s3cr3t"
	core, logs := observer.New(zap.DebugLevel)
	hook, c, _ := open(t, url, Options{Attempts: 2, Logger: zap.New(core)})
	hook.Notify(Event{Kind: KindExhausted, Approval: request()})
	drain(t, hook)
	if c.get(KindExhausted, ResultRetried) != 1 || c.get(KindExhausted, ResultDropped) != 1 {
		t.Fatalf("counts %v", c.m)
	}
	if logs.Len() != 2 {
		t.Fatalf("%d log entries", logs.Len())
	}
	for _, e := range logs.All() {
		if line := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(line, "s3cr3t") {
			t.Fatalf("log shows the webhook's path: %s", line)
		}
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	release := make(chan struct{})
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	hook, c, _ := open(t, rc.URL, Options{QueueSize: 2, Timeout: time.Minute})
	hook.Notify(Event{Kind: KindRequested, Approval: request()})
	testutil.WaitFor(t, 5*time.Second, "first delivery under way", func() bool { return rc.requests() == 1 })

	began := time.Now()
	for range 2 + 50 {
		hook.Notify(Event{Kind: KindRequested, Approval: request()})
	}
	if took := time.Since(began); took > time.Second {
		t.Fatalf("52 Notify calls took %s while the receiver hung", took)
	}
	if c.get(KindRequested, ResultDropped) != 50 {
		t.Fatalf("counts %v", c.m)
	}
	close(release)
	drain(t, hook)
	if rc.requests() != 3 || c.get(KindRequested, ResultSent) != 3 {
		t.Fatalf("%d requests, counts %v", rc.requests(), c.m)
	}
}

func TestCloseDeliversWhatIsQueuedInOrder(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	rc := newReceiver(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n%3 == 1 { // every third request fails once: order must survive retries
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	c, w := &counts{}, &waits{}
	hook, err := New(rc.URL, Options{Count: c.add, After: w.after})
	testutil.NoError(t, err)
	const n = 40
	for i := range n {
		a := request()
		a.ID = fmt.Sprintf("apr_%02d", i)
		hook.Notify(Event{Kind: KindApproved, Approval: a})
	}
	drain(t, hook)

	var ids []string
	for i, m := range rc.messages(t) {
		if i%3 != 1 {
			ids = append(ids, m["approval"].(map[string]any)["id"].(string))
		}
	}
	for i, id := range ids {
		if want := fmt.Sprintf("apr_%02d", i); id != want {
			t.Fatalf("delivery %d was %s; want %s (all: %v)", i, id, want, ids)
		}
	}
	if len(ids) != n || c.get(KindApproved, ResultSent) != n {
		t.Fatalf("%d delivered, counts %v", len(ids), c.m)
	}
	testutil.WaitFor(t, 5*time.Second, "no connection left to the receiver", func() bool { return rc.conns() == 0 })
	rc.Close()
	goleak.VerifyNone(t, ignore)
}

func TestCloseGivesUpWhenItsContextEnds(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	rc := newReceiver(t, func(_ int, w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	c := &counts{}
	hook, err := New(rc.URL, Options{Count: c.add, Timeout: time.Minute})
	testutil.NoError(t, err)
	for range 3 {
		hook.Notify(Event{Kind: KindRevoked, Approval: request()})
	}
	testutil.WaitFor(t, 5*time.Second, "first delivery under way", func() bool { return rc.requests() == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	began := time.Now()
	if err := hook.Close(ctx); err == nil {
		t.Fatal("Close reported everything delivered")
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Fatalf("Close took %s with a 100ms context", took)
	}
	if c.get(KindRevoked, ResultDropped) != 3 || c.get(KindRevoked, ResultSent) != 0 {
		t.Fatalf("counts %v", c.m)
	}
	hook.Notify(Event{Kind: KindRevoked, Approval: request()})
	if c.get(KindRevoked, ResultDropped) != 4 || rc.requests() != 1 {
		t.Fatalf("after Close: %d requests, counts %v", rc.requests(), c.m)
	}
	rc.Close()
	goleak.VerifyNone(t, ignore)
}

func TestCloseDuringBackoffDropsAtOnce(t *testing.T) {
	rc := newReceiver(t, answering(http.StatusInternalServerError))
	hook, c, _ := open(t, rc.URL, Options{After: func(time.Duration) <-chan time.Time { return nil }})
	hook.Notify(Event{Kind: KindDenied, Approval: request()})
	testutil.WaitFor(t, 5*time.Second, "first attempt", func() bool { return c.get(KindDenied, ResultRetried) == 1 })
	if err := closeNow(hook); err == nil {
		t.Fatal("Close reported everything delivered")
	}
	if c.get(KindDenied, ResultDropped) != 1 || rc.requests() != 1 {
		t.Fatalf("%d requests, counts %v", rc.requests(), c.m)
	}
}

func TestNewNamesWhatIsWrong(t *testing.T) {
	for _, tc := range []struct {
		url  string
		opts Options
		want string
	}{
		{"ftp://hooks.example.com/T0/B0", Options{}, `scheme is "ftp"`},
		{"hooks.example.com/T0/B0", Options{}, `scheme is ""`},
		{"https:///T0/B0", Options{}, "no host"},
		{"https://:443/T0/B0", Options{}, "no host"},
		{"https://hooks.example.com/T0/B0#x", Options{}, "fragment"},
		{"https://hooks.example.com/T0/B0\x7f", Options{}, "not a URL"},
		{"https://hooks.example.com/T0/B0", Options{QueueSize: -1}, "queue size is negative"},
		{"https://hooks.example.com/T0/B0", Options{FirstBackoff: time.Hour}, "first backoff (1h0m0s) is longer"},
	} {
		_, err := New(tc.url, tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q): %v; want one saying %q", tc.url, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "T0/B0") {
			t.Errorf("New(%q): %v shows the webhook's path", tc.url, err)
		}
	}
}

func TestNoWebhookConfiguredIsANoOp(t *testing.T) {
	var hook *Webhook
	hook.Notify(Event{Kind: KindRequested, Approval: request()})
	if err := closeNow(hook); err != nil {
		t.Fatal(err)
	}
}
