package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/config"
)

// Syncer keeps a Snapshot of a Store current: it reads the whole store on
// start, whenever the store signals a change or a reconnect it cannot
// describe, on a timer, and on demand after a local write. Bans added on any
// instance are applied as they come, without reading the rest again. When the
// store cannot be read, the last good snapshot stays in force.
type Syncer struct {
	store    Store
	interval atomic.Int64 // time.Duration between full re-reads
	now      func() time.Time

	refreshMu sync.Mutex // one full read at a time, so an older read never wins
	snap      atomic.Pointer[approvals.Snapshot]

	// deltas are the bans applied since the start of the last full read
	// began, applied again over its result: a read that started before
	// they were stored may not have them.
	deltaMu sync.Mutex
	deltas  []delta

	// The bans QueueBans hands Run, under a lock of their own: a hand-off
	// does not wait while Run builds a snapshot under deltaMu.
	queueMu   sync.Mutex
	queued    []approvals.Ban
	applied   []func() // called once the queued bans are in the snapshot
	deltaKick chan struct{}

	healthMu sync.Mutex
	health   Health

	kick chan struct{}
}

// Health is the Syncer's view of its store.
type Health struct {
	Up        bool      `json:"up"`
	LastSync  time.Time `json:"last_sync"`
	LastError string    `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// NewSyncer returns a Syncer over store with an empty snapshot. now is the
// clock (time.Now when nil); interval is the resync period
// (config.DefaultResyncInterval when zero).
func NewSyncer(store Store, interval time.Duration, now func() time.Time) *Syncer {
	if now == nil {
		now = time.Now
	}
	s := &Syncer{store: store, now: now, kick: make(chan struct{}, 1), deltaKick: make(chan struct{}, 1)}
	s.SetInterval(interval)
	s.snap.Store(approvals.NewSnapshot(nil, nil, time.Time{}))
	return s
}

// SetInterval changes the resync period (config.DefaultResyncInterval when not
// positive); it takes effect after the current wait.
func (s *Syncer) SetInterval(d time.Duration) {
	if d <= 0 {
		d = config.DefaultResyncInterval
	}
	s.interval.Store(int64(d))
}

// Store is the store the Syncer reads.
func (s *Syncer) Store() Store { return s.store }

// Snapshot is the current view; it is never nil.
func (s *Syncer) Snapshot() *approvals.Snapshot { return s.snap.Load() }

// Health reports whether the last read of the store worked.
func (s *Syncer) Health() Health {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	return s.health
}

// ReportFailure marks the store down after another operation on it failed,
// so that health reflects an outage before the next re-read.
func (s *Syncer) ReportFailure(err error) {
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	s.health.Up = false
	s.health.LastError = err.Error()
	s.health.LastErrorAt = s.now()
}

// Kick asks Run for a re-read now, without waiting.
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

type delta struct {
	at   time.Time
	bans []approvals.Ban
}

// addBans applies bans, stored by this instance or heard of from another,
// to the snapshot at once.
func (s *Syncer) addBans(bans []approvals.Ban) {
	if len(bans) == 0 {
		return
	}
	at := s.now()
	s.deltaMu.Lock()
	defer s.deltaMu.Unlock()
	s.deltas = append(s.deltas, delta{at, bans})
	s.snap.Store(s.snap.Load().WithBans(bans, at))
}

// QueueBans is addBans by Run, with other bans that come within
// DeltaInterval: a flood then costs a new snapshot a few times a second, not
// once per batch written. applied, when not nil, is called from Run once the
// bans are in the snapshot. Run must be running.
func (s *Syncer) QueueBans(bans []approvals.Ban, applied func()) {
	s.queueMu.Lock()
	s.queued = append(s.queued, bans...)
	if applied != nil {
		s.applied = append(s.applied, applied)
	}
	s.queueMu.Unlock()
	select {
	case s.deltaKick <- struct{}{}:
	default:
	}
}

// DeltaInterval is how long Run gathers bans before applying them.
const DeltaInterval = 50 * time.Millisecond

// applyQueued applies the bans queued.
func (s *Syncer) applyQueued() {
	s.queueMu.Lock()
	bans, applied := s.queued, s.applied
	s.queued, s.applied = nil, nil
	s.queueMu.Unlock()
	s.addBans(bans)
	for _, f := range applied {
		f()
	}
}

// Refresh reads the whole store and replaces the snapshot. On failure the
// previous snapshot stays and the error is returned.
func (s *Syncer) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	at := s.now()
	list, err := s.store.Approvals(ctx)
	var bans []approvals.Ban
	if err == nil {
		bans, err = s.store.Bans(ctx, at)
	}
	s.healthMu.Lock()
	defer s.healthMu.Unlock()
	if err != nil {
		s.health.Up = false
		s.health.LastError = err.Error()
		s.health.LastErrorAt = at
		return err
	}
	s.install(approvals.NewSnapshot(list, bans, at), at)
	s.health.Up = true
	s.health.LastSync = at
	return nil
}

// install replaces the snapshot with snap, read from a start at at, plus
// the bans applied since at; older deltas are in snap and are forgotten.
func (s *Syncer) install(snap *approvals.Snapshot, at time.Time) {
	s.deltaMu.Lock()
	defer s.deltaMu.Unlock()
	keep := s.deltas[:0]
	for _, d := range s.deltas {
		if !d.at.Before(at) {
			keep = append(keep, d)
			snap = snap.WithBans(d.bans, at)
		}
	}
	clear(s.deltas[len(keep):])
	s.deltas = keep
	s.snap.Store(snap)
}

// Run keeps the snapshot current until ctx is done. onRefresh, when not nil,
// is called after every attempt with its result.
func (s *Syncer) Run(ctx context.Context, onRefresh func(error)) {
	changes := s.store.Changes()
	timer := time.NewTimer(time.Duration(s.interval.Load()))
	defer timer.Stop()
	var gather <-chan time.Time // set while bans are being gathered
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-changes:
			if c := s.store.Pending(); !c.Full {
				s.QueueBans(c.Bans, nil)
				continue
			}
		case <-s.deltaKick:
			if gather == nil {
				gather = time.After(DeltaInterval)
			}
			continue
		case <-gather:
			gather = nil
			s.applyQueued()
			continue
		case <-s.kick:
		}
		interval := time.Duration(s.interval.Load())
		timer.Reset(interval)
		rctx, cancel := context.WithTimeout(ctx, min(interval, 10*time.Second))
		err := s.Refresh(rctx)
		cancel()
		if onRefresh != nil && ctx.Err() == nil {
			onRefresh(err)
		}
	}
}
