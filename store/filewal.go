package store

import (
	"bufio"
	"bytes"
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

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
)

// The file store's durability: its audit log is the write-ahead log every
// change is appended to before it is applied, and state.json the checkpoint
// replay starts from.

func (s *FileStore) load() error {
	s.st = fileState{Version: fileStateVers, Approvals: map[string]*approvals.Approval{}, Bans: map[netip.Prefix]approvals.Ban{}}
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
			s.st.Approvals = map[string]*approvals.Approval{}
		}
		if s.st.Bans == nil {
			s.st.Bans = map[netip.Prefix]approvals.Ban{}
		}
	}
	if s.st.Chains == nil {
		s.st.Chains = map[string]audit.ChainHead{}
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
		var ev audit.Event
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

func (st *fileState) apply(ev audit.Event, seq int64) {
	switch {
	case slices.Contains(approvalActions, ev.Action):
		st.Approvals[ev.Approval.ID] = ev.Approval
	case ev.Action == audit.ActionBanAdded:
		st.Bans[ev.Ban.Prefix] = *ev.Ban
	case ev.Action == audit.ActionBanRemoved:
		delete(st.Bans, ev.Ban.Prefix)
	}
	if ev.Hash != "" {
		st.Chains[ev.Kind()] = audit.ChainHead{Seq: ev.Seq, Hash: ev.Hash}
	}
	st.Seq = seq
}

// commit appends evs to the audit log in one write, fsyncs it, applies them
// and checkpoints. The caller holds s.mu. Once the append is durable the
// change is committed: a failed checkpoint is retried by the next write or
// replayed on open.
func (s *FileStore) commit(evs ...audit.Event) error {
	if s.audit == nil {
		return unavailable("file store", errors.New("closed"))
	}
	at := s.now().UTC()
	var buf []byte
	heads := maps.Clone(s.st.Chains)
	for i := range evs {
		evs[i].ID = strconv.FormatInt(s.st.Seq+int64(i)+1, 10)
		evs[i].Time = at
		content, err := evs[i].Content()
		if err != nil {
			return err
		}
		kind := evs[i].Kind()
		line, head, err := audit.Link(heads[kind], evs[i].ID, content)
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
