package guard

import (
	"slices"
	"time"
)

// The calm a group's answers show is learnt from its calm windows: those
// measured while tests were absent or held back, and, once the group is
// warm, not themselves severe stress (another tenant's burst is not the
// platform's calm).
//
// What is learnt is bounded so that a few sources or tenants cannot teach
// the guard a slow calm:
//   - each source weighs about one answer a tick (Guard.sampled), and a
//     window's tail (p90) is learnt only when no answer was slow or the
//     slow ones came from many sources; its body (p75) always;
//   - each group learns its own calm, and the platform's stress leaves
//     out the most stressed quarter of the groups (Guard.vote);
//   - for its first warmUp windows a group's calm is the lower quartile of
//     what it saw, not the median: slow bursts must fill three windows in
//     four, from the first second, to raise it;
//   - after that the calm follows the median of the last calmSamples
//     windows down quickly (a faster platform is good news at once) and
//     up very slowly, so that a stress that lasts is still stress at its
//     end: 0.01 % a tick is 13 % in 5 minutes;
//   - the jitter the group shows on its own (noise) counts as calm only up
//     to half the slack severe stress allows.
const (
	calmSamples  = 120
	warmUp       = 40
	baselineFall = 0.02
	baselineRise = 0.0001
)

// calm is what one group has learnt of its calm.
type calm struct {
	baseline time.Duration   // the calm latency (of the tail, or of the body); 0 until learnt
	samples  []time.Duration // the last calmSamples windows' latency, oldest first
	learned  int             // windows learnt from, ever
	// noise is how far calm windows rise above the baseline on their own
	// (the 90th percentile of the calm samples less their median): a
	// rise within it is the group's own jitter, not stress. Capped by
	// stress.
	noise time.Duration
}

// warm reports whether the group has learnt from enough windows for its
// calm to be judged against.
func (c *calm) warm() bool { return c.learned >= warmUp }

// learn adds a calm window's latency and moves the baseline within its
// bounds.
func (c *calm) learn(latency time.Duration) {
	if len(c.samples) == calmSamples {
		c.samples = append(c.samples[:0], c.samples[1:]...)
	}
	c.samples = append(c.samples, latency)
	c.learned++
	sorted := slices.Clone(c.samples)
	slices.Sort(sorted)
	median := sorted[len(sorted)/2]
	c.noise = sorted[len(sorted)*9/10] - median
	switch {
	case c.learned <= warmUp || c.baseline == 0:
		c.baseline = sorted[len(sorted)/4]
	case median < c.baseline:
		c.baseline = max(median, time.Duration(float64(c.baseline)*(1-baselineFall)))
	default:
		c.baseline = min(median, time.Duration(float64(c.baseline)*(1+baselineRise))+1)
	}
}

// forget drops what was learnt (a tested tenant's group given to another).
func (c *calm) forget() { *c = calm{samples: c.samples[:0]} }

// stressOf is the stress a latency is to the group: 0 within its calm and
// jitter, 1 at the slack severe stress allows over them (the jitter
// counting at most half of it); 0 before any calm is learnt.
func (c *calm) stressOf(latency time.Duration, s *Settings) float64 {
	if c.baseline == 0 {
		return 0
	}
	slack := max(time.Duration((s.Latency-1)*float64(c.baseline)), MinSlack)
	noise := min(c.noise, slack/2)
	return max(0, float64(latency-c.baseline-noise)) / float64(slack)
}

// ratio is latency as a multiple of the calm (1 before any is learnt).
func (c *calm) ratio(latency time.Duration) float64 {
	if c.baseline == 0 {
		return 1
	}
	return float64(latency) / float64(c.baseline)
}
