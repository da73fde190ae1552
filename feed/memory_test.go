package feed

import (
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// A client can make its method, host, path and (through the tenant
// placeholder) tenant as long as a request allows: every field is cut, the
// ring's text stays within size events of maxEventBytes, and no event
// keeps the request's memory alive.
func TestMemoryIsBoundedWhateverClientsSend(t *testing.T) {
	f := New()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	long := strings.Repeat("é", 256<<10) // 512 KiB, two bytes a character
	for i := range size + 10 {
		// Fresh strings each time, as each request brings its own.
		f.Record(Event{Time: at.Add(time.Duration(i) * 20 * time.Millisecond), // within the feed's rate
			Method: strings.Clone("M" + long), Host: strings.Clone("h" + long), Tenant: strings.Clone("t" + long),
			Path: strings.Clone("/" + long), Source: "192.0.2.1", Verdict: "blocked", Reason: "banned"})
		if i == 0 && f.textBytes() > maxEventBytes {
			t.Fatalf("one event holds %d bytes of text, more than %d", f.textBytes(), maxEventBytes)
		}
	}
	if n := f.textBytes(); n > size*maxEventBytes {
		t.Fatalf("the ring holds %d bytes of text, more than %d", n, size*maxEventBytes)
	}
	evs, _ := f.Since(0, 1)
	for _, v := range []string{evs[0].Method, evs[0].Host, evs[0].Tenant, evs[0].Path} {
		if !utf8.ValidString(v) || len(v) > maxPath {
			t.Fatalf("a field of %d bytes (valid UTF-8: %v)", len(v), utf8.ValidString(v))
		}
	}
	// The ring must not pin the requests' strings: after a collection the
	// heap holds about the ring, not size requests of 2 MiB each.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > 64<<20 {
		t.Fatalf("heap %d MiB after the flood of long requests: the feed keeps their memory", ms.HeapAlloc>>20)
	}
}
