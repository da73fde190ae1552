package caddymodule

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/guard"
)

// guardActions are the audit actions of the guard's states.
var guardActions = map[guard.State]string{
	guard.Full:      audit.ActionApprovalResumed,
	guard.Throttled: audit.ActionApprovalThrottled,
	guard.Paused:    audit.ActionApprovalPaused,
}

// How the impact guard's changes reach the audit: at most one event every
// guardNoteEvery, each write given up after guardNoteTimeout. A guard
// that flaps for a minute adds about a dozen events, whatever the number
// of approvals, and the latest state is always the one recorded.
const (
	guardNoteEvery   = 5 * time.Second
	guardNoteTimeout = 2 * time.Second
)

// guardNoter is the store as guardNotes needs it.
type guardNoter interface {
	NoteGuard(ctx context.Context, action, note, actor string) error
}

// guardNotes records the impact guard's changes of state in the audit, as
// one event a change that names no approval (an approval's report and
// evidence find the changes made while it was in force by time). The
// guard's controller hands each change to note, which never waits; one
// goroutine (run) writes them, so a store that stalls holds up nothing but
// the writer. Changes made while the writer waits are coalesced: only the
// latest is kept, and it is written only when it differs from the last
// one written.
type guardNotes struct {
	store  guardNoter
	actor  string
	active func() bool // whether any approval is active now: else nothing is recorded
	logger *zap.Logger

	mu      sync.Mutex
	pending *guardChange  // the latest change not yet written; nil when none
	wake    chan struct{} // signalled, without blocking, when pending is set
}

// guardChange is one change of the guard's state, and why.
type guardChange struct {
	to  guard.State
	why string
}

func newGuardNotes(db guardNoter, actor string, active func() bool, logger *zap.Logger) *guardNotes {
	return &guardNotes{store: db, actor: actor, active: active, logger: logger, wake: make(chan struct{}, 1)}
}

// note hands the guard's change to the writer, replacing any change it has
// not written yet. It never blocks: the guard's controller calls it.
func (n *guardNotes) note(to guard.State, why string) {
	n.mu.Lock()
	n.pending = &guardChange{to, why}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take returns the change waiting to be written, if any, and forgets it.
func (n *guardNotes) take() *guardChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.pending
	n.pending = nil
	return c
}

// putBack keeps c for the next write unless a newer change came meanwhile.
func (n *guardNotes) putBack(c *guardChange) {
	n.mu.Lock()
	if n.pending == nil {
		n.pending = c
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// run writes the changes note hands over until ctx ends. A change that
// could not be written is tried again with the next write, unless a newer
// one replaced it.
func (n *guardNotes) run(ctx context.Context) {
	written := guard.Full // the guard starts at full rate
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		c := n.take()
		if c == nil || c.to == written || !n.active() {
			continue
		}
		wctx, cancel := context.WithTimeout(ctx, guardNoteTimeout)
		err := n.store.NoteGuard(wctx, guardActions[c.to], c.why, n.actor)
		cancel()
		switch {
		case err == nil:
			written = c.to
		case ctx.Err() != nil:
			return
		default:
			n.logger.Error("could not record the impact guard's change in the audit; trying again",
				zap.String("action", guardActions[c.to]), zap.Error(err))
			n.putBack(c)
		}
		hold := time.NewTimer(guardNoteEvery)
		select {
		case <-ctx.Done():
			hold.Stop()
			return
		case <-hold.C:
		}
	}
}
