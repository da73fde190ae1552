package engine

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/guard"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// guardEvents are the impact guard's events in st's audit, newest first.
func guardEvents(t *testing.T, st *Shared) []audit.Event {
	t.Helper()
	evs, err := st.syncer.Store().Audit(context.Background(), audit.Query{Kind: "approval", Limit: 100_000})
	testutil.NoError(t, err)
	var out []audit.Event
	for _, e := range evs {
		if audit.GuardAction(e.Action) {
			out = append(out, e)
		}
	}
	return out
}

// register registers n approvals of tenant acme, open for the next
// hours, and returns their ids.
func register(t *testing.T, e *Engine, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		req, err := approvals.DecodeRequestBytes([]byte(validApproval()))
		testutil.NoError(t, err)
		a, _, err := e.RegisterApproval(context.Background(), req, approvals.Operator)
		testutil.NoError(t, err)
		ids = append(ids, a.ID)
	}
	return ids
}

// report is approval id's close-out report.
func report(t *testing.T, e *Engine, id string) api.Report {
	t.Helper()
	rep, err := e.Report(context.Background(), id)
	testutil.NoError(t, err)
	return rep
}

// revoke revokes approval id, as admin@127.0.0.1, for reason done.
func revoke(t *testing.T, e *Engine, id string) {
	t.Helper()
	_, err := e.RevokeApproval(context.Background(), id, "done", approvals.Operator)
	testutil.NoError(t, err)
}

// A guard that flaps while many tests run adds a few events to the audit,
// not one an approval a change: the first change at once, then at most one
// every guardNoteEvery, the latest state.
func TestGuardFlappingWritesABoundedNumberOfEvents(t *testing.T) {
	e := startEngine(t, fileStore(t))
	ids := register(t, e, 24)
	st := e.shared
	states := []guard.State{guard.Throttled, guard.Paused, guard.Full, guard.Paused}
	for i := range 400 {
		st.guardNotes.note("", states[i%len(states)], fmt.Sprintf("flap %d", i))
		time.Sleep(2 * time.Millisecond)
	}
	// The state the guard ends in (paused) is recorded within
	// guardNoteEvery: by the last change's event, or by an earlier one
	// when the guard was paused already at the last write (a busy machine
	// that starts the writer late sees it so; no event repeats a state).
	deadline := time.Now().Add(guardNoteEvery + 3*time.Second)
	var evs []audit.Event
	for {
		evs = guardEvents(t, st)
		if len(evs) > 0 && evs[0].Action == audit.ActionApprovalPaused && evs[0].Note == "flap 399" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("400 changes with %d approvals active: %d guard events", len(ids), len(evs))
	if len(evs) == 0 || evs[0].Action != audit.ActionApprovalPaused {
		t.Fatalf("%d guard events, the newest %+v; want the state the guard ended in (paused) recorded", len(evs), evs[:min(1, len(evs))])
	}
	if len(evs) > 3 {
		t.Fatalf("400 changes in about a second wrote %d guard events; want at most 3", len(evs))
	}
	for _, e := range evs {
		if e.Approval != nil || e.Actor != "impact-guard@"+st.instance {
			t.Fatalf("guard event %+v: want one naming no approval, by impact-guard@%s", e, st.instance)
		}
	}
	// Each approval's report lists the changes, which were made while it
	// was active.
	rep := report(t, e, ids[7])
	if len(rep.Yielded) != len(evs) || rep.Yielded[len(evs)-1].Why != evs[0].Note {
		t.Fatalf("report yielded = %+v; want the %d guard events, oldest first", rep.Yielded, len(evs))
	}
}

// The report says who revoked an approval however many events followed,
// and lists the guard's changes while it was in force, not after.
func TestReportFindsTheRevokerAfterManyGuardEvents(t *testing.T) {
	e := startEngine(t, fileStore(t))
	ids := register(t, e, 2)
	db := e.shared.syncer.Store()
	testutil.NoError(t, db.NoteGuard(context.Background(), audit.ActionApprovalThrottled, "other tenants' p90 2.4 × calm", "impact-guard@gk1", ""))
	revoke(t, e, ids[0])
	for i := range 1100 {
		testutil.NoError(t, db.NoteGuard(context.Background(), guardActions[guard.State(i%3)], "flapping", "impact-guard@gk1", ""))
	}
	rep := report(t, e, ids[0])
	if rep.RevokedBy != "operator (local)" || rep.RevokeReason != "done" {
		t.Fatalf("report revoked_by %q reason %q; want operator (local), done", rep.RevokedBy, rep.RevokeReason)
	}
	if len(rep.Yielded) != 1 || rep.Yielded[0].Action != audit.ActionApprovalThrottled || rep.Yielded[0].By != "impact-guard@gk1" {
		t.Fatalf("report yielded %+v; want the one change before the revocation", rep.Yielded)
	}
	// The other approval, still active, has them all.
	rep = report(t, e, ids[1])
	if len(rep.Yielded) != 1101 {
		t.Fatalf("the active approval's report lists %d changes, want 1101", len(rep.Yielded))
	}
}

// A store that stalls (SIGSTOP) while the guard changes state with tests
// running holds up neither the guard's controller nor its stress sharing:
// each change shows in the guard's report within about a second, as
// without the stall; the change reaches the audit once the store answers.
func TestStalledStoreDoesNotHoldUpTheGuard(t *testing.T) {
	srv := testredis.Start(t)
	e := startEngine(t, config.Store{Kind: config.StoreRedis, Redis: config.Redis{URL: srv.URL(0)}})
	t.Cleanup(srv.Resume) // before the engine stops
	register(t, e, 5)
	st := e.shared

	var failing atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	fed := make(chan struct{})
	go func() { // others' answers: 800 a second, failed or not
		defer close(fed)
		every(ctx, 20*time.Millisecond, func() {
			for i := range 16 { // four visitors on each of four tenants
				st.guard.Observe(0, guard.Answer{At: now(), Took: time.Millisecond, Failed: failing.Load(),
					Tenant: fmt.Sprintf("tenant%d", i%4), Source: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})})
			}
		})
	}()
	defer func() { cancel(); <-fed }()

	srv.Pause()
	reach := func(want guard.State) {
		t.Helper()
		start := time.Now()
		for st.guard.Report().State != want {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("the guard did not reach %s within 3s of the change while the store stalled", want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%s after %v", want, time.Since(start).Round(time.Millisecond))
	}
	for _, want := range []guard.State{guard.Paused, guard.Throttled, guard.Paused} {
		failing.Store(want == guard.Paused)
		reach(want)
	}
	srv.Resume()
	deadline := time.Now().Add(guardNoteEvery + 10*time.Second)
	for {
		if evs := guardEvents(t, st); len(evs) > 0 && evs[0].Action == audit.ActionApprovalPaused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the guard's changes never reached the audit once the store answered: %+v", guardEvents(t, st))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An approval revoked before its record kept who revoked it still names
// them in its report: the revocation's event is found by its time.
func TestReportFindsTheRevokerOfAnOlderRecord(t *testing.T) {
	srv := testredis.Start(t)
	e := startEngine(t, config.Store{Kind: config.StoreRedis, Redis: config.Redis{URL: srv.URL(0)}})
	id := register(t, e, 1)[0]
	revoke(t, e, id)
	rdb := srv.Client()
	rec, err := rdb.HGet(context.Background(), "gatekeeper:{state}:approvals", id).Result()
	testutil.NoError(t, err)
	older := strings.Replace(rec, `"revoked_by":"operator (local)",`, "", 1)
	if older == rec {
		t.Fatalf("the revoked record does not keep who revoked it: %s", rec)
	}
	testutil.NoError(t, rdb.HSet(context.Background(), "gatekeeper:{state}:approvals", id, older).Err())
	if rep := report(t, e, id); rep.RevokedBy != "operator (local)" {
		t.Fatalf("report of an older revoked record: revoked_by %q, want operator (local) from its event", rep.RevokedBy)
	}
}

// A change made while no approval is active is not lost: an approval that
// opens later has the guard's state recorded in its window.
func TestGuardChangeBeforeAnApprovalIsRecordedWhenOneOpens(t *testing.T) {
	e := startEngine(t, fileStore(t))
	st := e.shared
	st.guardNotes.note("", guard.Paused, "other tenants' p90 3.0 × calm")
	time.Sleep(1500 * time.Millisecond) // the writer looks once a second
	if evs := guardEvents(t, st); len(evs) != 0 {
		t.Fatalf("recorded with no approval active: %+v", evs)
	}
	register(t, e, 1)
	deadline := time.Now().Add(5 * time.Second)
	for len(guardEvents(t, st)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the guard's pause was never recorded once an approval opened")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs := guardEvents(t, st); evs[0].Action != audit.ActionApprovalPaused {
		t.Errorf("recorded %+v, want the pause", evs[0])
	}
}
