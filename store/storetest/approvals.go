package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Cases about approvals: stored whole, refused twice, revoked and kept, written at once by many.

func (x suite) createdApprovalReadsBackUnchanged(t *testing.T) {
	s, _ := x.fresh(t)
	want := Approval("apr_1", "acme")
	if err := s.CreateApproval(ctx, want, Person("admin"), 0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Approval(ctx, "apr_1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(got), normalize(want)) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	list, err := s.Approvals(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "apr_1" {
		t.Fatalf("Approvals() = %v, %v; want [apr_1]", ids(list), err)
	}
}

func (x suite) duplicateIDIsRefused(t *testing.T) {
	s, _ := x.fresh(t)
	if err := s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("admin"), 0); err != nil {
		t.Fatal(err)
	}
	err := s.CreateApproval(ctx, Approval("apr_1", "other"), Person("admin"), 0)
	if !errors.Is(err, approvals.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	got, _ := s.Approval(ctx, "apr_1")
	if got.Tenant != "acme" {
		t.Fatalf("duplicate create overwrote the first approval: tenant %q", got.Tenant)
	}
}

func (x suite) unknownApprovalIsNotFound(t *testing.T) {
	s, _ := x.fresh(t)
	if _, err := s.Approval(ctx, "nope"); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("Approval(nope): %v, want ErrNotFound", err)
	}
	if _, err := s.RevokeApproval(ctx, "nope", "x", Person("admin"), Epoch); !errors.Is(err, approvals.ErrNotFound) {
		t.Fatalf("RevokeApproval(nope): %v, want ErrNotFound", err)
	}
}

func (x suite) revokedApprovalIsKeptForTheAudit(t *testing.T) {
	s, _ := x.fresh(t)
	if err := s.CreateApproval(ctx, Approval("apr_1", "acme"), Person("admin"), 0); err != nil {
		t.Fatal(err)
	}
	at := Epoch.Add(time.Minute)
	a, err := s.RevokeApproval(ctx, "apr_1", "test finished early", Person("secops"), at)
	if err != nil {
		t.Fatal(err)
	}
	secops := Person("secops")
	if a.RevokedAt == nil || !a.RevokedAt.Equal(at) || a.RevokeReason != "test finished early" || a.RevokedBy != "secops (mtls)" ||
		a.Revoker == nil || *a.Revoker != secops {
		t.Fatalf("revoke returned revoked_at=%v reason=%q by %q (%+v)", a.RevokedAt, a.RevokeReason, a.RevokedBy, a.Revoker)
	}
	got, err := s.Approval(ctx, "apr_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.StatusAt(Epoch) != approvals.StatusRevoked || got.RevokeReason != "test finished early" || got.RevokedBy != "secops (mtls)" ||
		got.Revoker == nil || *got.Revoker != secops {
		t.Fatalf("stored approval: status %s reason %q by %q (%+v), want revoked by secops", got.StatusAt(Epoch), got.RevokeReason, got.RevokedBy, got.Revoker)
	}
	if _, err := s.RevokeApproval(ctx, "apr_1", "again", Person("secops"), at); !errors.Is(err, approvals.ErrAlreadyRevoked) {
		t.Fatalf("second revoke: %v, want ErrAlreadyRevoked", err)
	}
}

func (x suite) concurrentWritesAreAllKept(t *testing.T) {
	s, _ := x.fresh(t)
	for _, err := range concurrently(40, func(i int) error {
		if i%2 == 0 {
			return s.CreateApproval(ctx, Approval(fmt.Sprintf("apr_%d", i/2), "acme"), Person("admin"), 0)
		}
		return s.AddBan(ctx, ban(fmt.Sprintf("198.51.100.%d/32", i/2), Epoch, time.Hour), Person("detect"))
	}) {
		testutil.NoError(t, err)
	}
	list, err := s.Approvals(ctx)
	testutil.NoError(t, err)
	bans, err := s.Bans(ctx, Epoch)
	testutil.NoError(t, err)
	evs, err := s.Audit(ctx, audit.Query{Limit: 1000})
	testutil.NoError(t, err)
	if len(list) != 20 || len(bans) != 20 || len(evs) != 40 {
		t.Fatalf("after 40 concurrent writes: %d approvals, %d bans, %d audit events; want 20, 20, 40", len(list), len(bans), len(evs))
	}
	assertChains(t, s, 20, 20)
}

// admitSeesEveryConcurrentWrite registers ten approvals of 20/s at once
// against a test capacity of 50/s: the check runs atomically with each
// write, so exactly two get in, and the rest are refused with a
// *approvals.CapacityError and leave nothing behind.
func (x suite) admitSeesEveryConcurrentWrite(t *testing.T) {
	s, _ := x.fresh(t)
	admitted := 0
	for _, err := range concurrently(10, func(i int) error {
		a := Approval(fmt.Sprintf("apr_%d", i), "acme")
		a.CreatedAt = Epoch
		return s.CreateApproval(ctx, a, Person("admin"), 50)
	}) {
		var ce *approvals.CapacityError
		switch {
		case err == nil:
			admitted++
		case !errors.As(err, &ce):
			t.Fatalf("refusal is %v (%T), want the check's *approvals.CapacityError", err, err)
		}
	}
	list, err := s.Approvals(ctx)
	testutil.NoError(t, err)
	evs, err := s.Audit(ctx, audit.Query{Limit: 100})
	testutil.NoError(t, err)
	if admitted != 2 || len(list) != 2 || len(evs) != 2 {
		t.Fatalf("10 concurrent registrations of 20/s under 50/s: %d admitted, %d stored, %d audit events; want 2 each", admitted, len(list), len(evs))
	}
}

// exhaustedApprovalHoldsNoCapacity: the store reads the usage the
// capacity check needs itself, so an approval that has admitted all of
// max_requests stops holding test capacity as soon as its usage is
// recorded, and one in its window holds it until then.
func (x suite) exhaustedApprovalHoldsNoCapacity(t *testing.T) {
	s, _ := x.fresh(t)
	full := Approval("apr_full", "acme")
	full.MaxRPS, full.Burst, full.MaxRequests, full.CreatedAt = 50, 50, 10, Epoch
	testutil.NoError(t, s.CreateApproval(ctx, full, Person("admin"), 50))
	next := Approval("apr_next", "globex")
	next.CreatedAt = Epoch
	var ce *approvals.CapacityError
	if err := s.CreateApproval(ctx, next, Person("admin"), 50); !errors.As(err, &ce) {
		t.Fatalf("beside an approval at the full capacity: %v, want a *approvals.CapacityError", err)
	}
	seen := Epoch
	testutil.NoError(t, s.RecordUsage(ctx, full.ID, approvals.Usage{Allowed: 10, LastSeen: &seen}))
	if err := s.CreateApproval(ctx, next, Person("admin"), 50); err != nil {
		t.Fatalf("beside an exhausted approval: %v, want it registered", err)
	}
}

func (x suite) pingAnswers(t *testing.T) {
	s, _ := x.fresh(t)
	testutil.NoError(t, s.Ping(ctx))
}

// concurrently runs fn(0) to fn(n-1) at once and returns their errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = fn(i) })
	}
	wg.Wait()
	return errs
}
