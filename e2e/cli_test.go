package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

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
	if err == nil || !strings.Contains(out, `ban_ttl: \"forever\" is not a duration such as 1h or 30m`) || !strings.Contains(out, "Caddyfile:3") {
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
	if !strings.Contains(st, "file ./data (up)") || !strings.Contains(st, "1 revoked") ||
		!regexp.MustCompile(`impact guard +tests full at 100% of their rate`).MatchString(st) {
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
		{"missing source", noSource, `HTTP 400: --source: is required`},
		{"broad source", addArgs("10.0.0.0/8"), `HTTP 400: --source (the 1st given): 10.0.0.0/8 is broader than /16`},
		{"window backwards", append(addArgs("127.0.0.2"), "--until", "2020-01-01T00:00:00Z"), `HTTP 400: --until: must be after --from`},
		{"rate", append(addArgs("127.0.0.2"), "--rps", "0.00001"), `HTTP 400: --rps: must be a positive number`},
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
	nothing := testutil.FreeAddr(t)
	out, errOut, code := (&instance{t: t, Admin: nothing}).cli("status")
	if code == 0 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "connection refused") ||
		!strings.Contains(errOut, "is Gatekeeper running? the admin endpoint is "+nothing+"; give --address or --config") {
		t.Fatalf("status against nothing: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// With --config, the CLI reads the admin address from the config without
// Caddy's JSON log lines: an answer on stdout and nothing on stderr, or one
// line on stderr, as the README promises.
func TestCLIWithConfigPrintsNoCaddyLog(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	withConfig := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, append(args, "--config", in.Config, "--adapter", "caddyfile")...)
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	if out, errOut, code := withConfig("status"); code != 0 || errOut != "" || !strings.Contains(out, "file ./data (up)") {
		t.Fatalf("status --config: exit %d, stdout %q, stderr %q; want the status and nothing on stderr", code, out, errOut)
	}
	if out, errOut, code := withConfig("approvals", "show", "apr_nope"); code == 0 || out != "" ||
		strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "gatekeeper approvals show: HTTP 404") {
		t.Fatalf("approvals show --config of an unknown id: exit %d, stdout %q, stderr %q; want one line", code, out, errOut)
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
	if !regexp.MustCompile(`revoked +20\d\d-\d\d-\d\dT[0-9:]+Z by operator \(local\): customer called it off`).MatchString(table) {
		t.Fatalf("a revoked approval's report:\n%s", table)
	}
}

// With the impact guard off and test_capacity at 1/s, a test approved at
// 1/s with a burst of 10 that sends 10 requests at once gets 1 through and 9
// answered 429 with Retry-After: test_capacity held them back, not the
// guard, and the close-out report, the usage, approved_requests_total's
// result and the access log's reason say so (issue 33: the report blamed
// the impact guard).
func TestReportSaysTestCapacityHeldTheTestBack(t *testing.T) {
	logFile := t.TempDir() + "/access.log"
	in := startSite(t, "\t\tstore file ./data\n\t\timpact_guard off\n\t\ttest_capacity 1/s", echoSite+`
	log {
		output file `+logFile+`
	}`)
	id, _ := in.register(func(b map[string]any) { b["max_rps"], b["burst"] = 1, 10 })
	c := from(t, in, "127.0.0.2")
	codes := map[int]int{}
	for range 10 {
		a := c.get("acme.localhost", "/")
		codes[a.code]++
		if a.code == 429 && a.header.Get("Retry-After") == "" {
			t.Error("a 429 without Retry-After")
		}
	}
	if codes[200] != 1 || codes[429] != 9 {
		t.Fatalf("answers %v: want one 200 and nine 429 under test_capacity 1/s", codes)
	}
	var rep struct {
		Usage struct {
			PlatformBusy int64 `json:"platform_busy"`
			CapacityFull int64 `json:"capacity_full"`
		} `json:"usage"`
		Hours []struct {
			PlatformBusy int64 `json:"platform_busy"`
			CapacityFull int64 `json:"capacity_full"`
		} `json:"hours"`
	}
	testutil.WaitFor(t, 3*time.Second, "the refusals in the report", func() bool {
		out := in.mustCLI("approvals", "report", id, "--json")
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("report --json: %v\n%s", err, out)
		}
		return rep.Usage.CapacityFull+rep.Usage.PlatformBusy >= 9
	})
	if rep.Usage.CapacityFull != 9 || rep.Usage.PlatformBusy != 0 || len(rep.Hours) != 1 || rep.Hours[0].CapacityFull != 9 || rep.Hours[0].PlatformBusy != 0 {
		t.Errorf("report usage %+v, hours %+v: want capacity_full 9 and platform_busy 0, in all and in the hour", rep.Usage, rep.Hours)
	}
	table := in.mustCLI("approvals", "report", id)
	if !regexp.MustCompile(`held back by test_capacity +9 \(capacity_full\)`).MatchString(table) || strings.Contains(table, "impact guard") {
		t.Errorf("the report should say test_capacity held back 9 and not name the impact guard:\n%s", table)
	}
	if show := in.mustCLI("approvals", "show", id); !strings.Contains(show, "9 held back by test_capacity") {
		t.Errorf("approvals show does not say what held the test back:\n%s", show)
	}
	for series, want := range map[string]float64{
		`caddy_gatekeeper_approved_requests_total{result="capacity_full",tenant="acme"}`: 9,
		`caddy_gatekeeper_blocked_total{reason="capacity_full",scanner="none"}`:          9,
		`caddy_gatekeeper_blocked_total{reason="platform_busy",scanner="none"}`:          0,
	} {
		if got := in.metric(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	reasons := map[any]int{}
	testutil.WaitFor(t, 2*time.Second, "ten access log entries", func() bool {
		b, _ := os.ReadFile(logFile)
		clear(reasons)
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var e struct{ Gatekeeper map[string]any }
			if json.Unmarshal([]byte(line), &e) == nil {
				reasons[e.Gatekeeper["reason"]]++
			}
		}
		return reasons[""]+reasons["capacity_full"]+reasons["platform_busy"] >= 10
	})
	if reasons["capacity_full"] != 9 || reasons["platform_busy"] != 0 {
		t.Errorf("access log reasons %v: want capacity_full 9 times and platform_busy never", reasons)
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

// A file the config names that cannot be loaded (a GeoIP database, the
// audit signing key) fails validate with the option's name.
func TestFilesThatCannotBeLoadedFailValidationNamingTheOption(t *testing.T) {
	dir := t.TempDir()
	corrupt := filepath.Join(dir, "corrupt.mmdb")
	writeFile(t, corrupt, "not a database")
	for option, says := range map[string]string{
		"geoip_asn " + filepath.Join(dir, "missing.mmdb"):        "geoip_asn: " + filepath.Join(dir, "missing.mmdb"),
		"geoip_asn " + corrupt:                                   "geoip_asn: " + corrupt + ": cannot be read as a MaxMind DB file",
		"geoip_country " + corrupt:                               "geoip_country: " + corrupt + ": cannot be read as a MaxMind DB file",
		"audit_signing_key " + filepath.Join(dir, "missing.pem"): "audit_signing_key: open " + filepath.Join(dir, "missing.pem"),
		"audit_signing_key " + corrupt:                           "audit_signing_key: no PEM block",
	} {
		path := filepath.Join(dir, "Caddyfile")
		writeFile(t, path, "{\n\tgatekeeper {\n\t\tstore file "+dir+"/data\n\t\t"+option+"\n\t}\n}\n:8080 {\n\trespond ok\n}\n")
		out, err := runBin(t, "validate", "--config", path, "--adapter", "caddyfile")
		if err == nil || !strings.Contains(out, says) || strings.Contains(out, "panic") {
			t.Errorf("validate with %s: %v\n%s\nwant a clear error saying %q", option, err, out, says)
		}
	}
}

// TestAuditExportGoesToStandardOutput: the export is printed, so the
// shell's redirection is where it lands, and what lands there verifies;
// --output writes a file only its owner can read, says so on stderr, and
// replaces an existing file only with --force.
func TestAuditExportGoesToStandardOutput(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	id := listJSON(t, in)[0].ID
	dir := t.TempDir()

	pipeline := exec.Command("sh", "-c", `"$GK" audit export --approval "$ID" --address "$ADMIN" > e.json && "$GK" audit verify --file e.json`)
	pipeline.Dir = dir
	pipeline.Env = append(os.Environ(), "GK="+bin, "ID="+id, "ADMIN="+in.Admin)
	out, err := pipeline.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "evidence of "+id+" intact: 1 events") {
		t.Fatalf("audit export > e.json && audit verify --file e.json: %v\n%s", err, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the export wrote files of its own beside e.json: %v", entries)
	}

	file := filepath.Join(dir, "evidence.json")
	stdout, stderr, code := in.cli("audit", "export", "--approval", id, "--output", file)
	if code != 0 || stdout != "" || !strings.Contains(stderr, "evidence of "+id+" written to "+file) || !strings.Contains(stderr, "CONFIDENTIAL") {
		t.Fatalf("audit export --output: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the export's file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if err := os.WriteFile(file, []byte("someone else's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = in.cli("audit", "export", "--approval", id, "--output", file)
	if b, _ := os.ReadFile(file); code == 0 || stdout != "" || !strings.Contains(stderr, "exists; give another file, or --force") || string(b) != "someone else's\n" {
		t.Fatalf("audit export --output onto an existing file: exit %d, stderr %q, file now %.60q", code, stderr, b)
	}
	in.mustCLI("audit", "export", "--approval", id, "--output", file, "--force")
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the overwritten export's file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	if out := in.mustCLI("audit", "verify", "--file", file); !strings.Contains(out, "evidence of "+id+" intact") {
		t.Fatalf("audit verify --file of the --force export:\n%s", out)
	}
}
