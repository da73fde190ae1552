// Package notify tells people outside Gatekeeper what happened to an
// approval: a webhook receives one JSON message, with a Slack-compatible
// text, when a test is requested, approved, denied, lapses, is revoked or
// spends its budget. Delivery runs apart from the request path.
package notify

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/customernode/gatekeeper/approvals"
)

// The kinds of event a webhook is told about.
const (
	KindRequested = "requested" // a request is waiting for its approvers
	KindApproved  = "approved"  // an approval came into force (by four eyes or registered directly)
	KindDenied    = "denied"    // an approver said no
	KindLapsed    = "lapsed"    // nobody decided within the pending TTL
	KindRevoked   = "revoked"   // security staff withdrew an approval
	KindExhausted = "exhausted" // max_requests were all admitted
)

// Kinds lists every kind, for docs and metric labels.
var Kinds = []string{KindRequested, KindApproved, KindDenied, KindLapsed, KindRevoked, KindExhausted}

// Event is one thing that happened to an approval.
type Event struct {
	// Kind is one of the Kind constants.
	Kind string
	// Approval is the approval as the admin API shows it; its token hash is
	// never sent, whether or not the caller left it out.
	Approval *approvals.Approval
	// By is who did it, as authenticated; nil for Gatekeeper's own doing
	// (a lapse, an exhausted budget).
	By *approvals.Identity
	// At is when it happened (Notify's clock when zero).
	At time.Time
	// Note is the reason given: a denial's or a revocation's.
	Note string
}

// message is the JSON body a webhook receives. Its approval and identity
// are lists of the fields a receiver may see, so that nothing secret can
// slip in when approvals.Approval grows.
type message struct {
	Event    string           `json:"event"`
	Approval *approvalSummary `json:"approval,omitempty"`
	By       *identity        `json:"by,omitempty"`
	At       time.Time        `json:"at"`
	Note     string           `json:"note,omitempty"`
	Text     string           `json:"text"`
}

type approvalSummary struct {
	ID          string    `json:"id"`
	Tenant      string    `json:"tenant"`
	Status      string    `json:"status"`
	Sources     []string  `json:"sources"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	MaxRPS      float64   `json:"max_rps"`
	MaxRequests int64     `json:"max_requests"`
	RequestedBy string    `json:"requested_by"`
	ApprovedBy  string    `json:"approved_by"`
	ApprovalRef string    `json:"approval_ref"`
}

type identity struct {
	ID     string `json:"id"`
	Via    string `json:"via"`
	Issuer string `json:"issuer,omitempty"`
}

// snapshot copies what ev refers to, so that the caller may change its
// approval once Notify returns, and drops the token hash at once.
func snapshot(ev Event) Event {
	if ev.Approval != nil {
		ev.Approval = ev.Approval.Clone()
		ev.Approval.TokenHash = ""
	}
	if ev.By != nil {
		by := *ev.By
		ev.By = &by
	}
	return ev
}

// Body is ev as a webhook receives it: JSON with a Slack-compatible text.
func Body(ev Event) ([]byte, error) {
	m := message{Event: ev.Kind, At: ev.At.UTC(), Note: ev.Note, Text: Text(ev)}
	if a := ev.Approval; a != nil {
		status := a.Status
		if status == "" {
			status = a.StatusAt(ev.At)
		}
		m.Approval = &approvalSummary{
			ID: a.ID, Tenant: a.Tenant, Status: string(status), Sources: sources(a.Sources),
			NotBefore: a.NotBefore.UTC(), NotAfter: a.NotAfter.UTC(), MaxRPS: a.MaxRPS, MaxRequests: a.MaxRequests,
			RequestedBy: a.RequestedBy, ApprovedBy: a.ApprovedBy, ApprovalRef: a.ApprovalRef,
		}
	}
	if ev.By != nil {
		m.By = &identity{ID: ev.By.ID, Via: ev.By.Via, Issuer: ev.By.Issuer}
	}
	return json.Marshal(m)
}

func sources(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// maxNoteRunes bounds the reason quoted in the text; the JSON's note has
// all of it.
const maxNoteRunes = 300

// Text is ev in one Slack mrkdwn line, e.g. "Security test request
// apr_1a2b for tenant *acme* by alice (oidc): 20/s from 203.0.113.0/28,
// 2026-12-01 09:00–17:00 UTC. Waiting for 1 approval." Every value from
// people (tenant, names, notes) is escaped as Slack asks, so none can
// make a link or a mention, and flattened to one line.
func Text(ev Event) string {
	a := ev.Approval
	if a == nil {
		a = &approvals.Approval{}
	}
	var b strings.Builder
	subject := "Security test " + esc(a.ID) + " for tenant *" + esc(a.Tenant) + "*"
	if ev.Kind == KindRequested || ev.Kind == KindDenied || ev.Kind == KindLapsed {
		subject = "Security test request " + esc(a.ID) + " for tenant *" + esc(a.Tenant) + "*"
	}
	b.WriteString(subject)
	switch ev.Kind {
	case KindRequested:
		b.WriteString(by("", ev.By) + ": " + scope(a) + ".")
		if waiting := max(a.Approvers, 1) - a.Approvals(); waiting > 0 {
			b.WriteString(" Waiting for " + plural(int64(waiting), "approval") + ".")
		}
	case KindApproved:
		b.WriteString(by(" approved", ev.By) + ": " + scope(a) + ".")
		if a.ApprovalRef != "" {
			b.WriteString(" Ref " + esc(a.ApprovalRef) + ".")
		}
	case KindDenied:
		b.WriteString(by(" denied", ev.By) + reason(ev.Note) + ".")
	case KindLapsed:
		b.WriteString(" lapsed: nobody decided")
		if a.PendingUntil != nil {
			b.WriteString(" by " + a.PendingUntil.UTC().Format("2006-01-02 15:04") + " UTC")
		}
		b.WriteString(".")
	case KindRevoked:
		b.WriteString(by(" revoked", ev.By) + reason(ev.Note) + ".")
	case KindExhausted:
		b.WriteString(" used its budget: all " + plural(a.MaxRequests, "request") + " were admitted.")
	default:
		b.WriteString(": " + esc(ev.Kind) + reason(ev.Note) + ".")
	}
	return b.String()
}

// by is verb followed by who did it, if anyone did.
func by(verb string, id *approvals.Identity) string {
	if id == nil || id.ID == "" {
		return verb
	}
	return verb + " by " + esc(id.ID) + " (" + esc(id.Via) + ")"
}

// reason is ": note", shortened, or "" without one.
func reason(note string) string {
	note = strings.TrimSpace(esc(note))
	if note == "" {
		return ""
	}
	if r := []rune(note); len(r) > maxNoteRunes {
		note = string(r[:maxNoteRunes]) + "…"
	}
	return ": " + note
}

// scope is the rate, sources, window and budget: "20/s from
// 203.0.113.0/28, 2026-12-01 09:00–17:00 UTC, at most 5000 requests".
func scope(a *approvals.Approval) string {
	var b strings.Builder
	if a.MaxRPS > 0 {
		b.WriteString(strconv.FormatFloat(a.MaxRPS, 'f', -1, 64) + "/s ")
	}
	if len(a.Sources) > 0 {
		b.WriteString("from " + a.Sources[0].String())
		if n := len(a.Sources) - 1; n > 0 {
			b.WriteString(" and " + strconv.Itoa(n) + " more")
		}
	}
	parts := []string{strings.TrimSpace(b.String())}
	if !a.NotBefore.IsZero() || !a.NotAfter.IsZero() {
		parts = append(parts, window(a.NotBefore.UTC(), a.NotAfter.UTC()))
	}
	if a.MaxRequests > 0 {
		parts = append(parts, "at most "+plural(a.MaxRequests, "request"))
	}
	return strings.Join(slices.DeleteFunc(parts, func(s string) bool { return s == "" }), ", ")
}

// window is "2026-12-01 09:00–17:00 UTC" within a day, else both dates.
func window(from, to time.Time) string {
	const day, clock = "2006-01-02 ", "15:04"
	if from.Format(day) == to.Format(day) {
		return from.Format(day+clock) + "–" + to.Format(clock) + " UTC"
	}
	return from.Format(day+clock) + " – " + to.Format(day+clock) + " UTC"
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatInt(n, 10) + " " + noun + "s"
}

// esc escapes s as Slack asks of text (&, <, >: then "<!channel>" and
// "<http://evil|x>" show as written instead of mentioning or linking) and
// turns line breaks, other controls and format characters (bidi overrides,
// which could make a line read as another) into spaces.
func esc(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
