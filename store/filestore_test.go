package store_test

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
	"github.com/customernode/gatekeeper/store/storetest"
)

var ctx = context.Background()

func openFile(t *testing.T, dir string) *store.FileStore {
	t.Helper()
	s, err := store.OpenFileStore(dir, func() time.Time { return storetest.Epoch })
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFileStoreSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_2", "acme"), storetest.Person("alice"), 0))
	_, err := s.RevokeApproval(ctx, "apr_2", "done", storetest.Person("bob"), storetest.Epoch)
	testutil.NoError(t, err)
	ban := approvals.Ban{Prefix: netip.MustParsePrefix("198.51.100.7/32"), Reason: "scanner", CreatedAt: storetest.Epoch, ExpiresAt: storetest.Epoch.Add(time.Hour)}
	testutil.NoError(t, s.AddBan(ctx, ban, storetest.Person("detect")))
	testutil.NoError(t, s.Close())

	s = openFile(t, dir)
	defer s.Close()
	a2, err := s.Approval(ctx, "apr_2")
	testutil.NoError(t, err)
	if a2.StatusAt(storetest.Epoch) != approvals.StatusRevoked {
		t.Fatalf("apr_2 after restart: %s, want revoked", a2.StatusAt(storetest.Epoch))
	}
	if _, err := s.Approval(ctx, "apr_1"); err != nil {
		t.Fatalf("apr_1 lost across restart: %v", err)
	}
	bans, err := s.Bans(ctx, storetest.Epoch)
	testutil.NoError(t, err)
	if len(bans) != 1 || bans[0].Prefix != ban.Prefix {
		t.Fatalf("bans after restart = %v", bans)
	}
	evs, err := s.Audit(ctx, audit.Query{Limit: 10})
	testutil.NoError(t, err)
	if len(evs) != 4 {
		t.Fatalf("audit after restart has %d events, want 4", len(evs))
	}
}

// TestFileStoreReplaysEveryMoveOfARequest: state.json is put back as it
// was before the requests were reviewed, denied, lapsed and handed their
// token, as a crash after the audit log's fsync and before the checkpoint
// leaves it; opening again rebuilds each request from its events.
func TestFileStoreReplaysEveryMoveOfARequest(t *testing.T) {
	dir := t.TempDir()
	alice, bob, carol := storetest.Person("alice"), storetest.Person("bob"), storetest.Person("carol")
	s := openFile(t, dir)
	for _, id := range []string{"apr_1", "apr_2", "apr_3"} {
		testutil.NoError(t, s.CreateApproval(ctx, storetest.Request(id, "acme", alice, 2), alice, 0))
	}
	testutil.NoError(t, s.Close())
	before, err := os.ReadFile(filepath.Join(dir, "state.json"))
	testutil.NoError(t, err)

	s = openFile(t, dir)
	review := func(id string, by approvals.Identity, decision string) {
		t.Helper()
		a, err := s.Approval(ctx, id)
		testutil.NoError(t, err)
		r := &approvals.Review{By: by, Decision: decision, ApprovalRef: "SEC-77", Digest: a.Digest()}
		_, _, err = s.MoveApproval(ctx, id, approvals.Move{Review: r}, 0, storetest.Epoch)
		testutil.NoError(t, err)
	}
	review("apr_1", bob, approvals.DecisionApprove)
	review("apr_1", carol, approvals.DecisionApprove)
	_, _, err = s.MoveApproval(ctx, "apr_1", approvals.Move{TokenHash: strings.Repeat("ab", 32)}, 0, storetest.Epoch)
	testutil.NoError(t, err)
	review("apr_2", bob, approvals.DecisionDeny)
	_, _, err = s.MoveApproval(ctx, "apr_3", approvals.Move{Lapse: true}, 0, storetest.Epoch.Add(2*time.Hour))
	testutil.NoError(t, err)
	want, err := s.Approvals(ctx)
	testutil.NoError(t, err)
	testutil.NoError(t, s.Close())

	testutil.NoError(t, os.WriteFile(filepath.Join(dir, "state.json"), before, 0o600))
	s = openFile(t, dir)
	defer s.Close()
	for _, w := range want {
		got, err := s.Approval(ctx, w.ID)
		testutil.NoError(t, err)
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("%s replayed from the audit log:\n%+v\nwant, as it was stored:\n%+v", w.ID, got, w)
		}
	}
	at := storetest.Epoch.Add(2 * time.Hour)
	for id, st := range map[string]approvals.Status{"apr_1": approvals.StatusActive, "apr_2": approvals.StatusDenied, "apr_3": approvals.StatusLapsed} {
		if got, _ := s.Approval(ctx, id); got.StatusAt(at) != st {
			t.Fatalf("%s after replay: %s, want %s", id, got.StatusAt(at), st)
		}
	}
}

func TestFileStoreServesOneProcess(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	defer s.Close()
	_, err := store.OpenFileStore(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "another process holds") {
		t.Fatalf("second open of %s: %v, want a lock error", dir, err)
	}
}

func TestTornAuditLineIsDroppedOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.NoError(t, s.Close())
	f, err := os.OpenFile(filepath.Join(dir, "audit.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	testutil.NoError(t, err)
	_, err = f.WriteString(`{"id":"2","action":"approval.created","approval":{"id":"apr_2"`)
	testutil.NoError(t, err)
	f.Close()

	s = openFile(t, dir)
	defer s.Close()
	if _, err := s.Approval(ctx, "apr_2"); err == nil {
		t.Fatal("a torn, unacknowledged write was applied")
	}
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_3", "acme"), storetest.Person("alice"), 0))
	evs, err := s.Audit(ctx, audit.Query{Limit: 10})
	testutil.NoError(t, err)
	if len(evs) != 2 || evs[0].Approval.ID != "apr_3" || evs[0].ID != "2" {
		t.Fatalf("audit after recovery = %+v", evs)
	}
}

func TestCorruptAuditLineNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	s := openFile(t, dir)
	testutil.NoError(t, s.CreateApproval(ctx, storetest.Approval("apr_1", "acme"), storetest.Person("alice"), 0))
	testutil.NoError(t, s.Close())
	path := filepath.Join(dir, "audit.jsonl")
	b, _ := os.ReadFile(path)
	testutil.NoError(t, os.WriteFile(path, append([]byte("not json\n"), b...), 0o600))
	_, err := store.OpenFileStore(dir, nil)
	if err == nil || !strings.Contains(err.Error(), "audit.jsonl line 1") {
		t.Fatalf("open with a corrupt audit log: %v, want it to name audit.jsonl line 1", err)
	}
}

// The crash tests run this test binary again as a child that writes and then
// dies at a chosen point; the parent reopens the directory and checks.
func TestMain(m *testing.M) {
	if dir := os.Getenv("GK_CRASH_DIR"); dir != "" {
		crashChild(dir, os.Getenv("GK_CRASH_STEP"))
		return
	}
	os.Exit(m.Run())
}

func crashChild(dir, step string) {
	s, err := store.OpenFileStore(dir, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := 1; ; i++ {
		if step != "" && i == 2 {
			store.SetTestHook(func(at string) {
				if at == step {
					os.Exit(3)
				}
			})
		}
		if err := s.CreateApproval(ctx, storetest.Approval(fmt.Sprintf("apr_%d", i), "acme"), storetest.Person("child"), 0); err != nil {
			fmt.Println("create:", err)
			os.Exit(2)
		}
		fmt.Printf("ack apr_%d\n", i) // acknowledged: must survive
		if step != "" && i == 2 {
			os.Exit(4) // the hook should have fired
		}
	}
}

func child(dir, step string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GK_CRASH_DIR="+dir, "GK_CRASH_STEP="+step)
	return cmd
}

func TestCrashAtEveryWriteStepLosesNothingAcknowledged(t *testing.T) {
	for _, step := range []string{"audit-written", "audit-synced", "state-written", "state-renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			out, err := child(dir, step).CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 {
				t.Fatalf("child did not crash at %s: %v\n%s", step, err, out)
			}
			if !strings.Contains(string(out), "ack apr_1") || strings.Contains(string(out), "ack apr_2") {
				t.Fatalf("child output: %s", out)
			}
			s := openFile(t, dir)
			defer s.Close()
			if _, err := s.Approval(ctx, "apr_1"); err != nil {
				t.Fatalf("acknowledged apr_1 lost after a crash at %s: %v", step, err)
			}
			// apr_2 was never acknowledged: it may be there (its audit line
			// reached the file) or not, but never half-written.
			a2, err := s.Approval(ctx, "apr_2")
			if err == nil && (a2.Tenant != "acme" || len(a2.Sources) != 2) {
				t.Fatalf("apr_2 is half-written: %+v", a2)
			}
			if step != "audit-written" && err != nil {
				t.Fatalf("apr_2's audit line was fsynced before the crash at %s, so it is committed: %v", step, err)
			}
			list, err := s.Approvals(ctx)
			testutil.NoError(t, err)
			evs, err := s.Audit(ctx, audit.Query{Limit: 10})
			testutil.NoError(t, err)
			if len(evs) != len(list) {
				t.Fatalf("%d approvals but %d audit events", len(list), len(evs))
			}
		})
	}
}

func TestKillDuringWritesLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	cmd := child(dir, "")
	stdout, err := cmd.StdoutPipe()
	testutil.NoError(t, err)
	testutil.NoError(t, cmd.Start())
	var acked []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(acked) < 200 {
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, id)
		}
	}
	testutil.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	for sc.Scan() { // acks printed before the kill landed count too
		if id, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, id)
		}
	}
	_ = cmd.Wait()
	if len(acked) < 200 {
		t.Fatalf("child acknowledged only %d writes", len(acked))
	}
	s := openFile(t, dir)
	defer s.Close()
	for _, id := range acked {
		if _, err := s.Approval(ctx, id); err != nil {
			t.Fatalf("acknowledged %s lost after SIGKILL: %v", id, err)
		}
	}
}
