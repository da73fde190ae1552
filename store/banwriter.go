package store

import (
	"context"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/approvals"
)

// BanWriter stores bans in batches, off the request path: a flood of
// scanners from thousands of addresses costs the store one write per batch
// rather than one per address, and no request waits on it. The caller
// enforces each ban itself from the moment it queues it.
type BanWriter struct {
	store Store
	actor string
	done  func(bans []approvals.Ban, err error)

	mu    sync.Mutex
	queue []approvals.Ban
	kick  chan struct{}
}

const (
	// BanBatch is the most bans one write stores.
	BanBatch = 1000
	// BanQueueMax bounds the bans waiting to be written; beyond it Add
	// refuses, and the caller enforces the ban alone.
	BanQueueMax = 100_000
	// banWriteTimeout bounds one batch's write.
	banWriteTimeout = 2 * time.Second
	// banLinger is how long the first ban of a batch waits for others.
	banLinger = 10 * time.Millisecond
)

// NewBanWriter writes to store as actor and calls done after each batch,
// from Run's goroutine, with the batch and the write's error.
func NewBanWriter(store Store, actor string, done func(bans []approvals.Ban, err error)) *BanWriter {
	return &BanWriter{store: store, actor: actor, done: done, kick: make(chan struct{}, 1)}
}

// Add queues b; it reports false when the queue is full.
func (w *BanWriter) Add(b approvals.Ban) bool {
	w.mu.Lock()
	if len(w.queue) >= BanQueueMax {
		w.mu.Unlock()
		return false
	}
	w.queue = append(w.queue, b)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return true
}

// Queued is how many bans wait to be written.
func (w *BanWriter) Queued() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Run writes queued bans until ctx is done, then writes what is left with a
// last short deadline.
func (w *BanWriter) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), banWriteTimeout)
			defer cancel()
			for w.writeBatch(fctx) {
			}
			return
		case <-w.kick:
		}
		// Let a flood's bans gather into one write; a single ban waits
		// no longer than this either.
		select {
		case <-ctx.Done():
		case <-time.After(banLinger):
		}
		for w.writeBatch(ctx) {
		}
	}
}

// writeBatch writes up to BanBatch queued bans, handing them and the
// write's error to done; it reports whether there were any to write.
func (w *BanWriter) writeBatch(ctx context.Context) bool {
	w.mu.Lock()
	n := min(len(w.queue), BanBatch)
	batch := make([]approvals.Ban, n)
	copy(batch, w.queue)
	w.queue = append(w.queue[:0], w.queue[n:]...)
	w.mu.Unlock()
	if n == 0 {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, banWriteTimeout)
	err := w.store.AddBans(wctx, batch, w.actor)
	cancel()
	w.done(batch, err)
	return true
}
