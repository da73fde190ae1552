package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/ledger"
)

// The file store keeps each approval's usage and volume ledger in
// usage.json. The budget is reserved ahead: before granting admissions
// beyond what usage.json already reserves, the store reserves about one more
// second's worth and writes the file. After a crash the whole reservation
// counts as used, so a crash can strand at most a second of budget and can
// never let more than max_requests through.

const usageFile = "usage.json"

type fileUsage struct {
	Usage     approvals.Usage                `json:"usage"`
	Reserved  int64                          `json:"reserved"`
	FirstSeen *time.Time                     `json:"first_seen,omitempty"`
	Hours     map[int64]*approvals.HourUsage `json:"hours,omitempty"` // by Unix hour
	ledger    ledger.State                   // in memory only; Granted starts at Reserved
}

func (s *FileStore) loadUsage() error {
	s.usage = map[string]*fileUsage{}
	b, err := os.ReadFile(filepath.Join(s.dir, usageFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &s.usage); err != nil {
		return fmt.Errorf("%s: %w", usageFile, err)
	}
	for _, u := range s.usage {
		u.ledger.Granted = u.Reserved
	}
	return nil
}

func (s *FileStore) saveUsage() error {
	b, err := json.Marshal(s.usage)
	if err != nil {
		return err
	}
	if err := writeAtomic(s.dir, usageFile, b, "usage"); err != nil {
		return unavailable("file store", err)
	}
	return nil
}

func (s *FileStore) usageOf(id string) *fileUsage {
	u, ok := s.usage[id]
	if !ok {
		u = &fileUsage{}
		s.usage[id] = u
	}
	return u
}

// withUsage returns a copy of a with its usage. The caller holds s.mu.
func (s *FileStore) withUsage(a *approvals.Approval) *approvals.Approval {
	c := a.Clone()
	if u, ok := s.usage[a.ID]; ok {
		c.Usage = u.Usage
		if u.Usage.LastSeen != nil {
			t := *u.Usage.LastSeen
			c.Usage.LastSeen = &t
		}
	}
	return c
}

// Lease implements Store.
func (s *FileStore) Lease(_ context.Context, a *approvals.Approval, want int) (ledger.Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return ledger.Lease{}, unavailable("file store", errors.New("closed"))
	}
	u := s.usageOf(a.ID)
	before := u.ledger
	l := u.ledger.Take(a, want, s.now())
	if u.ledger.Granted > u.Reserved {
		ahead := max(int64(want), int64(math.Ceil(a.MaxRPS)))
		prev := u.Reserved
		u.Reserved = min(a.MaxRequests, u.ledger.Granted+ahead)
		if err := s.saveUsage(); err != nil {
			u.ledger, u.Reserved = before, prev
			return ledger.Lease{}, err
		}
	}
	return l, nil
}

// Release implements Store.
func (s *FileStore) Release(_ context.Context, id string, n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.usage[id]; ok {
		u.ledger.Release(n)
	}
	return nil
}

// RecordUsage implements Store.
func (s *FileStore) RecordUsage(_ context.Context, id string, d approvals.Usage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audit == nil {
		return unavailable("file store", errors.New("closed"))
	}
	u := s.usageOf(id)
	u.Usage.Add(d)
	if d.LastSeen != nil && (u.FirstSeen == nil || d.LastSeen.Before(*u.FirstSeen)) {
		t := d.LastSeen.UTC()
		u.FirstSeen = &t
	}
	hour := d.Hour(s.now())
	if u.Hours == nil {
		u.Hours = map[int64]*approvals.HourUsage{}
	}
	h := u.Hours[hour.Unix()]
	if h == nil {
		h = &approvals.HourUsage{Hour: hour}
		u.Hours[hour.Unix()] = h
	}
	h.Add(d)
	return s.saveUsage()
}

// History implements Store.
func (s *FileStore) History(_ context.Context, id string) (approvals.History, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.st.Approvals[id]; !ok {
		return approvals.History{}, fmt.Errorf("approval %s: %w", id, approvals.ErrNotFound)
	}
	var out approvals.History
	u, ok := s.usage[id]
	if !ok {
		return approvals.History{Hours: []approvals.HourUsage{}}, nil
	}
	if u.FirstSeen != nil {
		t := *u.FirstSeen
		out.FirstSeen = &t
	}
	out.Hours = make([]approvals.HourUsage, 0, len(u.Hours))
	for _, h := range u.Hours {
		out.Hours = append(out.Hours, *h)
	}
	slices.SortFunc(out.Hours, func(a, b approvals.HourUsage) int { return a.Hour.Compare(b.Hour) })
	return out, nil
}
