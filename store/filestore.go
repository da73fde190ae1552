package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
)

// FileStore keeps approvals and bans in one directory, for a single instance.
//
// The audit log (audit.jsonl, one JSON event a line) is also the write-ahead
// log: a change is committed once its event is appended and fsynced, and
// state.json is a checkpoint of the records after the last event it has
// applied. Opening the store replays the events the checkpoint lacks and cuts
// off a torn last line, so a crash at any point loses no acknowledged change
// and leaves none half-written.
type FileStore struct {
	dir string
	now func() time.Time

	mu          sync.Mutex
	lock        *os.File // held for the store's life: one process per directory
	audit       *os.File
	auditSize   int64
	st          fileState
	dirty       bool  // state.json lags the audit log
	banEvents   int64 // ban events in the audit log, for compaction
	banAuditMax int64 // FileBanAuditMax but in tests
	usage       map[string]*fileUsage
}

type fileState struct {
	Version   int                            `json:"version"`
	Seq       int64                          `json:"seq"` // last audit event applied
	Approvals map[string]*approvals.Approval `json:"approvals"`
	Bans      map[netip.Prefix]approvals.Ban `json:"bans"`
	// Chains are the audit chains' heads, by kind.
	Chains map[string]audit.ChainHead `json:"chains,omitempty"`
}

const (
	stateFile     = "state.json"
	auditFile     = "audit.jsonl"
	lockFile      = "lock"
	fileStateVers = 1
)

// testHook is called at each step of a write; tests use it to crash there.
var testHook = func(step string) {}

// OpenFileStore opens (creating if needed) the store in dir. now is the
// clock for audit times (time.Now when nil).
func OpenFileStore(dir string, now func() time.Time) (*FileStore, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	s := &FileStore{dir: dir, now: now, lock: lock, banAuditMax: FileBanAuditMax}
	err = s.load()
	if err == nil {
		err = s.loadUsage()
	}
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("file store %s: %w", dir, err)
	}
	return s, nil
}

// Kind implements Store.
func (s *FileStore) Kind() string { return "file" }

// CreateApproval implements Store.
func (s *FileStore) CreateApproval(_ context.Context, a *approvals.Approval, by approvals.Identity, capacity float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Approvals[a.ID]; ok {
		return fmt.Errorf("approval %s: %w", a.ID, approvals.ErrExists)
	}
	ev := created(a.Clone(), by)
	if capacity > 0 && ev.Action == audit.ActionApprovalCreated {
		if err := approvals.CheckCapacity(s.stored(), a, capacity, a.CreatedAt); err != nil {
			return err
		}
	}
	return s.commit(ev)
}

// MoveApproval implements Store.
func (s *FileStore) MoveApproval(_ context.Context, id string, m approvals.Move, capacity float64, at time.Time) (*approvals.Approval, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.st.Approvals[id]
	if !ok {
		return nil, "", fmt.Errorf("approval %s: %w", id, approvals.ErrNotFound)
	}
	a, ev, err := moved(cur, m, at)
	if err != nil {
		return nil, "", err
	}
	if capacity > 0 && ev.Action == approvals.ActionApproved {
		if err := approvals.CheckCapacity(s.stored(), a, capacity, at); err != nil {
			return nil, "", err
		}
	}
	if err := s.commit(ev); err != nil {
		return nil, "", err
	}
	return a.Clone(), ev.Action, nil
}

// stored lists the approvals stored, with their usage, for a capacity
// check. The caller holds s.mu.
func (s *FileStore) stored() []*approvals.Approval {
	out := make([]*approvals.Approval, 0, len(s.st.Approvals))
	for _, o := range s.st.Approvals {
		out = append(out, s.withUsage(o))
	}
	return out
}

// RevokeApproval implements Store.
func (s *FileStore) RevokeApproval(_ context.Context, id, reason string, by approvals.Identity, at time.Time) (*approvals.Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.st.Approvals[id]
	if !ok {
		return nil, fmt.Errorf("approval %s: %w", id, approvals.ErrNotFound)
	}
	if cur.RevokedAt != nil {
		return cur.Clone(), fmt.Errorf("approval %s: %w", id, approvals.ErrAlreadyRevoked)
	}
	a := revoked(cur, reason, by, at)
	ev := madeBy(audit.ActionApprovalRevoked, by)
	ev.Approval = a
	if err := s.commit(ev); err != nil {
		return nil, err
	}
	return a.Clone(), nil
}

// NoteGuard implements Store.
func (s *FileStore) NoteGuard(_ context.Context, action, note, actor, tenant string) error {
	if !audit.GuardAction(action) {
		return fmt.Errorf("note guard: %q is not an impact guard action", action)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(audit.Event{Action: action, Actor: actor, Note: note, Tenant: tenant})
}

func revoked(cur *approvals.Approval, reason string, by approvals.Identity, at time.Time) *approvals.Approval {
	a := cur.Clone()
	at = at.UTC()
	a.RevokedAt = &at
	a.RevokeReason = reason
	a.RevokedBy, a.Revoker = by.String(), &by
	a.Status = approvals.StatusRevoked
	return a
}

// Approval implements Store.
func (s *FileStore) Approval(_ context.Context, id string) (*approvals.Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.st.Approvals[id]
	if !ok {
		return nil, fmt.Errorf("approval %s: %w", id, approvals.ErrNotFound)
	}
	return s.withUsage(a), nil
}

// Approvals implements Store.
func (s *FileStore) Approvals(context.Context) ([]*approvals.Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*approvals.Approval, 0, len(s.st.Approvals))
	for _, a := range s.st.Approvals {
		out = append(out, s.withUsage(a))
	}
	return out, nil
}

// AddBan implements Store.
func (s *FileStore) AddBan(_ context.Context, b approvals.Ban, by approvals.Identity) error {
	ev := madeBy(audit.ActionBanAdded, by)
	ev.Ban = &b
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(ev)
}

// AddBans implements Store: one append and one fsync for them all.
func (s *FileStore) AddBans(_ context.Context, bans []approvals.Ban, actor string) error {
	if len(bans) == 0 {
		return nil
	}
	evs := make([]audit.Event, len(bans))
	for i := range bans {
		evs[i] = audit.Event{Action: audit.ActionBanAdded, Actor: actor, Ban: &bans[i]}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(evs...)
}

// RemoveBan implements Store.
func (s *FileStore) RemoveBan(_ context.Context, p netip.Prefix, by approvals.Identity, at time.Time) (approvals.Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.st.Bans[p]
	if !ok || !b.ActiveAt(at) {
		return approvals.Ban{}, fmt.Errorf("ban %s: %w", p, approvals.ErrNotFound)
	}
	ev := madeBy(audit.ActionBanRemoved, by)
	ev.Ban = &b
	return b, s.commit(ev)
}

// Bans implements Store.
func (s *FileStore) Bans(_ context.Context, now time.Time) ([]approvals.Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]approvals.Ban, 0, len(s.st.Bans))
	for _, b := range s.st.Bans {
		if b.ActiveAt(now) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b approvals.Ban) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Audit implements Store. It reads the log from the start (see
// eachCommitted), keeping the newest q.Limit events that q asks for.
func (s *FileStore) Audit(ctx context.Context, q audit.Query) ([]audit.Event, error) {
	if q.Limit <= 0 {
		return nil, s.Ping(ctx)
	}
	var ring []audit.Event
	err := s.eachCommitted(ctx, func(line []byte) error {
		var ev audit.Event
		if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil {
			return fmt.Errorf("%s: %w", auditFile, err)
		}
		if !q.Within(ev.Time) || !q.Wants(ev) {
			return nil
		}
		if len(ring) == q.Limit {
			ring = ring[1:]
		}
		ring = append(ring, ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Reverse(ring)
	return ring, nil
}

// AuditHead implements Store.
func (s *FileStore) AuditHead(_ context.Context, kind string) (audit.ChainHead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return audit.ChainHead{}, unavailable("file store", errors.New("closed"))
	}
	return s.st.Chains[kind], nil
}

// AuditChain implements Store.
func (s *FileStore) AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error {
	return s.eachCommitted(ctx, func(line []byte) error {
		if audit.KindOf(line) != kind {
			return nil
		}
		return fn(line)
	})
}

// eachCommitted calls fn with each line of the audit log, oldest first, up
// to what is committed; an error from fn stops it. It holds the store's
// lock only to learn how much that is: the log is append-only, so reading
// up to there needs no lock, and leases and writes are not held up
// meanwhile.
func (s *FileStore) eachCommitted(ctx context.Context, fn func(line []byte) error) error {
	s.mu.Lock()
	committed, closed := s.auditSize, s.audit == nil
	s.mu.Unlock()
	if closed {
		return unavailable("file store", errors.New("closed"))
	}
	f, err := os.Open(filepath.Join(s.dir, auditFile))
	if err != nil {
		return unavailable("file store", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, committed))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	return sc.Err()
}

// Changes implements Store: nobody else writes this directory.
func (s *FileStore) Changes() <-chan struct{} { return nil }

// Pending implements Store: nobody else writes this directory.
func (s *FileStore) Pending() Change { return Change{} }

// Ping implements Store.
func (s *FileStore) Ping(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return fmt.Errorf("file store %s: %w: closed", s.dir, approvals.ErrUnavailable)
	}
	return nil
}

// Close implements Store.
func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return nil
	}
	err := errors.Join(s.checkpoint(), s.audit.Close(), s.lock.Close())
	s.audit = nil
	return err
}
