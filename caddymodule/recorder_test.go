package caddymodule

import (
	"net/http"
	"net/http/httptest"
	"testing"

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
			if got, _ := serveNext(w.make(), r, h.next); got != h.want {
				t.Errorf("%s writer, %s: status %d, want %d", w.name, h.name, got, h.want)
			}
		}
	}
}
