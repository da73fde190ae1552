package engine

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
// guardNoteEvery for every test, and one for each tenant whose own stress
// moves its tests (guard.MaxTested at most), each write given up after
// guardNoteTimeout. A guard that flaps for a minute adds about a dozen
// events a scope, whatever the number of approvals, and the latest state is
// always the one recorded.
const (
	guardNoteEvery   = 5 * time.Second
	guardNoteTimeout = 2 * time.Second
)

// guardNoter is the store as guardNotes needs it.
type guardNoter interface {
	NoteGuard(ctx context.Context, action, note, actor, tenant string) error
}

// guardNotes records the impact guard's changes of state in the audit, as
// one event a change that names no approval (an approval's report and
// evidence find the changes made while it was in force by time, and by
// tenant for a change of one tenant's tests). The guard's controller hands
// each change to note, which never waits; one goroutine (run) writes them,
// so a store that stalls holds up nothing but the writer. Changes made
// while the writer waits are coalesced: only the latest of each scope (all
// tests, or one tenant's) is kept, and it is written only when it differs
// from the last one written.
type guardNotes struct {
	store  guardNoter
	actor  string
	active func() bool // whether any approval is active now: else nothing is recorded
	logger *zap.Logger

	mu      sync.Mutex
	pending map[string]guardChange // the latest change not yet written, by tenant ("": every test)
	wake    chan struct{}          // signalled, without blocking, when pending is set
}

// guardChange is one change of the guard's state, and why.
type guardChange struct {
	to  guard.State
	why string
}

func newGuardNotes(db guardNoter, actor string, active func() bool, logger *zap.Logger) *guardNotes {
	return &guardNotes{store: db, actor: actor, active: active, logger: logger,
		pending: map[string]guardChange{}, wake: make(chan struct{}, 1)}
}

// note hands the guard's change of tenant's tests ("": every test) to the
// writer, replacing any change of the same tests it has not written yet.
// It never blocks: the guard's controller calls it.
func (n *guardNotes) note(tenant string, to guard.State, why string) {
	n.mu.Lock()
	n.pending[tenant] = guardChange{to, why}
	n.mu.Unlock()
	n.signal()
}

func (n *guardNotes) signal() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// take returns the changes waiting to be written, and forgets them.
func (n *guardNotes) take() map[string]guardChange {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := n.pending
	n.pending = make(map[string]guardChange, len(c))
	return c
}

// putBack keeps c, tenant's change, for the next write unless a newer one
// came meanwhile, and wakes the writer.
func (n *guardNotes) putBack(tenant string, c guardChange) {
	n.keep(tenant, c)
	n.signal()
}

// keep keeps c, tenant's change, for the next look without waking the
// writer, unless a newer one came meanwhile.
func (n *guardNotes) keep(tenant string, c guardChange) {
	n.mu.Lock()
	if _, newer := n.pending[tenant]; !newer {
		n.pending[tenant] = c
	}
	n.mu.Unlock()
}

// run writes the changes note hands over until ctx ends. A change that
// could not be written is tried again with the next write, unless a newer
// one replaced it.
func (n *guardNotes) run(ctx context.Context) {
	written := map[string]guard.State{} // by tenant; tests start at full rate
	idle := time.NewTicker(time.Second)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		case <-idle.C: // a change kept while no approval was active
		}
		wrote := false
		for tenant, c := range n.take() {
			if c.to == written[tenant] {
				continue
			}
			if !n.active() {
				n.keep(tenant, c) // an approval that opens later is told where the guard stands
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, guardNoteTimeout)
			err := n.store.NoteGuard(wctx, guardActions[c.to], c.why, n.actor, tenant)
			cancel()
			switch {
			case err == nil:
				written[tenant], wrote = c.to, true
				if c.to == guard.Full {
					delete(written, tenant)
				}
			case ctx.Err() != nil:
				return
			default:
				n.logger.Error("could not record the impact guard's change in the audit; trying again",
					zap.String("action", guardActions[c.to]), zap.String("tenant", tenant), zap.Error(err))
				n.putBack(tenant, c)
				wrote = true // wait before trying again
			}
		}
		if !wrote {
			continue
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
