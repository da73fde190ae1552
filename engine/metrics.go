package engine

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/stripe"
	"github.com/customernode/gatekeeper/notify"
	"github.com/customernode/gatekeeper/policy"
)

// Gatekeeper's metrics (the README's Metrics and docs/sre-guide.md). The
// collectors live at package level so that their counts survive config
// reloads; each config registers them (Collectors) with its own metrics
// registry. No label ever carries an IP, a user agent, a path or an
// approval id.

// Store operations, for store_errors_total.
const (
	OpSync   = "sync"
	OpLease  = "lease"
	OpFlush  = "flush"
	OpWrite  = "write"
	OpHealth = "health"
	// OpCampaigns: sharing campaign evidence with the other instances.
	OpCampaigns = "campaigns"
)

// StoreOps are the store operations, each a series of store_errors_total
// from the start.
var StoreOps = []string{OpSync, OpLease, OpFlush, OpWrite, OpHealth, OpCampaigns}

const ns, sub = "caddy", "gatekeeper"

var metrics = struct {
	requests         *stripedCounterVec
	blocked          *prometheus.CounterVec
	detections       *prometheus.CounterVec
	approvedRequests *stripedCounterVec
	storeErrors      *prometheus.CounterVec
	notifications    *prometheus.CounterVec
	decision         *durationHistogram
	bansCapped       prometheus.Counter
	feedRecorded     prometheus.Counter
	feedDropped      prometheus.Counter
	gauges           []prometheus.Collector
}{
	feedRecorded: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "feed_recorded_total",
		Help: "Refused and flagged requests added to the live feed (GET /gatekeeper/events).",
	}),
	feedDropped: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "feed_dropped_total",
		Help: "Refused and flagged requests left out of the live feed because it was recording its most a second.",
	}),
	bansCapped: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "bans_capped_total",
		Help: "Scanners refused but not banned because max_bans bans were in force.",
	}),
	requests: newStripedCounterVec("requests_total", "Requests decided by Gatekeeper, by verdict.", "verdict"),
	blocked: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "blocked_total",
		Help: "Requests refused, by reason and scanner family (none when no scanner was recognised).",
	}, []string{"reason", "scanner"}),
	detections: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "detections_total",
		Help: "Scanner detections, by signal and mode.",
	}, []string{"signal", "mode"}),
	approvedRequests: newStripedCounterVec("approved_requests_total", "Requests from approved sources, by tenant and result.",
		"tenant", "result"),
	storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "store_errors_total",
		Help: "Failed store operations, by operation.",
	}, []string{"op"}),
	notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Subsystem: sub, Name: "notifications_total",
		Help: "Webhook notifications of requests and approvals, by event and result (sent, retried, dropped).",
	}, []string{"event", "result"}),
	decision: newDurationHistogram(prometheus.BuildFQName(ns, sub, "decision_duration_seconds"),
		"Time Gatekeeper takes to decide on a request.",
		[]float64{1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 5e-3, 0.025, 0.1, 0.5}),
	gauges: []prometheus.Collector{
		gaugeFunc("approvals_active", "Approvals whose window is open now, on this instance's snapshot.", func(e *Engine) float64 {
			return float64(e.activeApprovals())
		}),
		gaugeFunc("approvals_pending", "Requests waiting for their approvers under approval_policy, on this instance's snapshot.", func(e *Engine) float64 {
			byStatus, _ := e.Snapshot().Counts(now())
			return float64(byStatus[approvals.StatusPending])
		}),
		gaugeFunc("bans_active", "Bans in force now, on this instance's snapshot.", func(e *Engine) float64 {
			_, bans := e.Snapshot().Counts(now())
			return float64(bans)
		}),
		gaugeFunc("bans_queued", "Scanner bans enforced here and waiting to be written to the store.", func(e *Engine) float64 {
			return float64(e.shared.writer.Queued())
		}),
		gaugeFunc("tracked_sources", "Sources whose behaviour is tracked, over all handlers.", func(*Engine) float64 {
			n := 0
			eachMemory(func(m *behavior.Memory) { n += m.Len() })
			return float64(n)
		}),
		gaugeFunc("tracker_bytes", "Memory the behaviour trackers hold, outside the Go heap for the most part.", func(*Engine) float64 {
			n := 0
			eachMemory(func(m *behavior.Memory) { n += m.Bytes() })
			return float64(n)
		}),
		gaugeFunc("audit_intact", "1 when the last check of the audit trail's hash chains found them intact, 0 when it found a break or could not read them.", func(e *Engine) float64 {
			if v := e.shared.audit.Last(); v != nil && v.OK {
				return 1
			}
			return 0
		}),
		gaugeFunc("impact_factor", "The share of their approved rate approved tests may use now: 1 in full, less while the impact guard holds them back, 0 when paused.", func(e *Engine) float64 {
			return e.shared.guard.Factor()
		}),
		gaugeFunc("platform_stress", "How stressed the platform looks in the answers to everyone who is not testing: 0 calm, 1 severe (approved tests pause).", func(e *Engine) float64 {
			return e.shared.guard.Stress()
		}),
		gaugeFunc("campaigns_active", "Scans seen across sources that are being refused now (a tenant and a request shape each), on this instance's evidence and every other's on the store.", func(e *Engine) float64 {
			return float64(e.shared.campaigns.Active())
		}),
		gaugeFunc("store_up", "1 when the last read of the store worked, else 0.", func(e *Engine) float64 {
			if e.Syncer().Health().Up {
				return 1
			}
			return 0
		}),
	},
}

func gaugeFunc(name, help string, f func(*Engine) float64) prometheus.GaugeFunc {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, func() float64 {
		if e := Running(); e != nil {
			return f(e)
		}
		return 0
	})
}

// Counters with fixed labels, resolved once: a label lookup per request
// costs more than the decision itself.
var (
	requestsByVerdict = map[string]*stripe.Counter{}
	refusedByReason   = map[string]prometheus.Counter{} // scanner "none"
	detectionsBy      = map[string]map[detect.Signal]prometheus.Counter{}
)

// approvedCounters holds approved_requests_total's counters by tenant and
// result, resolved at a tenant's first request.
var approvedCounters sync.Map // tenant → *sync.Map of result → *stripe.Counter

// approvedCounter is approved_requests_total's counter for tenant and result.
func approvedCounter(tenant, result string) *stripe.Counter {
	byResult, ok := approvedCounters.Load(tenant)
	if !ok {
		byResult, _ = approvedCounters.LoadOrStore(tenant, new(sync.Map))
	}
	m := byResult.(*sync.Map)
	if c, ok := m.Load(result); ok {
		return c.(*stripe.Counter)
	}
	c, _ := m.LoadOrStore(result, metrics.approvedRequests.With(tenant, result))
	return c.(*stripe.Counter)
}

func init() {
	// Series with a fixed set of label values exist from the start, so an
	// alert can tell "none yet" from "not reporting".
	for _, v := range policy.Verdicts {
		requestsByVerdict[v] = metrics.requests.With(v)
	}
	for _, r := range policy.Reasons {
		if r != policy.ReasonScanner {
			refusedByReason[r] = metrics.blocked.WithLabelValues(r, "none")
		}
	}
	for _, op := range StoreOps {
		metrics.storeErrors.WithLabelValues(op)
	}
	for _, ev := range notify.Kinds {
		for _, r := range []string{notify.ResultSent, notify.ResultRetried, notify.ResultDropped} {
			metrics.notifications.WithLabelValues(ev, r)
		}
	}
	for _, mode := range policy.Modes {
		detectionsBy[mode] = map[detect.Signal]prometheus.Counter{}
		for _, s := range detect.Signals() {
			detectionsBy[mode][s] = metrics.detections.WithLabelValues(s.String(), mode)
		}
	}
	if sigs, err := detect.DefaultSignatures(); err == nil {
		families := map[string]bool{"other": true}
		for _, s := range append(sigs.UserAgents, sigs.ScannerHeaders...) {
			if s.Kind != "weak" {
				families[s.Family] = true
			}
		}
		for f := range families {
			metrics.blocked.WithLabelValues(policy.ReasonScanner, f)
		}
	}
}

// Collectors are Gatekeeper's metrics, for a config's registry.
func Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{metrics.requests, metrics.blocked, metrics.detections,
		metrics.approvedRequests, metrics.storeErrors, metrics.notifications, metrics.decision, metrics.bansCapped, metrics.feedRecorded,
		metrics.feedDropped}, metrics.gauges...)
}

// countNotification counts a webhook notification of event with result.
func countNotification(event, result string) {
	metrics.notifications.WithLabelValues(event, result).Inc()
}

// CountVerdict counts a request decided with verdict, in stripe (see
// internal/stripe).
func CountVerdict(verdict string, stripe int) {
	if c, ok := requestsByVerdict[verdict]; ok {
		c.Add(stripe, 1)
	}
}

// CountRefusal counts a request refused for reason; family names the
// scanner recognised, for a scanner's refusal.
func CountRefusal(reason, family string) {
	if reason == policy.ReasonScanner {
		metrics.blocked.WithLabelValues(policy.ReasonScanner, family).Inc()
		return
	}
	if c, ok := refusedByReason[reason]; ok {
		c.Inc()
	}
}

// CountDetections counts each of signals, detected in mode.
func CountDetections(mode string, signals detect.SignalSet) {
	for _, s := range detect.Signals() {
		if signals.Has(s) {
			detectionsBy[mode][s].Inc()
		}
	}
}

// CountApproved counts a request of an approved test of tenant, with
// result, in stripe.
func CountApproved(tenant, result string, stripe int) {
	approvedCounter(tenant, result).Add(stripe, 1)
}

// ObserveDecision notes how long a decision took, in stripe.
func ObserveDecision(took time.Duration, stripe int) { metrics.decision.Observe(took, stripe) }

// CountStoreError counts a failed store call of operation op (one of the
// Op constants).
func CountStoreError(op string) { metrics.storeErrors.WithLabelValues(op).Inc() }
