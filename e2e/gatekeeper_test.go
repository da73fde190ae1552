// Package e2e runs the built gatekeeper binary as users do: real processes,
// real Caddyfiles, the real CLI and a real redis-server.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

var bin string

// TestMain uses the binary `make test` built (GATEKEEPER_BIN), or builds one.
func TestMain(m *testing.M) {
	bin = os.Getenv("GATEKEEPER_BIN")
	if bin == "" {
		dir, err := os.MkdirTemp("", "gatekeeper-e2e")
		if err != nil {
			panic(err)
		}
		bin = filepath.Join(dir, "gatekeeper")
		build := exec.Command("go", "build", "-o", bin, "../cmd/gatekeeper")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building gatekeeper:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// instance is one running gatekeeper process.
type instance struct {
	t      testing.TB
	Admin  string
	Site   string
	Config string
	cmd    *exec.Cmd
	log    *os.File
}

// echoSite is the default site body: the tenant is the first label of the
// host (acme.localhost is acme), and the "upstream" answers with what
// reached it.
const echoSite = `
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	respond "tenant={http.gatekeeper.tenant} approval={http.request.header.Gatekeeper-Approval} token={http.request.header.Gatekeeper-Test-Token}"`

// start runs gatekeeper with the global options in globals and the echo site.
func start(t *testing.T, globals string) *instance { return startSite(t, globals, echoSite) }

// startSite runs gatekeeper with the global options in globals and one site,
// for every host, on a free loopback port, with the body site.
func startSite(t testing.TB, globals, site string) *instance {
	t.Helper()
	return startSites(t, globals, site, "")
}

// startSites is startSite with more site blocks (extra) after the first.
func startSites(t testing.TB, globals, site, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, Admin: testutil.FreeAddr(t), Site: testutil.FreeAddr(t), Config: filepath.Join(dir, "Caddyfile")}
	_, port, _ := net.SplitHostPort(in.Site)
	caddyfile := fmt.Sprintf(`{
	admin %s
	default_bind 127.0.0.1
	metrics
	gatekeeper {
%s
	}
}

http://:%s {
%s
}
%s`, in.Admin, globals, port, site, extra)
	if err := os.WriteFile(in.Config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	in.run()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) run() {
	in.t.Helper()
	var err error
	in.log, err = os.CreateTemp(in.t.TempDir(), "gatekeeper-*.log")
	if err != nil {
		in.t.Fatal(err)
	}
	in.cmd = exec.Command(bin, "run", "--config", in.Config, "--adapter", "caddyfile")
	in.cmd.Dir = filepath.Dir(in.Config)
	// Keep Caddy's autosave and certificate storage out of the user's home.
	in.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+in.cmd.Dir, "XDG_DATA_HOME="+in.cmd.Dir)
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + in.Admin + "/gatekeeper/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			in.stop()
			b, _ := os.ReadFile(in.log.Name())
			in.t.Fatalf("gatekeeper did not come up within 15s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logText is what the process wrote to its standard output and error.
func (in *instance) logText() string {
	b, _ := os.ReadFile(in.log.Name())
	return string(b)
}

func (in *instance) stop() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	testutil.Stop(in.cmd, 10*time.Second)
	in.cmd = nil
	if in.t.Failed() {
		b, _ := os.ReadFile(in.log.Name())
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `"msg":"received request"`) {
				keep = append(keep, line)
			}
		}
		in.t.Logf("gatekeeper log:\n%s", tail(strings.Join(keep, "\n"), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cli runs the gatekeeper CLI against in's admin API.
func (in *instance) cli(args ...string) (stdout, stderr string, code int) {
	in.t.Helper()
	cmd := exec.Command(bin, append(args, "--address", in.Admin)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func (in *instance) mustCLI(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.cli(args...)
	if code != 0 {
		in.t.Fatalf("gatekeeper %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// get fetches an admin API path and decodes its JSON into out.
func (in *instance) get(path string, out any) {
	in.t.Helper()
	resp, err := http.Get("http://" + in.Admin + path)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		in.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

type status struct {
	Store struct {
		Up   bool   `json:"up"`
		Kind string `json:"kind"`
	} `json:"store"`
	Approvals  map[string]int `json:"approvals"`
	BansActive int            `json:"bans_active"`
}

func (in *instance) status() status {
	var st status
	in.get("/gatekeeper/status", &st)
	return st
}

// addArgs registers an approval for tenant acme, active now, from source.
func addArgs(source string) []string {
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	return []string{"approvals", "add", "--tenant", "acme", "--source", source,
		"--from", from.Format(time.RFC3339), "--until", from.Add(4 * time.Hour).Format(time.RFC3339),
		"--rps", "20", "--burst", "40", "--max-requests", "100000",
		"--requested-by", "ciso@acme.example", "--approved-by", "secops@customernode", "--ref", "SEC-1234"}
}

type approvalJSON struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Status string `json:"status"`
	Usage  struct {
		Allowed         int `json:"allowed"`
		RateLimited     int `json:"rate_limited"`
		BudgetExhausted int `json:"budget_exhausted"`
		OutOfScope      int `json:"out_of_scope"`
	} `json:"usage"`
}

func listJSON(t *testing.T, in *instance, args ...string) []approvalJSON {
	t.Helper()
	var list []approvalJSON
	out := in.mustCLI(append([]string{"approvals", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("approvals list --json printed %q: %v", out, err)
	}
	return list
}

// runBin runs the binary with args and returns its combined output.
func runBin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
