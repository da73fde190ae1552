package caddymodule

import (
	"context"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/store"
	"go.uber.org/zap"
)

// AuditVerification is what the last check of the store's audit chains
// found (GET /gatekeeper/status, POST /gatekeeper/audit/verify).
type AuditVerification struct {
	At time.Time `json:"verified_at"`
	OK bool      `json:"ok"`
	// Chains has a report per chain: how far it verified (last seq and
	// hash), or the first broken seq and what is wrong there.
	Chains []audit.ChainReport `json:"chains,omitempty"`
	// Error says why the store could not be read; the chains were then not
	// checked.
	Error string `json:"error,omitempty"`
	// Known are the newest heads seen verified before, kept apart from the
	// store (see knownHeads): each chain must still reach them.
	Known map[string]audit.ChainHead `json:"known_heads,omitempty"`
}

// auditVerifyInterval is how often the chains are checked in the background,
// besides once at start and whenever the admin API is asked to.
const auditVerifyInterval = 10 * time.Minute

// auditVerifyTimeout bounds one check; 100 000 events take well under a
// second.
const auditVerifyTimeout = time.Minute

// auditCheck keeps the last verification of one store's audit chains.
type auditCheck struct {
	running sync.Mutex // one check at a time; a second caller waits for it
	mu      sync.Mutex
	last    *AuditVerification
	again   chan struct{} // asks run for a check now
	known   *knownHeads
}

func newAuditCheck(known *knownHeads) *auditCheck {
	return &auditCheck{again: make(chan struct{}, 1), known: known}
}

// soon asks for a check in the background, after a change.
func (c *auditCheck) soon() {
	select {
	case c.again <- struct{}{}:
	default: // one is asked for already
	}
}

// verify checks store's chains now, against the heads seen before and any
// more the caller knows of (an export's), keeps the result and returns it.
func (c *auditCheck) verify(ctx context.Context, store store.Store, logger *zap.Logger, more ...audit.KnownHead) AuditVerification {
	c.running.Lock()
	defer c.running.Unlock()
	ctx, cancel := context.WithTimeout(ctx, auditVerifyTimeout)
	defer cancel()
	known := c.known.get()
	against := map[string][]audit.ChainHead{}
	for kind, h := range known {
		against[kind] = append(against[kind], h)
	}
	for _, k := range more {
		against[k.Kind] = append(against[k.Kind], k.ChainHead)
	}
	reports, err := audit.VerifySince(ctx, store, against)
	v := AuditVerification{At: now().UTC(), OK: err == nil, Chains: reports, Known: known}
	if err != nil {
		v.Error = err.Error()
	}
	for _, r := range reports {
		if !r.OK {
			v.OK = false
			logger.Error("the audit trail is broken", zap.String("chain", r.Kind), zap.Int64("broken_at", r.BrokenAt),
				zap.String("problem", r.Problem))
		}
	}
	if v.OK {
		heads := make(map[string]audit.ChainHead, len(reports))
		for _, r := range reports {
			heads[r.Kind] = r.Last
		}
		if err := c.known.advance(heads); err != nil {
			logger.Error("could not keep the audit heads seen; a lost trail may go unnoticed after a restart", zap.Error(err))
		}
	}
	c.mu.Lock()
	c.last = &v
	c.mu.Unlock()
	return v
}

// lastResult is the last verification's result; nil before the first.
func (c *auditCheck) lastResult() *AuditVerification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// run checks the chains at start, every auditVerifyInterval and when asked
// to (soon), until ctx ends.
func (c *auditCheck) run(ctx context.Context, store store.Store, logger *zap.Logger) {
	tick := time.NewTicker(auditVerifyInterval)
	defer tick.Stop()
	for {
		if v := c.verify(ctx, store, logger); v.Error != "" && ctx.Err() == nil {
			logger.Warn("could not read the audit trail to verify it; trying again later", zap.String("error", v.Error))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-c.again:
		}
	}
}
