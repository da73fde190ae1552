package audit

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Verification is what the last check of the store's audit chains
// found (GET /gatekeeper/status, POST /gatekeeper/audit/verify).
type Verification struct {
	At time.Time `json:"verified_at"`
	OK bool      `json:"ok"`
	// Chains has a report per chain: how far it verified (last seq and
	// hash), or the first broken seq and what is wrong there.
	Chains []ChainReport `json:"chains,omitempty"`
	// Error says why the store could not be read; the chains were then not
	// checked.
	Error string `json:"error,omitempty"`
	// Known are the newest heads seen verified, this check's included,
	// kept apart from the store (see KnownHeads): each chain must still
	// reach them.
	Known map[string]ChainHead `json:"known_heads,omitempty"`
	// StoreID is the store's identity, which the known heads are kept by.
	StoreID string `json:"store_id,omitempty"`
	// Anchor says what is wrong with the known heads, when something is:
	// lost, unreadable, not written, or of a store whose data was
	// replaced. The check is then not OK, whatever the chains hold.
	Anchor string `json:"anchor_problem,omitempty"`
	// Records says which approval the store holds otherwise than its
	// chain registered it (see CheckRecords), when one does. The check is
	// then not OK, however intact the chains.
	Records string `json:"records_problem,omitempty"`
}

// verifyInterval is how often the chains are checked in the background,
// besides once at start and whenever the admin API is asked to.
const verifyInterval = 10 * time.Minute

// verifyTimeout bounds one check; 100 000 events take well under a
// second.
const verifyTimeout = time.Minute

// Monitor keeps the last verification of one store's audit chains.
type Monitor struct {
	running sync.Mutex // one check at a time; a second caller waits for it
	mu      sync.Mutex
	last    *Verification
	again   chan struct{} // asks Run for a check now
	known   *KnownHeads
	now     func() time.Time
}

// NewMonitor checks chains against the heads in known, on the clock now.
func NewMonitor(known *KnownHeads, now func() time.Time) *Monitor {
	return &Monitor{again: make(chan struct{}, 1), known: known, now: now}
}

// Soon asks for a check in the background, after a change.
func (c *Monitor) Soon() {
	select {
	case c.again <- struct{}{}:
	default: // one is asked for already
	}
}

// Verify checks store's chains now, against the heads seen before and any
// more the caller knows of (an export's), keeps the result and returns it.
// Only a check that held the chains to the heads seen before, and found
// them intact, moves those heads on: an export's head, or a replaced
// trail's, never becomes known by itself.
func (c *Monitor) Verify(ctx context.Context, st Anchorable, logger *zap.Logger, more ...KnownHead) Verification {
	c.running.Lock()
	defer c.running.Unlock()
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	var reports []ChainReport
	err := c.known.bind(ctx, st)
	known := c.known.Get()
	if err == nil {
		against := map[string][]ChainHead{}
		for kind, h := range known {
			against[kind] = append(against[kind], h)
		}
		for _, k := range more {
			against[k.Kind] = append(against[k.Kind], k.ChainHead)
		}
		reports, err = VerifySince(ctx, st, against)
	}
	v := Verification{At: c.now().UTC(), OK: err == nil, Chains: reports, Known: known, StoreID: c.known.StoreID()}
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
		heads := make(map[string]ChainHead, len(reports))
		for _, r := range reports {
			heads[r.Kind] = r.Last
		}
		c.known.advance(ctx, st, known, heads)
	}
	if rs, ok := st.(Records); ok && v.OK {
		problem, err := CheckRecords(ctx, rs)
		switch {
		case err != nil:
			v.OK, v.Error = false, err.Error()
		case problem != "":
			v.OK, v.Records = false, problem
			logger.Error("an approval was changed in the store without an event", zap.String("problem", problem))
		}
	}
	v.Known = c.known.Get()
	if v.Anchor = c.known.Problem(); v.Anchor != "" {
		v.OK = false
		logger.Error("the audit trail cannot be held to what this instance saw before", zap.String("problem", v.Anchor))
	}
	c.mu.Lock()
	c.last = &v
	c.mu.Unlock()
	return v
}

// Last is the last verification's result; nil before the first.
func (c *Monitor) Last() *Verification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Run checks the chains at start, every verifyInterval and when asked
// to (soon), until ctx ends.
func (c *Monitor) Run(ctx context.Context, trail Anchorable, logger *zap.Logger) {
	tick := time.NewTicker(verifyInterval)
	defer tick.Stop()
	for {
		if v := c.Verify(ctx, trail, logger); v.Error != "" && ctx.Err() == nil {
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
