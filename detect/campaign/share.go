package campaign

import (
	"context"
	"time"
)

// Board is a store through which the instances in front of one platform
// share campaign evidence (the Redis store; the file store serves one
// instance and has none).
type Board interface {
	// ShareCampaigns adds evidence to every instance's, records that the
	// campaigns inForce are in force until until, and returns, for each
	// key of evidence, every instance's count of networks and paths
	// within window of at, and the campaigns any instance reported in
	// force, with their ends.
	ShareCampaigns(ctx context.Context, evidence []Evidence, inForce []Key, until, at time.Time, window time.Duration) (counts map[Key]Count, shared map[Key]time.Time, err error)
}

// Count is how many networks and paths a key's evidence holds.
type Count struct{ Networks, Paths int }

// Share hands the evidence gathered since the last call to b, and takes
// in what every instance knows: counts that make a key a campaign here
// too, and campaigns other instances found. An end another instance
// reports is believed up to one window from at, whatever its clock or a
// writer to the store says.
func (t *Tracker) Share(ctx context.Context, b Board, at time.Time) error {
	t.mu.Lock()
	evidence := t.pending
	t.pending = nil
	var inForce []Key
	for k, r := range t.records {
		if at.Before(r.until) {
			inForce = append(inForce, k)
		}
	}
	t.mu.Unlock()
	counts, shared, err := b.ShareCampaigns(ctx, evidence, inForce, at.Add(t.cfg.Window), at, t.cfg.Window)
	if err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, c := range counts {
		if r := t.records[k]; r != nil {
			r.sharedNetworks, r.sharedPaths = c.Networks, c.Paths
			t.judge(k, r, c.Networks, c.Paths, at)
		}
	}
	clear(t.shared)
	latest := at.Add(t.cfg.Window)
	for k, until := range shared {
		if until.After(latest) {
			until = latest
		}
		t.shared[k] = until
	}
	t.recount(at)
	return nil
}
