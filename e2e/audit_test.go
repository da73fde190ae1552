package e2e

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// The audit trail end to end: verification, signed exports, a trail that
// went backwards.

// TestAuditVerify: `gatekeeper audit verify` checks the chains through the
// admin API and, with --file, the file store's own log; an edit made behind
// Gatekeeper's back makes it exit non-zero naming the seq.
func TestAuditVerify(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI(addArgs("127.0.0.3")...)
	in.mustCLI("bans", "add", "198.51.100.7", "--reason", "manual test")
	out := in.mustCLI("audit", "verify")
	if !strings.Contains(out, "approval chain  intact  2 events, seq 1–2") || !strings.Contains(out, "ban chain       intact  1 events") {
		t.Fatalf("audit verify printed:\n%s", out)
	}
	if st := in.mustCLI("status"); !regexp.MustCompile(`audit +intact \(approval seq 2 [0-9a-f]{12}…, ban seq 1 `).MatchString(st) {
		t.Fatalf("status after a verification:\n%s", st)
	}

	log := filepath.Join(filepath.Dir(in.Config), "data", "audit.jsonl")
	if out := in.mustCLI("audit", "verify", "--file", log); !strings.Contains(out, "approval chain  intact") {
		t.Fatalf("audit verify --file printed:\n%s", out)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), "127.0.0.3/32", "127.0.0.9/32", 1)
	if edited == string(b) {
		t.Fatal("the second approval's source is not in the log")
	}
	copyOf := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(copyOf, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := in.cli("audit", "verify", "--file", copyOf)
	if code == 0 || !strings.Contains(out, "approval chain  BROKEN at seq 2") ||
		!strings.Contains(errOut, "the approval chain is broken at seq 2: event 2 was altered") {
		t.Fatalf("audit verify of an edited log: exit %d\n%s%s", code, out, errOut)
	}

	// The same edit in the store itself: the admin API's check finds it.
	if err := os.WriteFile(log, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := in.cli("audit", "verify"); code == 0 || !strings.Contains(errOut, "broken at seq 2") {
		t.Fatalf("audit verify after an edit in the store: exit %d %s", code, errOut)
	}
}

// TestAuditExportIsSignedAndVerifies: `gatekeeper audit export` writes one
// approval's evidence, signed with audit_signing_key; `audit verify --file`
// checks it against the public key, and finds an edit.
func TestAuditExportIsSignedAndVerifies(t *testing.T) {
	dir := t.TempDir()
	pub, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(dir, "audit-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubFile := filepath.Join(dir, "audit-key.pub")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600); err != nil {
		t.Fatal(err)
	}

	in := start(t, "\t\tstore file ./data\n\t\taudit_signing_key "+keyFile)
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI(addArgs("127.0.0.3")...)
	id := listJSON(t, in)[0].ID
	in.mustCLI("approvals", "revoke", id, "--reason", "test finished")

	file := filepath.Join(dir, "evidence.json")
	out, errOut, code := in.cli("audit", "export", "--approval", id, "--output", file)
	if code != 0 || out != "" || !strings.Contains(errOut, "2 events, chain head seq 3, signed by SHA256:") || !strings.Contains(errOut, "CONFIDENTIAL") {
		t.Fatalf("audit export --output: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"classification": "CONFIDENTIAL`) || !strings.Contains(string(b), "test finished") {
		t.Fatalf("the export lacks its classification or the revocation:\n%.400s", b)
	}
	if out := in.mustCLI("audit", "verify", "--file", file, "--key", pubFile); !strings.Contains(out, "evidence of "+id+" intact: 2 events") ||
		!strings.Contains(out, "signed by the key given") {
		t.Fatalf("audit verify --file export printed:\n%s", out)
	}
	if out := in.mustCLI("audit", "verify", "--file", file); !strings.Contains(out, "the signature is valid, but the signer is NOT PINNED") {
		t.Fatalf("audit verify --file export without --key printed:\n%s", out)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(b), "test finished", "test complete", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := in.cli("audit", "verify", "--file", file, "--key", pubFile); code == 0 || !strings.Contains(errOut, "the export was altered") {
		t.Fatalf("verify of an edited export: exit %d %s", code, errOut)
	}
	if _, errOut, code := in.cli("audit", "export", "--approval", "apr_unknown"); code == 0 || !strings.Contains(errOut, "HTTP 404") {
		t.Fatalf("export of an unknown approval: exit %d %s", code, errOut)
	}
}

// TestAuditTrailThatWentBackwardsFails: Redis restarted without persistence
// holds empty, perfectly linked chains. The heads seen before are kept
// apart from the store, so `audit verify` fails naming the last known seq,
// audit_intact drops to 0 — and stays so after Gatekeeper itself restarts.
func TestAuditTrailThatWentBackwardsFails(t *testing.T) {
	srv := testredis.Start(t) // --save '' --appendonly no
	in := start(t, "\t\tstore redis "+srv.URL(0))
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI(addArgs("127.0.0.3")...)
	in.mustCLI("bans", "add", "198.51.100.7", "--reason", "manual test")
	if out := in.mustCLI("audit", "verify"); !strings.Contains(out, "approval chain  intact  2 events, seq 1–2") {
		t.Fatalf("audit verify printed:\n%s", out)
	}
	export := filepath.Join(t.TempDir(), "evidence.json")
	in.mustCLI("audit", "export", "--approval", listJSON(t, in)[0].ID, "--output", export)
	srv.Restart() // everything Redis held is gone
	testutil.WaitFor(t, 10*time.Second, "the store back up", func() bool { return in.status().Store.Up })
	in.mustCLI("bans", "add", "198.51.100.8", "--reason", "after the loss") // the ban chain starts again at seq 1

	check := func(when string) {
		t.Helper()
		_, errOut, code := in.cli("audit", "verify")
		if code == 0 || !strings.Contains(errOut, "broken at seq 2") || !strings.Contains(errOut, "went backwards") {
			t.Fatalf("%s: audit verify exit %d: %s; want a failure naming the last known approval seq 2", when, code, errOut)
		}
		if v := in.metric("caddy_gatekeeper_audit_intact"); v != 0 {
			t.Fatalf("%s: caddy_gatekeeper_audit_intact = %v, want 0", when, v)
		}
	}
	check("after Redis lost its data")
	in.stop()
	in.run()
	check("after Gatekeeper restarted too")

	// An instance that never saw the old trail cannot tell by itself; an
	// export from before the loss is an anchor it can be held to.
	fresh := start(t, "\t\tstore redis "+srv.URL(0))
	if out, errOut, code := fresh.cli("audit", "verify"); code != 0 {
		t.Fatalf("a fresh instance: exit %d %s%s (it has nothing to hold the trail to)", code, out, errOut)
	}
	if _, errOut, code := fresh.cli("audit", "verify", "--against", export); code == 0 || !strings.Contains(errOut, "broken at seq 2") {
		t.Fatalf("audit verify --against an export from before the loss: exit %d %s", code, errOut)
	}
}
