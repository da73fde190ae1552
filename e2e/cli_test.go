package e2e

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

func TestListModulesShowsGatekeeper(t *testing.T) {
	out, err := runBin(t, "list-modules")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"gatekeeper", "http.handlers.gatekeeper", "admin.api.gatekeeper", "http.handlers.reverse_proxy"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + `$`).MatchString(out) {
			t.Errorf("list-modules lacks %s", id)
		}
	}
}

func TestStockSubcommandsWork(t *testing.T) {
	if out, err := runBin(t, "version"); err != nil || !strings.HasPrefix(out, "v2.11") {
		t.Fatalf("version: %v %q", err, out)
	}
	out, err := runBin(t, "adapt", "--config", "../Caddyfile", "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, `"gatekeeper":{"store":{"kind":"file","dir":"./data"}`) || !strings.Contains(out, `"handler":"gatekeeper"`) {
		t.Fatalf("adapt of the example Caddyfile: %v\n%s", err, out)
	}
	if out, err := runBin(t, "validate", "--config", "../Caddyfile", "--adapter", "caddyfile"); err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate of the example Caddyfile: %v\n%s", err, out)
	}
}

func TestValidateNamesTheLineOfABadCaddyfile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/Caddyfile"
	writeFile(t, path, "{\n\tgatekeeper {\n\t\tban_ttl forever\n\t}\n}\n:8080 {\n\trespond ok\n}\n")
	out, err := runBin(t, "validate", "--config", path, "--adapter", "caddyfile")
	if err == nil || !strings.Contains(out, `ban_ttl: \"forever\" is not a positive duration`) || !strings.Contains(out, "Caddyfile:3") {
		t.Fatalf("validate = %v\n%s\nwant an error naming line 3 and ban_ttl", err, out)
	}
}

func TestCLIWalkthrough(t *testing.T) {
	in := start(t, "\t\tstore file ./data")

	out := in.mustCLI(append(addArgs("127.0.0.2"), "--require-token")...)
	if !strings.Contains(out, "registered for tenant acme (active)") || !strings.Contains(out, "test token (shown once") {
		t.Fatalf("approvals add printed:\n%s", out)
	}
	token := regexp.MustCompile(`gkt_[A-Za-z0-9_-]+`).FindString(out)
	if token == "" {
		t.Fatalf("no token in:\n%s", out)
	}

	list := listJSON(t, in)
	if len(list) != 1 || list[0].Tenant != "acme" || list[0].Status != "active" {
		t.Fatalf("approvals list --json = %+v", list)
	}
	id := list[0].ID

	table := in.mustCLI("approvals", "list")
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, id) || !strings.Contains(table, "127.0.0.2/32") {
		t.Fatalf("approvals list table:\n%s", table)
	}
	if strings.Contains(table, token) {
		t.Fatal("the token must be shown only once")
	}
	if out := in.mustCLI("approvals", "list", "--tenant", "globex"); strings.TrimSpace(out) != "no approvals" {
		t.Fatalf("approvals list --tenant globex:\n%s", out)
	}

	show := in.mustCLI("approvals", "show", id)
	for _, want := range []string{"tenant         acme", "0 allowed, 0 rate-limited", "approval ref   SEC-1234", "require token  true"} {
		if !strings.Contains(show, want) {
			t.Errorf("approvals show lacks %q:\n%s", want, show)
		}
	}

	if out := in.mustCLI("approvals", "revoke", id, "--reason", "test finished"); !strings.Contains(out, "revoked") {
		t.Fatalf("approvals revoke printed %q", out)
	}
	if list := listJSON(t, in, "--status", "revoked"); len(list) != 1 || list[0].ID != id {
		t.Fatalf("revoked approval not listed: %+v", list)
	}

	in.mustCLI("bans", "add", "198.51.100.7", "--ttl", "30m", "--reason", "manual test")
	if out := in.mustCLI("bans", "list"); !strings.Contains(out, "198.51.100.7/32") || !strings.Contains(out, "manual test") {
		t.Fatalf("bans list:\n%s", out)
	}
	var bans []map[string]any
	if err := json.Unmarshal([]byte(in.mustCLI("bans", "list", "--json")), &bans); err != nil || len(bans) != 1 {
		t.Fatalf("bans list --json: %v %v", bans, err)
	}
	in.mustCLI("bans", "remove", "198.51.100.7")
	if out := in.mustCLI("bans", "list"); strings.TrimSpace(out) != "no bans" {
		t.Fatalf("bans list after remove:\n%s", out)
	}

	st := in.mustCLI("status")
	if !strings.Contains(st, "file ./data (up)") || !strings.Contains(st, "1 revoked") {
		t.Fatalf("status:\n%s", st)
	}
}

// A failure is one line on stderr, nothing on stdout, and a non-zero exit.
func TestCLIFailuresAreOneLineAndNonZero(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	args := addArgs("127.0.0.2")
	noSource := append(append([]string{}, args[:4]...), args[6:]...)
	cases := []struct {
		name string
		args []string
		says string
	}{
		{"missing source", noSource, `HTTP 400: field "sources": is required`},
		{"broad source", addArgs("10.0.0.0/8"), `HTTP 400: field "sources[0]": 10.0.0.0/8 is broader than /16`},
		{"unknown approval", []string{"approvals", "show", "apr_nope"}, "HTTP 404: approval apr_nope: not found"},
		{"revoke without reason", []string{"approvals", "revoke", "apr_nope"}, "--reason is required"},
		{"bad ban", []string{"bans", "add", "not-an-ip"}, `HTTP 400: field "ip"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := in.cli(tc.args...)
			if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want non-zero, nothing, one line saying %q", code, out, errOut, tc.says)
			}
		})
	}
	out, errOut, code := (&instance{t: t, Admin: testutil.FreeAddr(t)}).cli("status")
	if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("status against nothing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestFileStoreSurvivesARestartOfTheBinary(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI("bans", "add", "198.51.100.7")
	in.stop()
	in.run()
	if list := listJSON(t, in); len(list) != 1 {
		t.Fatalf("after restart: %+v", list)
	}
	if st := in.status(); st.Approvals["active"] != 1 || st.BansActive != 1 {
		t.Fatalf("after restart the snapshot holds %+v", st)
	}
	// SIGKILL too: nothing acknowledged may be lost.
	in.mustCLI(addArgs("127.0.0.3")...)
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	_ = in.cmd.Wait()
	in.cmd = nil
	in.run()
	if list := listJSON(t, in); len(list) != 2 {
		t.Fatalf("after SIGKILL: %d approvals, want 2", len(list))
	}
}

func TestTwoInstancesSharingRedisSeeEachOthersChangesWithinOneSecond(t *testing.T) {
	srv := testredis.Start(t)
	globals := "\t\tstore redis " + srv.URL(0) + "\n\t\tresync_interval 1h"
	a, b := start(t, globals), start(t, globals)

	a.mustCLI(addArgs("127.0.0.2")...)
	took := testutil.WaitFor(t, time.Second, "approval enforced on b", func() bool { return b.status().Approvals["active"] == 1 })
	t.Logf("registration reached instance b in %s", took)

	id := listJSON(t, b)[0].ID
	viaB := from(t, b, "127.0.0.2")
	if r := viaB.get("acme.localhost", "/"); !strings.Contains(r.body, id) {
		t.Fatalf("instance b does not approve the source: %d %q", r.code, r.body)
	}
	a.mustCLI("approvals", "revoke", id, "--reason", "done")
	took = testutil.WaitFor(t, time.Second, "revocation enforced on b", func() bool {
		return !strings.Contains(viaB.get("acme.localhost", "/").body, id)
	})
	t.Logf("revocation reached instance b's requests in %s", took)

	b.mustCLI("bans", "add", "198.51.100.7")
	testutil.WaitFor(t, time.Second, "ban on a", func() bool { return a.status().BansActive == 1 })
	a.mustCLI("bans", "remove", "198.51.100.7")
	testutil.WaitFor(t, time.Second, "lifted ban on b", func() bool { return b.status().BansActive == 0 })
}

func TestRedisStoreSurvivesARestartOfEverything(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{AppendOnly: true})
	in := start(t, "\t\tstore redis "+srv.URL(0))
	in.mustCLI(addArgs("127.0.0.2")...)
	in.stop()
	srv.Kill()
	srv.Restart()
	in.run()
	if list := listJSON(t, in); len(list) != 1 {
		t.Fatalf("after restarting Redis and gatekeeper: %+v", list)
	}
}

func TestReloadKeepsStateAndLeaksNoGoroutines(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	before := goroutines(t, in)
	for i := range 20 {
		out, err := runBin(t, "reload", "--config", in.Config, "--adapter", "caddyfile", "--address", in.Admin, "--force")
		if err != nil {
			t.Fatalf("reload %d: %v\n%s", i, err, out)
		}
		if st := in.status(); st.Approvals["active"] != 1 || !st.Store.Up {
			t.Fatalf("after reload %d: %+v", i, st)
		}
	}
	after := goroutines(t, in)
	t.Logf("goroutines: %d before 20 reloads, %d after", before, after)
	if after > before+5 {
		t.Fatalf("goroutines grew from %d to %d over 20 reloads", before, after)
	}
}

// goroutines reads the process's goroutine count from Caddy's pprof endpoint.
func goroutines(t *testing.T, in *instance) int {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let closed listeners' goroutines end
	resp, err := http.Get("http://" + in.Admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n int
	if _, err := fmt.Sscanf(string(b), "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("pprof: %v in %.200s", err, b)
	}
	return n
}

func TestClientCannotForgeGatekeeperHeaders(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	req, _ := http.NewRequest("GET", "http://"+in.Site+"/", nil)
	req.Host = "acme.localhost"
	req.Header.Set("Gatekeeper-Approval", "apr_forged")
	req.Header.Set("gatekeeper-verdict", "approved")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "tenant=acme approval= token=" {
		t.Fatalf("upstream saw %q; a forged Gatekeeper-Approval must never reach it", b)
	}
}

// The block form of `store redis` reaches a Cluster and a Sentinel-managed
// master through go-redis's UniversalClient.
func TestRedisBlockFormForClusterAndSentinel(t *testing.T) {
	cases := map[string]func(t *testing.T) string{
		"cluster": func(t *testing.T) string {
			return "\t\t\taddrs " + strings.Join(testredis.StartCluster(t), " ")
		},
		"sentinel": func(t *testing.T) string {
			return "\t\t\taddrs " + testredis.StartSentinel(t, "gkmaster") + "\n\t\t\tmaster_name gkmaster"
		},
	}
	for name, block := range cases {
		t.Run(name, func(t *testing.T) {
			globals := "\t\tstore redis {\n" + block(t) + "\n\t\t}"
			a, b := start(t, globals), start(t, globals)
			a.mustCLI(addArgs("127.0.0.2")...)
			testutil.WaitFor(t, time.Second, "approval on the second instance", func() bool { return b.status().Approvals["active"] == 1 })
			if st := a.mustCLI("status"); !strings.Contains(st, "(up)") || !strings.Contains(st, "redis "+name) {
				t.Fatalf("status:\n%s", st)
			}
		})
	}
}

func TestUsageReportForTheCloseOutOfATest(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	id, _ := in.register(func(b map[string]any) { b["max_requests"] = 100 })
	c := from(t, in, "127.0.0.2")
	for range 3 {
		c.get("acme.localhost", "/")
	}
	c.get("globex.localhost", "/")
	var rep struct {
		FirstSeen *time.Time `json:"first_seen"`
		Hours     []struct {
			Hour       time.Time `json:"hour"`
			Allowed    int64     `json:"allowed"`
			OutOfScope int64     `json:"out_of_scope"`
		} `json:"hours"`
	}
	testutil.WaitFor(t, 3*time.Second, "usage in the report", func() bool {
		out := in.mustCLI("approvals", "report", id, "--json")
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report --json: %v\n%s", err, out)
		}
		var allowed, oos int64
		for _, h := range rep.Hours {
			allowed += h.Allowed
			oos += h.OutOfScope
		}
		return allowed == 3 && oos == 1
	})
	if rep.FirstSeen == nil || time.Since(*rep.FirstSeen) > time.Minute {
		t.Fatalf("first_seen = %v", rep.FirstSeen)
	}
	table := in.mustCLI("approvals", "report", id)
	for _, want := range []string{"allowed           3 (3.0% of the budget)", "out of scope      1", "HOUR (UTC)", "ALLOWED"} {
		if !strings.Contains(table, want) {
			t.Errorf("report table lacks %q:\n%s", want, table)
		}
	}
	if _, errOut, code := in.cli("approvals", "report", "apr_nope"); code == 0 || !strings.Contains(errOut, "HTTP 404") {
		t.Fatalf("report of an unknown approval: exit %d, %q", code, errOut)
	}
	// A revoked approval's report says when, why and by whom.
	in.mustCLI("approvals", "revoke", id, "--reason", "customer called it off")
	table = in.mustCLI("approvals", "report", id)
	if !regexp.MustCompile(`revoked +20\d\d-\d\d-\d\dT[0-9:]+Z by admin@127\.0\.0\.1: customer called it off`).MatchString(table) {
		t.Fatalf("a revoked approval's report:\n%s", table)
	}
}

// `gatekeeper validate` provisions the config but never opens the store, so
// it works while a server holds the same file store.
func TestValidateWhileAServerHoldsTheFileStore(t *testing.T) {
	dir := t.TempDir()
	in := start(t, "\t\tstore file "+dir+"/data")
	out, err := runBin(t, "validate", "--config", in.Config, "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate beside a running server: %v\n%s", err, out)
	}
	in.mustCLI(addArgs("127.0.0.2")...)
}

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
	out := in.mustCLI("audit", "export", "--approval", id, "--output", file)
	if !strings.Contains(out, "2 events, chain head seq 3, signed by SHA256:") || !strings.Contains(out, "CONFIDENTIAL") {
		t.Fatalf("audit export printed:\n%s", out)
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

// Caddy's upgrade, add-package and remove-package would replace this build
// with a stock Caddy, without Gatekeeper: they refuse and say why.
func TestCommandsThatWouldReplaceTheBuildRefuse(t *testing.T) {
	for _, cmd := range []string{"upgrade", "add-package", "remove-package"} {
		out, err := runBin(t, cmd, "github.com/example/plugin")
		if err == nil || !strings.Contains(out, "refused") || !strings.Contains(out, "stock Caddy") {
			t.Errorf("gatekeeper %s: %v\n%s", cmd, err, out)
		}
	}
}
