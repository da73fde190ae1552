package audit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// The audit trail is two hash chains, one for each kind of event: approval
// events, kept whole, and ban events, whose oldest are dropped when their
// store caps them (so a ban chain may begin after seq 1). Every event of a
// chain carries its position (seq, from 1), the hash of the event before it
// (prev; 64 zeros for the first) and its own hash:
//
//	digest = SHA-256(content)
//	hash   = SHA-256(prev as 32 bytes ‖ seq as 8 bytes, big-endian ‖ digest)
//
// where content is the event's canonical JSON without its chain members:
// {"time":…,"action":…,"actor":…,"by":…,"note":…,"tenant":…,"approval"|"ban":…}
// exactly as Gatekeeper encodes it (Go's encoding/json: fields in that
// order, the empty ones left out, no spaces). A stored
// event is that same object with "id", "seq", "prev" and "hash" put first,
//
//	{"id":"…","seq":7,"prev":"…","hash":"…","time":…}
//
// so the content is hashed as stored, byte for byte, with no decoding: any
// change to an event changes its digest, and any change to the order or
// number of events breaks a seq or a prev. The hash is computed with the
// write, atomically (the file store's write-ahead log, a Redis
// transaction), and each store records its chains' heads beside them, which
// lets verification notice events cut off the end.

// ChainHead is one chain's newest link.
type ChainHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// linkHash is the hash of the event at seq whose content has digest, after the
// event whose hash is prev.
func linkHash(prev [sha256.Size]byte, seq int64, digest [sha256.Size]byte) [sha256.Size]byte {
	var b [2*sha256.Size + 8]byte
	copy(b[:], prev[:])
	binary.BigEndian.PutUint64(b[sha256.Size:], uint64(seq))
	copy(b[sha256.Size+8:], digest[:])
	return sha256.Sum256(b[:])
}

// auditContent is the part of an event its digest covers, in the order the
// stored event has it.
type auditContent struct {
	Time     time.Time           `json:"time"`
	Action   string              `json:"action"`
	Actor    string              `json:"actor,omitempty"`
	By       *approvals.Identity `json:"by,omitempty"`
	Note     string              `json:"note,omitempty"`
	Tenant   string              `json:"tenant,omitempty"`
	Approval *approvals.Approval `json:"approval,omitempty"`
	Ban      *approvals.Ban      `json:"ban,omitempty"`
}

// Content encodes e's content canonically.
func (e Event) Content() ([]byte, error) {
	return json.Marshal(auditContent{Time: e.Time, Action: e.Action, Actor: e.Actor, By: e.By, Note: e.Note, Tenant: e.Tenant,
		Approval: e.Approval, Ban: e.Ban})
}

// Link links the event with the canonical content after head and
// returns its stored form and the new head. id is the store's own ID for
// the event ("" where the store assigns it on append).
func Link(head ChainHead, id string, content []byte) (line []byte, next ChainHead, err error) {
	var prev [sha256.Size]byte
	if head.Seq > 0 {
		var ok bool
		if prev, ok = DecodeHash([]byte(head.Hash)); !ok {
			return nil, head, fmt.Errorf("audit chain head %d: hash %q is not SHA-256 hex", head.Seq, head.Hash)
		}
	}
	if len(content) < 2 || content[0] != '{' {
		return nil, head, errors.New("audit event content is not a JSON object")
	}
	seq := head.Seq + 1
	h := linkHash(prev, seq, sha256.Sum256(content))
	next = ChainHead{Seq: seq, Hash: hex.EncodeToString(h[:])}
	line = make([]byte, 0, len(content)+200)
	line = append(line, `{"id":`...)
	line = strconv.AppendQuote(line, id)
	line = append(line, `,"seq":`...)
	line = strconv.AppendInt(line, seq, 10)
	line = append(line, `,"prev":"`...)
	line = hex.AppendEncode(line, prev[:])
	line = append(line, `","hash":"`...)
	line = append(line, next.Hash...)
	line = append(line, `",`...)
	line = append(line, content[1:]...)
	return line, next, nil
}

// storedEvent is a stored event's chain members, read without decoding the
// rest of it.
type storedEvent struct {
	chained bool // false for events from before the chains began
	seq     int64
	prev    [sha256.Size]byte
	hash    [sha256.Size]byte
	digest  [sha256.Size]byte
	kind    string
	// raw is the stored event when it may record an author or an
	// approval by four eyes, which unauthorized checks; nil otherwise.
	raw []byte
}

var (
	errNotCanonical = errors.New("is not in the canonical form Gatekeeper writes")
	keyID           = []byte(`{"id":"`)
	keySeq          = []byte(`,"seq":`)
	keyPrev         = []byte(`,"prev":"`)
	keyHash         = []byte(`","hash":"`)
	keyAction       = []byte(`"action":"`)
)

// parseStored reads the chain members of a stored event, as Gatekeeper
// wrote it, and hashes its content.
func parseStored(raw []byte) (storedEvent, error) {
	var ev storedEvent
	rest, ok := bytes.CutPrefix(raw, keyID)
	if !ok {
		return ev, errNotCanonical
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return ev, errNotCanonical
	}
	rest = rest[end+1:]
	if !bytes.HasPrefix(rest, keySeq) {
		// From before the chains: {"id":…,"time":…}.
		body, ok := bytes.CutPrefix(rest, []byte(`,"time":`))
		if !ok {
			return ev, errNotCanonical
		}
		ev.kind = KindOf(body)
		return ev, nil
	}
	rest = rest[len(keySeq):]
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseInt(string(rest[:n]), 10, 64)
	if err != nil || seq < 1 || (n > 1 && rest[0] == '0') {
		return ev, errNotCanonical
	}
	if rest, ok = cutHash(rest[n:], keyPrev, &ev.prev); !ok {
		return ev, errNotCanonical
	}
	if rest, ok = cutHash(rest, keyHash, &ev.hash); !ok {
		return ev, errNotCanonical
	}
	// rest is `",` and the content's members; the content is `{` and
	// those members.
	members, ok := bytes.CutPrefix(rest, []byte(`",`))
	if !ok || !bytes.HasPrefix(members, []byte(`"time":`)) || members[len(members)-1] != '}' {
		return ev, errNotCanonical
	}
	h := sha256.New()
	h.Write([]byte{'{'})
	h.Write(members)
	h.Sum(ev.digest[:0])
	ev.chained, ev.seq, ev.kind = true, seq, KindOf(members)
	if bytes.Contains(members, keyBy) || bytes.Contains(members, keyApproved) {
		ev.raw = raw
	}
	return ev, nil
}

var (
	keyBy       = []byte(`"by":`)
	keyApproved = []byte(`"action":"` + approvals.ActionApproved + `"`)
)

// unauthorized says what is wrong with who made the stored event raw, or
// with the approval it records as approved by four eyes; "" when nothing
// is. Its links aside, an event whose author could not have been
// recorded, or that approves a request without its approvers, cannot be
// the store's own.
func unauthorized(raw []byte) string {
	var e Event
	if err := json.Unmarshal(raw, &e); err != nil {
		return fmt.Sprintf("cannot be read (%v)", err)
	}
	if e.By != nil {
		if err := e.By.Check(); err != nil {
			return fmt.Sprintf("names an author that cannot be recorded: %v", err)
		}
	}
	if e.Action != approvals.ActionApproved {
		return ""
	}
	a := e.Approval
	if a == nil {
		return "approves a request but holds none"
	}
	if need := max(a.Approvers, 1); a.Approvals() < need {
		return fmt.Sprintf("approves request %s with %d distinct approvals of its content, fewer than the %d it needs", a.ID, a.Approvals(), need)
	}
	for _, r := range a.Reviews {
		if a.Requester != nil && a.Requester.Same(r.By) {
			return fmt.Sprintf("approves request %s with a review by its own requester (%s)", a.ID, r.By)
		}
	}
	return ""
}

// cutHash reads into h the hash that follows key at the start of b, and
// returns what follows the hash.
func cutHash(b, key []byte, h *[sha256.Size]byte) ([]byte, bool) {
	b, ok := bytes.CutPrefix(b, key)
	if !ok || len(b) < 2*sha256.Size {
		return b, false
	}
	*h, ok = DecodeHash(b[:2*sha256.Size])
	return b[2*sha256.Size:], ok
}

// DecodeHash decodes a SHA-256 hash written, as the chains write it, in 64
// lower-case hex digits.
func DecodeHash(s []byte) (h [sha256.Size]byte, ok bool) {
	if len(s) != 2*sha256.Size {
		return h, false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return h, false
		}
	}
	hex.Decode(h[:], s)
	return h, true
}

// KindOf finds the kind of the event whose members after "time" are b.
func KindOf(b []byte) string {
	i := bytes.Index(b, keyAction)
	if i < 0 {
		return ""
	}
	b = b[i+len(keyAction):]
	if j := bytes.IndexAny(b, `."`); j >= 0 {
		return string(b[:j])
	}
	return ""
}

// ChainReport is what verifying one chain found.
type ChainReport struct {
	Kind string `json:"kind"`
	OK   bool   `json:"ok"`
	// Events counts the chained events checked; Unchained those from
	// before the chains began, at the start of the trail.
	Events    int64 `json:"events"`
	Unchained int64 `json:"unchained,omitempty"`
	// First is the first event's seq: 1 unless the oldest ban events were
	// dropped. Last is the last good link.
	First int64     `json:"first_seq,omitempty"`
	Last  ChainHead `json:"last"`
	// BrokenAt is the seq of the first event that is wrong, missing or out
	// of place, and Problem says what is wrong with it.
	BrokenAt int64  `json:"broken_at,omitempty"`
	Problem  string `json:"problem,omitempty"`
}

// ChainVerifier checks one chain event by event, oldest first.
type ChainVerifier struct {
	head      ChainHead // as the store recorded it; Seq 0 when unknown
	trimmable bool
	prev      [sha256.Size]byte
	headSeen  bool
	r         ChainReport
}

// NewChainVerifier checks the chain of kind ("approval" or "ban") against
// the head its store recorded (the zero head when there is none to check).
func NewChainVerifier(kind string, head ChainHead) *ChainVerifier {
	return newChainVerifier(kind, head, kind == "ban")
}

// newChainVerifier checks a chain that may begin after seq 1 when trimmable
// (the ban chain, an export's stretch of the approval chain).
func newChainVerifier(kind string, head ChainHead, trimmable bool) *ChainVerifier {
	return &ChainVerifier{head: head, trimmable: trimmable, r: ChainReport{Kind: kind, OK: true}}
}

// Add checks the next stored event, as the store holds it. It reports false
// once the chain is broken; the rest need not be read.
func (v *ChainVerifier) Add(raw []byte) bool {
	if !v.r.OK {
		return false
	}
	want := v.r.Last.Seq + 1
	ev, err := parseStored(raw)
	switch {
	case err != nil:
		return v.fail(want, "the event after seq %d %v", v.r.Last.Seq, err)
	case !ev.chained && ev.kind != v.r.Kind:
		return true // a Redis stream held both kinds before the chains
	case !ev.chained && v.r.Events == 0:
		v.r.Unchained++
		return true
	case !ev.chained:
		return v.fail(want, "event %d has no chain link", want)
	case ev.kind != v.r.Kind:
		return v.fail(max(ev.seq, 1), "event %d is a %s event in the %s chain", ev.seq, ev.kind, v.r.Kind)
	}
	return v.next(ev)
}

// addDigest checks the next event given as its seq and content digest only
// (an export's link to another approval's event): it follows the last.
func (v *ChainVerifier) addDigest(seq int64, digest [sha256.Size]byte) bool {
	if !v.r.OK {
		return false
	}
	if v.r.Events == 0 {
		return v.fail(max(seq, 1), "the chain begins with event %d's digest, not the event", seq)
	}
	return v.next(storedEvent{chained: true, seq: seq, prev: v.prev, digest: digest, hash: linkHash(v.prev, seq, digest)})
}

// next checks that chained event ev follows the last.
func (v *ChainVerifier) next(ev storedEvent) bool {
	want := v.r.Last.Seq + 1
	if v.r.Events == 0 {
		if ev.seq != 1 && !v.trimmable {
			return v.fail(1, "the chain begins at seq %d: the events before it are missing", ev.seq)
		}
		if ev.seq == 1 && ev.prev != [sha256.Size]byte{} {
			return v.fail(1, "event 1 does not begin the chain (its prev is not zero)")
		}
		v.prev, v.r.First, want = ev.prev, ev.seq, ev.seq
	}
	switch {
	case ev.seq > want:
		return v.fail(want, "event %d is missing (event %d follows event %d)", want, ev.seq, want-1)
	case ev.seq < want:
		return v.fail(ev.seq, "event %d appears again after event %d", ev.seq, want-1)
	case ev.prev != v.prev:
		return v.fail(ev.seq, "event %d does not follow event %d (prev is not its hash)", ev.seq, ev.seq-1)
	case linkHash(ev.prev, ev.seq, ev.digest) != ev.hash:
		return v.fail(ev.seq, "event %d was altered (its content does not match its hash)", ev.seq)
	case ev.raw != nil:
		if problem := unauthorized(ev.raw); problem != "" {
			return v.fail(ev.seq, "event %d %s", ev.seq, problem)
		}
	}
	v.prev = ev.hash
	v.r.Events++
	v.r.Last = ChainHead{Seq: ev.seq, Hash: hex.EncodeToString(ev.hash[:])}
	if ev.seq == v.head.Seq {
		v.headSeen = true
		if v.r.Last.Hash != v.head.Hash {
			return v.fail(ev.seq, "event %d is not the one the store recorded as its chain's head", ev.seq)
		}
	}
	return true
}

func (v *ChainVerifier) fail(seq int64, format string, args ...any) bool {
	v.r.OK, v.r.BrokenAt, v.r.Problem = false, seq, fmt.Sprintf(format, args...)
	return false
}

// Report finishes the check: the chain must reach the head its store
// recorded.
func (v *ChainVerifier) Report() ChainReport {
	if v.r.OK && v.head.Seq > 0 && !v.headSeen {
		if v.head.Seq > v.r.Last.Seq {
			v.fail(v.r.Last.Seq+1, "events %d to %d are missing: the chain ends at %d", v.r.Last.Seq+1, v.head.Seq, v.r.Last.Seq)
		} else {
			// The head is older than the first event kept: trimmed, fine.
			v.headSeen = true
		}
	}
	return v.r
}

// Verify checks both of store's audit chains whole, each against the
// head the store recorded for it. A store that cannot be read is an error;
// a broken chain is a report that is not OK.
func Verify(ctx context.Context, store Trail) ([]ChainReport, error) {
	return VerifySince(ctx, store, nil)
}

// VerifySince is Verify that also holds each chain to heads seen
// before (known, by kind): a store that lost its trail (Redis restarted
// without persistence, a file store restored from an old copy) holds a
// perfectly linked chain that is shorter than, or different from, what was
// already seen, and only such an outside anchor shows it. The report then
// fails at the known seq.
func VerifySince(ctx context.Context, store Trail, known map[string][]ChainHead) ([]ChainReport, error) {
	out := make([]ChainReport, 0, len(Kinds))
	for _, kind := range Kinds {
		head, err := store.AuditHead(ctx, kind)
		if err != nil {
			return nil, err
		}
		v := NewChainVerifier(kind, head)
		atKnown := map[int64]string{} // the hashes the chain holds at the known seqs
		for _, k := range known[kind] {
			atKnown[k.Seq] = ""
		}
		err = store.AuditChain(ctx, kind, func(raw []byte) error {
			if !v.Add(raw) {
				return errStop
			}
			if _, ok := atKnown[v.r.Last.Seq]; ok {
				atKnown[v.r.Last.Seq] = v.r.Last.Hash
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return nil, err
		}
		out = append(out, v.Report())
		for _, k := range known[kind] {
			r := &out[len(out)-1]
			switch {
			case !r.OK || k.Seq <= 0:
			case r.Last.Seq < k.Seq:
				r.OK, r.BrokenAt = false, k.Seq
				r.Problem = fmt.Sprintf("the chain ends at seq %d, but seq %d (hash %.12s…) was seen before: the trail went backwards "+
					"(the store lost or replaced events)", r.Last.Seq, k.Seq, k.Hash)
			case atKnown[k.Seq] != "" && atKnown[k.Seq] != k.Hash:
				r.OK, r.BrokenAt = false, k.Seq
				r.Problem = fmt.Sprintf("seq %d holds hash %.12s…, but hash %.12s… was seen there before: the trail was replaced",
					k.Seq, atKnown[k.Seq], k.Hash)
			}
		}
	}
	return out, nil
}

var errStop = errors.New("stop")

// KnownHead is a chain's head as seen at some time (by an instance, or in
// an export), which the chain must still reach.
type KnownHead struct {
	Kind string `json:"kind"`
	ChainHead
}

// VerifyLog checks the chains of an audit log read from r, one stored
// event a line as the file store's audit.jsonl holds them, against heads
// (by kind; a chain without one is checked as far as the log goes, and
// cannot show that events were cut off its end).
func VerifyLog(r io.Reader, heads map[string]ChainHead) ([]ChainReport, error) {
	vs := make(map[string]*ChainVerifier, len(Kinds))
	for _, kind := range Kinds {
		vs[kind] = NewChainVerifier(kind, heads[kind])
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 16<<20)
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		v, ok := vs[KindOf(raw)]
		if !ok {
			return nil, fmt.Errorf("line %d is not an approval or ban audit event", line)
		}
		v.Add(raw)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]ChainReport, 0, len(vs))
	for _, kind := range Kinds {
		out = append(out, vs[kind].Report())
	}
	return out, nil
}
