package approvals

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
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
	Version   int                  `json:"version"`
	Seq       int64                `json:"seq"` // last audit event applied
	Approvals map[string]*Approval `json:"approvals"`
	Bans      map[netip.Prefix]Ban `json:"bans"`
	// Chains are the audit chains' heads, by kind.
	Chains map[string]ChainHead `json:"chains,omitempty"`
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

func (s *FileStore) load() error {
	s.st = fileState{Version: fileStateVers, Approvals: map[string]*Approval{}, Bans: map[netip.Prefix]Ban{}}
	b, err := os.ReadFile(filepath.Join(s.dir, stateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		if err := json.Unmarshal(b, &s.st); err != nil {
			return fmt.Errorf("%s: %w", stateFile, err)
		}
		if s.st.Version != fileStateVers {
			return fmt.Errorf("%s: version %d is not supported (want %d)", stateFile, s.st.Version, fileStateVers)
		}
		if s.st.Approvals == nil {
			s.st.Approvals = map[string]*Approval{}
		}
		if s.st.Bans == nil {
			s.st.Bans = map[netip.Prefix]Ban{}
		}
	}
	if s.st.Chains == nil {
		s.st.Chains = map[string]ChainHead{}
	}

	path := filepath.Join(s.dir, auditFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	good, replayed, err := s.replay(f)
	if err == nil {
		// Drop a torn last line: its change was never acknowledged.
		if err = f.Truncate(good); err == nil {
			_, err = f.Seek(good, io.SeekStart)
		}
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		f.Close()
		return err
	}
	s.audit, s.auditSize = f, good
	if replayed {
		s.dirty = true
		return s.checkpoint()
	}
	return nil
}

// replay applies the audit events newer than the checkpoint. It returns the
// offset just past the last whole event.
func (s *FileStore) replay(f *os.File) (good int64, replayed bool, err error) {
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, replayed, nil // a partial line (or none) is left
		}
		if err != nil {
			return good, replayed, err
		}
		var ev AuditEvent
		if err := json.Unmarshal(b, &ev); err != nil {
			if _, peekErr := r.Peek(1); errors.Is(peekErr, io.EOF) {
				return good, replayed, nil // torn last line
			}
			return good, replayed, fmt.Errorf("%s line %d: %w", auditFile, line, err)
		}
		seq, err := strconv.ParseInt(ev.ID, 10, 64)
		if err != nil {
			return good, replayed, fmt.Errorf("%s line %d: event id %q is not a sequence number", auditFile, line, ev.ID)
		}
		if seq > s.st.Seq {
			s.st.apply(ev, seq)
			replayed = true
		}
		if ev.Kind() == "ban" {
			s.banEvents++
		}
		good += int64(len(b))
	}
}

func (st *fileState) apply(ev AuditEvent, seq int64) {
	switch ev.Action {
	case ActionApprovalCreated, ActionApprovalRevoked:
		st.Approvals[ev.Approval.ID] = ev.Approval
	case ActionBanAdded:
		st.Bans[ev.Ban.Prefix] = *ev.Ban
	case ActionBanRemoved:
		delete(st.Bans, ev.Ban.Prefix)
	}
	if ev.Hash != "" {
		st.Chains[ev.Kind()] = ChainHead{Seq: ev.Seq, Hash: ev.Hash}
	}
	st.Seq = seq
}

// commit appends evs to the audit log in one write, fsyncs it, applies them
// and checkpoints. The caller holds s.mu. Once the append is durable the
// change is committed: a failed checkpoint is retried by the next write or
// replayed on open.
func (s *FileStore) commit(evs ...AuditEvent) error {
	if s.audit == nil {
		return unavailable("file store", errors.New("closed"))
	}
	at := s.now().UTC()
	var buf []byte
	heads := maps.Clone(s.st.Chains)
	for i := range evs {
		evs[i].ID = strconv.FormatInt(s.st.Seq+int64(i)+1, 10)
		evs[i].Time = at
		content, err := evs[i].content()
		if err != nil {
			return err
		}
		kind := evs[i].Kind()
		line, head, err := chainEvent(heads[kind], evs[i].ID, content)
		if err != nil {
			return err
		}
		evs[i].Seq, evs[i].Hash = head.Seq, head.Hash // what apply records as the chain's head
		heads[kind] = head
		buf = append(append(buf, line...), '\n')
	}
	if _, err := s.audit.Write(buf); err != nil {
		return s.undoAppend(err)
	}
	testHook("audit-written")
	if err := s.audit.Sync(); err != nil {
		return s.undoAppend(err)
	}
	testHook("audit-synced")
	s.auditSize += int64(len(buf))
	for _, ev := range evs {
		s.st.apply(ev, s.st.Seq+1)
		if ev.Kind() == "ban" {
			s.banEvents++
		}
	}
	s.dirty = true
	if s.checkpoint() == nil && s.banEvents > s.banAuditMax {
		_ = s.compact() // the log is whole either way; tried again next write
	}
	return nil
}

// FileBanAuditMax is how many ban events the file store's audit log holds
// before it is compacted down to the newest half of them. Approval events
// are never dropped.
const FileBanAuditMax = 100_000

// compact rewrites the audit log without its oldest ban events. It runs
// right after a checkpoint, which holds every event's effect, so the log is
// no longer needed to replay them; the new log replaces the old one
// atomically, and a crash leaves one or the other. The caller holds s.mu.
func (s *FileStore) compact() error {
	path := filepath.Join(s.dir, auditFile)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	drop := s.banEvents - s.banAuditMax/2
	var out bytes.Buffer
	sc := bufio.NewScanner(io.LimitReader(f, s.auditSize))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev struct{ Action string }
		if err := json.Unmarshal(line, &ev); err != nil {
			return err
		}
		if drop > 0 && strings.HasPrefix(ev.Action, "ban.") {
			drop--
			continue
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if err := writeAtomic(s.dir, auditFile, out.Bytes(), "compact"); err != nil {
		return err
	}
	nf, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if _, err := nf.Seek(0, io.SeekEnd); err != nil {
		nf.Close()
		return err
	}
	s.audit.Close()
	s.audit, s.auditSize, s.banEvents = nf, int64(out.Len()), s.banAuditMax/2
	return nil
}

func (s *FileStore) undoAppend(cause error) error {
	if err := s.audit.Truncate(s.auditSize); err != nil {
		return unavailable("file store", fmt.Errorf("%w (and undoing the partial audit line: %v)", cause, err))
	}
	if _, err := s.audit.Seek(s.auditSize, io.SeekStart); err != nil {
		return unavailable("file store", fmt.Errorf("%w (and seeking the audit log: %v)", cause, err))
	}
	return unavailable("file store", cause)
}

// checkpoint writes state.json atomically: temp file, fsync, rename, fsync dir.
func (s *FileStore) checkpoint() error {
	if !s.dirty {
		return nil
	}
	now := s.now()
	for p, b := range s.st.Bans {
		if !b.ActiveAt(now) {
			delete(s.st.Bans, p)
		}
	}
	b, err := json.Marshal(&s.st)
	if err != nil {
		return err
	}
	if err := writeAtomic(s.dir, stateFile, b, "state"); err != nil {
		return err
	}
	s.dirty = false
	return nil
}

// writeAtomic replaces dir/name with b: temp file, fsync, rename, fsync of
// the directory. Readers see the old or the new file, never a mix.
func writeAtomic(dir, name string, b []byte, hook string) error {
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	testHook(hook + "-written")
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	testHook(hook + "-renamed")
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Kind implements Store.
func (s *FileStore) Kind() string { return "file" }

// CreateApproval implements Store.
func (s *FileStore) CreateApproval(_ context.Context, a *Approval, actor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Approvals[a.ID]; ok {
		return fmt.Errorf("approval %s: %w", a.ID, ErrExists)
	}
	return s.commit(AuditEvent{Action: ActionApprovalCreated, Actor: actor, Approval: a.Clone()})
}

// RevokeApproval implements Store.
func (s *FileStore) RevokeApproval(_ context.Context, id, reason, actor string, at time.Time) (*Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, ok := s.st.Approvals[id]
	if !ok {
		return nil, fmt.Errorf("approval %s: %w", id, ErrNotFound)
	}
	if cur.RevokedAt != nil {
		return cur.Clone(), fmt.Errorf("approval %s: %w", id, ErrAlreadyRevoked)
	}
	a := revoked(cur, reason, at)
	if err := s.commit(AuditEvent{Action: ActionApprovalRevoked, Actor: actor, Approval: a}); err != nil {
		return nil, err
	}
	return a.Clone(), nil
}

func revoked(cur *Approval, reason string, at time.Time) *Approval {
	a := cur.Clone()
	at = at.UTC()
	a.RevokedAt = &at
	a.RevokeReason = reason
	a.Status = StatusRevoked
	return a
}

// Approval implements Store.
func (s *FileStore) Approval(_ context.Context, id string) (*Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.st.Approvals[id]
	if !ok {
		return nil, fmt.Errorf("approval %s: %w", id, ErrNotFound)
	}
	return s.withUsage(a), nil
}

// Approvals implements Store.
func (s *FileStore) Approvals(context.Context) ([]*Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Approval, 0, len(s.st.Approvals))
	for _, a := range s.st.Approvals {
		out = append(out, s.withUsage(a))
	}
	return out, nil
}

// AddBan implements Store.
func (s *FileStore) AddBan(ctx context.Context, b Ban, actor string) error {
	return s.AddBans(ctx, []Ban{b}, actor)
}

// AddBans implements Store: one append and one fsync for them all.
func (s *FileStore) AddBans(_ context.Context, bans []Ban, actor string) error {
	if len(bans) == 0 {
		return nil
	}
	evs := make([]AuditEvent, len(bans))
	for i := range bans {
		evs[i] = AuditEvent{Action: ActionBanAdded, Actor: actor, Ban: &bans[i]}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(evs...)
}

// RemoveBan implements Store.
func (s *FileStore) RemoveBan(_ context.Context, p netip.Prefix, actor string, at time.Time) (Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.st.Bans[p]
	if !ok || !b.ActiveAt(at) {
		return Ban{}, fmt.Errorf("ban %s: %w", p, ErrNotFound)
	}
	return b, s.commit(AuditEvent{Action: ActionBanRemoved, Actor: actor, Ban: &b})
}

// Bans implements Store.
func (s *FileStore) Bans(_ context.Context, now time.Time) ([]Ban, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Ban, 0, len(s.st.Bans))
	for _, b := range s.st.Bans {
		if b.ActiveAt(now) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Audit implements Store. It reads the log from the start (see
// eachCommitted), keeping the newest limit events at or after since.
func (s *FileStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	if q.Limit <= 0 {
		return nil, s.Ping(ctx)
	}
	var ring []AuditEvent
	err := s.eachCommitted(ctx, func(line []byte) error {
		var ev AuditEvent
		if err := json.Unmarshal(bytes.TrimSpace(line), &ev); err != nil {
			return fmt.Errorf("%s: %w", auditFile, err)
		}
		if ev.Time.Before(q.Since) || !q.wants(ev) {
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
func (s *FileStore) AuditHead(_ context.Context, kind string) (ChainHead, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return ChainHead{}, unavailable("file store", errors.New("closed"))
	}
	return s.st.Chains[kind], nil
}

// AuditChain implements Store.
func (s *FileStore) AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error {
	return s.eachCommitted(ctx, func(line []byte) error {
		if kindOf(line) != kind {
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
		return fmt.Errorf("file store %s: %w: closed", s.dir, ErrUnavailable)
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
