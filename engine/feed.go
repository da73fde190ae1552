package engine

import "github.com/customernode/gatekeeper/feed"

// liveFeed is the process's feed of refused and flagged requests, kept
// across config reloads: the handler records, GET /gatekeeper/events reads.
var liveFeed = feed.New()

// Record adds a refused or flagged request to the live feed, unless it is
// recording its most a second already.
func Record(ev feed.Event) {
	if liveFeed.Record(ev) {
		metrics.feedRecorded.Inc()
	} else {
		metrics.feedDropped.Inc()
	}
}
