// Package storetest is the conformance suite every store.Store must pass.
// Each store's own tests call Run with a function that opens a fresh, empty
// store; the suite then checks the behaviour callers rely on.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
)

// Open returns a fresh, empty store whose audit times come from clock. The
// store must be closed when the test ends.
type Open func(t *testing.T, clock func() time.Time) store.Store

// Epoch is the suite's fixed "now".
var Epoch = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// Approval returns a valid approval with id for tenant, active at Epoch.
func Approval(id, tenant string) *approvals.Approval {
	return &approvals.Approval{
		ID:          id,
		Tenant:      tenant,
		Sources:     []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("2001:db8:1::/48")},
		Hosts:       []string{"acme.example.com"},
		Paths:       []string{"/api/*"},
		Methods:     []string{"GET", "POST"},
		NotBefore:   Epoch.Add(-time.Hour),
		NotAfter:    Epoch.Add(8 * time.Hour),
		MaxRPS:      20,
		Burst:       40,
		MaxRequests: 100000,
		RequestedBy: "ciso@acme.example",
		ApprovedBy:  "secops@customernode",
		ApprovalRef: "SEC-1234",
		Contact:     "+1 555 0100",
		Notes:       "quarterly test",
		TokenHash:   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		CreatedAt:   Epoch.Add(-2 * time.Hour),
	}
}

// Person is name as a client certificate authenticates them: its
// fingerprint stands for the certificate.
func Person(name string) approvals.Identity {
	sum := sha256.Sum256([]byte(name))
	return approvals.Identity{ID: name, Via: approvals.ViaMTLS, Cert: hex.EncodeToString(sum[:])}
}

// Run runs the conformance suite against stores made by open, each case
// on a fresh store.
func Run(t *testing.T, open Open) {
	x := suite{open}
	for _, c := range []struct {
		name string
		run  func(suite, *testing.T)
	}{
		{"CreatedApprovalReadsBackUnchanged", suite.createdApprovalReadsBackUnchanged},
		{"DuplicateIDIsRefused", suite.duplicateIDIsRefused},
		{"AdmitSeesEveryConcurrentWrite", suite.admitSeesEveryConcurrentWrite},
		{"ExhaustedApprovalHoldsNoCapacity", suite.exhaustedApprovalHoldsNoCapacity},
		{"UnknownApprovalIsNotFound", suite.unknownApprovalIsNotFound},
		{"RevokedApprovalIsKeptForTheAudit", suite.revokedApprovalIsKeptForTheAudit},
		{"RequestIsStoredPending", suite.requestIsStoredPending},
		{"TwoApproversMakeAnApproval", suite.twoApproversMakeAnApproval},
		{"FourEyesRefusalsWriteNothing", suite.fourEyesRefusalsWriteNothing},
		{"DenialEndsARequest", suite.denialEndsARequest},
		{"LapseIsRecordedOnce", suite.lapseIsRecordedOnce},
		{"TokenIsHandedOutOnce", suite.tokenIsHandedOutOnce},
		{"ConcurrentApprovalsAllCount", suite.concurrentApprovalsAllCount},
		{"CapacityIsCheckedAtApproval", suite.capacityIsCheckedAtApproval},
		{"BansExpireAndCanBeLifted", suite.bansExpireAndCanBeLifted},
		{"BanningAgainExtendsTheBan", suite.banningAgainExtendsTheBan},
		{"AddBansStoresEveryBanWithItsEvent", suite.addBansStoresEveryBanWithItsEvent},
		{"AuditIsNewestFirstWithLimitAndSince", suite.auditIsNewestFirstWithLimitAndSince},
		{"ConcurrentWritesAreAllKept", suite.concurrentWritesAreAllKept},
		{"AuditChainsLinkEveryChange", suite.auditChainsLinkEveryChange},
		{"GuardChangesAreLinkedEventsOfNoApproval", suite.guardChangesAreLinkedEventsOfNoApproval},
		{"LeasesStopAtTheBurstAndSayWhenToRetry", suite.leasesStopAtTheBurstAndSayWhenToRetry},
		{"LeasesAtNoRateSayWhenToRetry", suite.leasesAtNoRateSayWhenToRetry},
		{"LeasesNeverExceedTheBudget", suite.leasesNeverExceedTheBudget},
		{"ReleasesAreClamped", suite.releasesAreClamped},
		{"UsageAddsUpAndKeepsTheLatestLastSeen", suite.usageAddsUpAndKeepsTheLatestLastSeen},
		{"HistoryCountsByHour", suite.historyCountsByHour},
		{"PingAnswers", suite.pingAnswers},
		{"StoreIDIsMadeOnceAndKept", suite.storeIDIsMadeOnceAndKept},
		{"AnchoringInstancesAreKept", suite.anchoringInstancesAreKept},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(x, t) })
	}
}

// suite opens the stores the cases run on.
type suite struct{ open Open }

// fresh opens a fresh, empty store on a clock of its own, at Epoch.
func (x suite) fresh(t *testing.T) (store.Store, *testutil.Clock) {
	c := testutil.NewClock(Epoch)
	return x.open(t, c.Now), c
}

var ctx = context.Background()

// assertChains checks that both of s's audit chains verify and end at the
// head s recorded, after approvalEvents and banEvents events.
func assertChains(t *testing.T, s store.Store, approvalEvents, banEvents int64) {
	t.Helper()
	reports, err := audit.Verify(context.Background(), s)
	testutil.NoError(t, err)
	want := map[string]int64{"approval": approvalEvents, "ban": banEvents}
	for _, r := range reports {
		head, err := s.AuditHead(context.Background(), r.Kind)
		testutil.NoError(t, err)
		if !r.OK || r.Events != want[r.Kind] || r.Last != head || head.Seq != want[r.Kind] {
			t.Fatalf("%s chain: %+v, recorded head %+v; want %d good events ending at the head", r.Kind, r, head, want[r.Kind])
		}
	}
}

func ban(prefix string, at time.Time, ttl time.Duration) approvals.Ban {
	return approvals.Ban{Prefix: netip.MustParsePrefix(prefix), Reason: "manual", CreatedAt: at, ExpiresAt: at.Add(ttl)}
}

func assertBans(t *testing.T, s store.Store, now time.Time, want ...netip.Prefix) {
	t.Helper()
	bans, err := s.Bans(context.Background(), now)
	testutil.NoError(t, err)
	got := map[netip.Prefix]bool{}
	for _, b := range bans {
		got[b.Prefix] = true
	}
	if len(got) != len(want) {
		t.Fatalf("bans at %s = %v, want %v", now.Format(time.TimeOnly), bans, want)
	}
	for _, p := range want {
		if !got[p] {
			t.Fatalf("bans at %s = %v, want %v", now.Format(time.TimeOnly), bans, want)
		}
	}
}

// normalize makes times comparable with DeepEqual after a JSON round trip.
func normalize(a *approvals.Approval) *approvals.Approval {
	c := a.Clone()
	c.NotBefore, c.NotAfter, c.CreatedAt = c.NotBefore.UTC(), c.NotAfter.UTC(), c.CreatedAt.UTC()
	return c
}

func ids(list []*approvals.Approval) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.ID)
	}
	return out
}

func actions(evs []audit.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Action+" "+e.Actor)
	}
	return out
}

// leaseAll asks for a lease of 64 for a, tries times, and returns how many
// admissions were granted in all.
func leaseAll(t *testing.T, s store.Store, a *approvals.Approval, tries int) int {
	t.Helper()
	total := 0
	for range tries {
		l, err := s.Lease(context.Background(), a, 64)
		testutil.NoError(t, err)
		total += l.Granted
	}
	return total
}
