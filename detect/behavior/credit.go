package behavior

import "time"

// What successes earn back, and who counts as one more person behind an
// address: the two ways successful answers widen a source's failure
// buckets, each bounded so that success does not launder failure.

// People behind one address (an office, a school, a carrier's NAT) use
// different browsers; a scanner keeps one user agent, or rotates them. The
// failure buckets of a source hold N for its first person and N more for
// each other browser counted there lately, up to maxAgents, so tens of
// people behind one NAT address each get their share of broken links. A
// user-agent string is only a client's word: a browser counts once it has
// loaded a page successfully and then come back after another browser did
// (see cameBack). A lone client, whatever it loads, stays one person; a
// scanner that sends each user agent once, with a page or without, gains
// no room.
const (
	maxAgents    = 8
	agentsPeriod = 10 * time.Minute
)

// clients is how many people st was seen with lately, 1 to maxAgents, for
// the room in its failure buckets: the first, and each browser counted. A
// source without an extra has counted none (its set holds at most the
// first browser that loaded a page there: see credit).
func (st *sourceState) clients() float32 {
	if st.extra == 0 {
		return 1
	}
	return float32(min(1+st.agents.len(), maxAgents))
}

// cameBack notes that a request of the browser whose hash is agent came
// to st (whose extra x is): a browser that loaded a page here and comes
// back after another browser's request is one more person.
func (x *extra) cameBack(st *sourceState, agent uint64) {
	f := wideFingerprint(agent)
	if f != x.lastAgent && x.pending.count(agent) {
		st.agents.addNew(agent)
	}
	x.lastAgent = f
}

// sourceExtra is the extra of st, a source's state (not a network's), made
// if need be: the first browser noted before it was made (see credit) is
// no one counted yet.
func (sh *shard) sourceExtra(st *sourceState) *extra {
	if st.extra == 0 {
		st.agents = agentSet{}
	}
	return sh.extraOf(st)
}

// credit counts a successful answer under st, to the tenant whose
// fingerprint is tenant: a page's browser (agent, unless 0) is noted as
// one that loaded a page, and the answer earns back failures st already
// had in that tenant (one a page, a quarter an asset; half a failure a
// page in the distinct_paths bucket). Success must not launder failure:
// a success in another tenant (a site that answers 200 to every path)
// earns nothing, nothing is banked in advance, and a source earns at most
// its allowance (see allowance) until the credit drains, so a scanner
// that pads its probes with pages that exist is held to nearly the bound
// of one that does not. A network earns without allowance: its sources
// are many people, and its escalation holds for what they earn it (see
// refuseUnserved). The caller holds sh.mu.
func (t *Tracker) credit(sh *shard, st *sourceState, static bool, agent uint64, tenant uint32, network bool) {
	x := sh.existingExtra(st)
	if x == nil {
		if agent == 0 || static || network {
			return // nothing failed: nothing to earn back, no one to count
		}
		if st.agents.len() == 0 || st.agents.has(agent) {
			st.agents.add(agent) // the first browser to load a page here
			return
		}
		// A second browser loaded a page before anything failed: people
		// may share the address, so their counting starts now, before
		// their broken links fail. People who open the same page at the
		// same moment load it and come back for its assets before their
		// broken links fail together; an agent used once never comes back.
		x = sh.sourceExtra(st)
		x.lastAgent = wideFingerprint(agent)
	}
	if agent != 0 && !static {
		x.pending.add(agent)
	}
	if x.failTenant != tenant {
		return
	}
	c := float32(1)
	if static {
		c = 0.25
	} else {
		st.distinct = max(0, st.distinct-0.5)
	}
	if !network {
		c = min(c, max(0, t.allowance(st)-x.credited))
	}
	nf, sl := min(c, st.notFound), min(c, st.slow)
	st.notFound -= nf
	st.slow -= sl
	if !network {
		x.credited += max(nf, sl)
	}
}

// allowance is how much credit successes may give st before it drains:
// one failure for its first person (an honest person's occasional broken
// link is harmless anyway: the buckets hold N), and N for each other
// person counted there (an office's pages earn back its broken links).
func (t *Tracker) allowance(st *sourceState) float32 {
	return 1 + float32(t.cfg.NotFound.N)*(st.clients()-1)
}
