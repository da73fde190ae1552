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
// the room in its failure buckets: the first, and each browser counted.
// Until anything failed at a source, its set holds every browser that
// loaded a page there, and they count once there are two of them (see
// sourceExtra).
func (st *sourceState) clients() float32 {
	others := st.agents.len()
	if st.extra == 0 && others < 2 {
		others = 0
	}
	return float32(min(1+others, maxAgents))
}

// cameBack notes that a request of the browser whose hash is agent came
// to st (whose extra x is): a browser that loaded a page here and comes
// back after another browser's request is one more person, unless it was
// counted already for the pages it loaded before anything failed.
func (x *extra) cameBack(st *sourceState, agent uint64) {
	f := wideFingerprint(agent)
	if f != x.lastAgent && x.pending.count(agent) && !x.before.has(agent) {
		st.agents.addNew(agent)
	}
	x.lastAgent = f
}

// sourceExtra is the extra of st, a source's state (not a network's),
// made if need be. People behind one address who open the same page at
// the same moment all load it before the first of their broken links
// fails, and then fail together, before any of them could come back: so
// until a source has an extra, every browser that loads a page there is
// noted in st.agents (see credit), and when the extra is made, two or more
// of them are counted as cameBack would have counted them had they come
// back: each of them, and the first person. A lone client that loaded
// pages first is still one person; a scanner gains what loading a page
// and coming back with each of its user agents would give it anyway.
func (sh *shard) sourceExtra(st *sourceState) *extra {
	if st.extra != 0 {
		return sh.existingExtra(st)
	}
	before := st.agents
	if before.len() < 2 {
		before, st.agents = agentSet{}, agentSet{} // one browser is the first person, counted apart
	}
	x := sh.extraOf(st)
	x.before = before
	return x
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
		if agent != 0 && !static && !network {
			st.agents.add(agent) // one of the people, should anything fail (see sourceExtra)
		}
		return // nothing failed: nothing to earn back
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
