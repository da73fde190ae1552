package feed

import (
	"strings"
	"testing"
	"time"
)

func TestFeedKeepsTheNewestAndPagesBySince(t *testing.T) {
	f := New()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	// One event every 10 ms: within the feed's rate, so all are kept.
	for i := range size + 250 {
		if !f.Record(Event{Time: at.Add(time.Duration(i) * 10 * time.Millisecond), Path: "/"}) {
			t.Fatalf("event %d dropped at 100 a second", i+1)
		}
	}
	evs, next := f.Since(0, 10)
	if len(evs) != 10 || evs[0].ID != 251 || next != 260 {
		t.Fatalf("from the start: %d events from %d, next %d; want 10 from 251 (the oldest held), next 260", len(evs), evs[0].ID, next)
	}
	evs, next = f.Since(1200, MaxRead)
	if len(evs) != 50 || evs[0].ID != 1201 || next != 1250 {
		t.Fatalf("since 1200: %d events from %d, next %d", len(evs), evs[0].ID, next)
	}
	if evs, again := f.Since(next, 10); len(evs) != 0 || again != next {
		t.Fatalf("nothing new: %d events, next %d; want none and the same cursor", len(evs), again)
	}
	if evs, n := f.Since(1<<40, 10); len(evs) != 10 || evs[0].ID != 251 || n != 260 {
		t.Fatalf("a cursor from before a restart: %d events, next %d; want the oldest 10 held, from 251", len(evs), n)
	}
	long := "/" + strings.Repeat("x", 299)
	f.Record(Event{Time: at.Add(time.Hour), Path: long})
	if evs, _ := f.Since(1250, 1); len(evs) != 1 || evs[0].Path != long[:maxPath] {
		t.Fatalf("a 300-byte path: %d events; want it cut at %d bytes", len(evs), maxPath)
	}
}

func TestFeedRecordsAtMostItsRate(t *testing.T) {
	f := New()
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	kept := 0
	// A flood: 10 000 events in one second.
	for i := range 10_000 {
		if f.Record(Event{Time: at.Add(time.Duration(i) * 100 * time.Microsecond)}) {
			kept++
		}
	}
	if max := size/10 + rateLimit; kept > max || kept < rateLimit {
		t.Fatalf("kept %d of 10 000 events in a second; want between %d and %d", kept, rateLimit, max)
	}
}
