// Package feed is the live feed of refused and flagged requests that the
// console shows (GET /gatekeeper/events): a bounded ring of the newest
// events, read by cursor.
package feed

import (
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/customernode/gatekeeper/detect"
)

// A feed is bounded three ways: it holds the newest size events, records at
// most rateLimit a second (a flood of scanners must not cost the edge more
// than that, nor churn the feed too fast to read; caddy_gatekeeper_
// feed_dropped_total counts the rest, and the audit's ban events and the
// metrics still have them all), and one read returns at most MaxRead.

// The feed's bounds.
const (
	size      = 1000
	rateLimit = 100 // events a second, with a burst of size/10
	MaxRead   = 500
)

// Event is one refused or flagged request.
type Event struct {
	// ID orders events: a read with since=ID returns those after it.
	ID       uint64    `json:"id"`
	Time     time.Time `json:"time"`
	Source   string    `json:"source"`
	Tenant   string    `json:"tenant,omitempty"`
	Verdict  string    `json:"verdict"`
	Reason   string    `json:"reason,omitempty"`
	Scanner  string    `json:"scanner,omitempty"` // the tool family, when one was recognised
	Signals  []string  `json:"signals,omitempty"`
	Country  string    `json:"country,omitempty"`
	ASN      uint      `json:"asn,omitempty"`
	Approval string    `json:"approval_id,omitempty"`
	Method   string    `json:"method"`
	Host     string    `json:"host"`
	// Path is the request's path, without its query, cut at maxPath.
	Path string `json:"path"`

	SignalSet detect.SignalSet `json:"-"` // as detection found them; Signals is filled from them when read
}

// Bounds on a feed event's text, which a client may make as long as a
// request line and headers allow (a megabyte): a banned client must not
// fill the ring with tens of megabytes, nor every console poll with them.
const (
	maxPath = 200
	maxText = 128 // method, host, tenant, and anything else a client may write
	// maxEventBytes bounds an event's whole text (its fields each cut,
	// the fixed ones short): the ring holds at most size times this.
	maxEventBytes = maxPath + 6*maxText
)

// bound cuts every text field of ev to its bound, on a character boundary,
// and copies it, so that the event keeps no part of the request's memory
// alive (a short tenant may be a slice of a long host).
func (ev *Event) bound() {
	ev.Path = cutText(ev.Path, maxPath)
	for _, f := range []*string{&ev.Source, &ev.Tenant, &ev.Method, &ev.Host, &ev.Country, &ev.Approval, &ev.Scanner} {
		*f = cutText(*f, maxText)
	}
}

// textBytes is the length of ev's text fields.
func (ev *Event) textBytes() int {
	return len(ev.Source) + len(ev.Tenant) + len(ev.Verdict) + len(ev.Reason) + len(ev.Scanner) +
		len(ev.Country) + len(ev.Approval) + len(ev.Method) + len(ev.Host) + len(ev.Path)
}

func cutText(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return strings.Clone(s)
}

// Feed is a ring of the newest events.
type Feed struct {
	mu      sync.Mutex
	ring    [size]Event
	next    uint64 // the ID the next event gets; IDs start at 1
	limiter *rate.Limiter
}

func New() *Feed {
	return &Feed{next: 1, limiter: rate.NewLimiter(rateLimit, size/10)}
}

// Record adds ev (its ID set here) unless the feed's rate is used up; it
// reports whether it did.
func (f *Feed) Record(ev Event) bool {
	if !f.limiter.AllowN(ev.Time, 1) {
		return false
	}
	ev.bound()
	f.mu.Lock()
	ev.ID = f.next
	f.ring[ev.ID%size] = ev
	f.next++
	f.mu.Unlock()
	return true
}

// Since returns up to limit events after ID after, oldest first, and the ID
// to ask after next time (the last returned, or after when none are).
// Events that have left the ring are gone: the first returned is then the
// oldest held. A cursor past the newest event (from before a restart of
// the process) starts again from the oldest held.
func (f *Feed) Since(after uint64, limit int) ([]Event, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	last := f.next - 1
	if after > last {
		after = 0 // a cursor from before a restart: start again from the oldest held
	}
	first := after + 1
	if oldest := f.next - min(f.next-1, size); first < oldest {
		first = oldest
	}
	out := make([]Event, 0, min(int(last-first+1), limit))
	for id := first; id <= last && len(out) < limit; id++ {
		ev := f.ring[id%size]
		ev.Signals = ev.SignalSet.Names()
		out = append(out, ev)
	}
	if len(out) > 0 {
		after = out[len(out)-1].ID
	}
	return out, after
}

// textBytes is the length of the text the ring holds.
func (f *Feed) textBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for i := range f.ring {
		n += f.ring[i].textBytes()
	}
	return n
}
