package caddymodule

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// serveNext sees the status of the answer whether it reads it from a Caddy
// response recorder already in place or puts its own recorder in: a
// status written, a body written without one, nothing written, and a
// recorder another handler already wrote to (not trusted: its own is used).
func TestServeNextSeesTheStatus(t *testing.T) {
	handlers := []struct {
		name string
		next caddyhttp.HandlerFunc
		want int
	}{
		{"404", func(w http.ResponseWriter, _ *http.Request) error { w.WriteHeader(404); return nil }, 404},
		{"body only", func(w http.ResponseWriter, _ *http.Request) error { _, err := w.Write([]byte("ok")); return err }, 200},
		{"nothing", func(http.ResponseWriter, *http.Request) error { return nil }, 0},
		{"early hints, then 410", func(w http.ResponseWriter, _ *http.Request) error {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(410)
			return nil
		}, 410},
	}
	writers := []struct {
		name string
		make func() http.ResponseWriter
	}{
		{"plain", func() http.ResponseWriter { return httptest.NewRecorder() }},
		{"caddy recorder", func() http.ResponseWriter { return caddyhttp.NewResponseRecorder(httptest.NewRecorder(), nil, nil) }},
		{"caddy recorder written to", func() http.ResponseWriter {
			w := caddyhttp.NewResponseRecorder(httptest.NewRecorder(), nil, nil)
			w.WriteHeader(http.StatusContinue) // informational: the answer is still to come
			return w
		}},
	}
	r := httptest.NewRequest("GET", "/", nil)
	for _, w := range writers {
		for _, h := range handlers {
			if got, _ := serveNext(w.make(), r, h.next, time.Now()); got.status != h.want {
				t.Errorf("%s writer, %s: status %d, want %d", w.name, h.name, got.status, h.want)
			}
		}
	}
}

// The upstream's time to answer is counted from the decision, or from the
// request body's last byte if the client sent it later, to the answer's
// head: neither a slow upload nor a slow reader is in it.
func TestServeNextTimesTheUpstreamOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The client trickles its body for 1.5 s; the upstream reads it
		// all, works 20 ms, and answers; the client then reads slowly.
		upload := io.MultiReader(slowReader{"a", 500 * time.Millisecond}, slowReader{"b", 500 * time.Millisecond}, slowReader{"c", 500 * time.Millisecond})
		r := httptest.NewRequest("POST", "/", upload)
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if _, err := io.ReadAll(r.Body); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
			w.WriteHeader(http.StatusOK)
			for range 10 {
				_, _ = w.Write([]byte(strings.Repeat("x", 1000)))
				time.Sleep(time.Second) // the client reads slowly
			}
			return nil
		})
		start := time.Now()
		a, err := serveNext(httptest.NewRecorder(), r, next, start)
		if err != nil || a.status != http.StatusOK {
			t.Fatalf("status %d, err %v", a.status, err)
		}
		if a.took != 20*time.Millisecond || !a.head.Equal(start.Add(1520*time.Millisecond)) {
			t.Errorf("took %s with its head at +%s; want the upstream's 20 ms, at +1.52 s", a.took, a.head.Sub(start))
		}
		// Without a body, from the decision; nothing written, until next returns.
		a, _ = serveNext(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
			time.Sleep(30 * time.Millisecond)
			return nil
		}), time.Now())
		if a.took != 30*time.Millisecond {
			t.Errorf("nothing written after 30 ms: took %s", a.took)
		}
	})
}

// slowReader gives its text after a wait.
type slowReader struct {
	text string
	wait time.Duration
}

func (s slowReader) Read(p []byte) (int, error) {
	if s.text == "" {
		return 0, io.EOF
	}
	time.Sleep(s.wait)
	return copy(p, s.text), io.EOF
}

// A handler that copies its answer with io.Copy (ReadFrom, no Write) has
// its head timed before the copy; a body the client broke off marks the
// answer as the client's failure.
func TestServeNextTimesCopiesAndBlamesBrokenBodies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
			_, err := io.Copy(w, slowReader{"answer", time.Second}) // the client reads slowly
			return err
		})
		start := time.Now()
		a, err := serveNext(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), next, start)
		if err != nil || a.status != http.StatusOK || a.took != 0 {
			t.Errorf("copied answer: status %d, took %s, err %v; want 200 timed at its head", a.status, a.took, err)
		}
		broken := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			if _, err := io.ReadAll(r.Body); err != nil {
				w.WriteHeader(http.StatusBadGateway)
			}
			return nil
		})
		r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader("half"), iotestErr{}))
		if a, _ := serveNext(httptest.NewRecorder(), r, broken, time.Now()); a.status != http.StatusBadGateway || !a.clientFailed {
			t.Errorf("a body broken off: status %d, clientFailed %v; want 502 blamed on the client", a.status, a.clientFailed)
		}
	})
}

// iotestErr is a body the client broke off.
type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
