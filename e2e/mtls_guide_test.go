package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// mtlsGuide is the section of docs/operations.md that
// TestMTLSGuideRunsAsWritten runs.
const mtlsGuide = "### Caddy's remote admin, one client certificate per person"

// guidePorts are the ports the guide uses: the local admin endpoint, the
// remote admin endpoint, the site. The test moves each to a free loopback
// port, rewriting ":2019" and so on in the commands; that is the only
// change it makes to them.
var guidePorts = []string{"2019", "2021", "8080"}

// TestMTLSGuideRunsAsWritten runs the ```sh blocks of operations.md's
// remote admin section with bash, in an empty folder that is also HOME,
// with `gatekeeper` on PATH: the blocks before `gatekeeper run` in one
// shell, `gatekeeper run` in the background (the guide's "another
// terminal"), the blocks after it in a second shell once the remote admin
// endpoint completes a handshake (as the reader would start typing); so
// the steps after `gatekeeper run` must not need the earlier steps' shell
// variables, only their files. The
// last command's answer must name alice by her certificate: her email
// address, via mtls, issued by herself, with her certificate's fingerprint.
func TestMTLSGuideRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"openssl", "jq", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the guide needs %s (scripts/ensure-deps.sh installs it): %v", tool, err)
		}
	}
	blocks := guideBlocks(t, mtlsGuide)
	ports := map[string]string{}
	for _, p := range guidePorts {
		_, ports[p], _ = net.SplitHostPort(testutil.FreeAddr(t))
		found := false
		for i := range blocks {
			found = found || strings.Contains(blocks[i], ":"+p)
			blocks[i] = strings.ReplaceAll(blocks[i], ":"+p, ":"+ports[p])
		}
		if !found {
			t.Fatalf("the guide no longer uses port %s; update guidePorts", p)
		}
	}
	runAt := -1
	for i, b := range blocks {
		if strings.HasPrefix(strings.TrimSpace(b), "gatekeeper run ") {
			if runAt >= 0 || strings.Contains(strings.TrimSpace(b), "\n") {
				t.Fatalf("the guide should start gatekeeper in one block of its own:\n%s", b)
			}
			runAt = i
		}
	}
	if runAt < 0 {
		t.Fatalf("no `gatekeeper run` block in %q", mtlsGuide)
	}

	dir, binDir := t.TempDir(), t.TempDir()
	if err := os.Symlink(bin, filepath.Join(binDir, "gatekeeper")); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); name != "PATH" && name != "HOME" && !strings.HasPrefix(name, "XDG_") {
			env = append(env, kv)
		}
	}

	runGuide(t, dir, env, strings.Join(blocks[:runAt], "\n"))

	// `exec` makes the process bash starts gatekeeper itself, so that the
	// test stops it by its pid.
	var log syncBuffer
	server := exec.Command("bash", "-c", "exec "+strings.TrimSpace(blocks[runAt]))
	server.Dir, server.Env, server.Stdout, server.Stderr = dir, env, &log, &log
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testutil.Stop(server, 10*time.Second)
		if t.Failed() {
			t.Logf("gatekeeper run's log:\n%s", tail(log.String(), 4000))
		}
	})
	alice, err := tls.LoadX509KeyPair(filepath.Join(dir, "alice.crt"), filepath.Join(dir, "alice.key"))
	if err != nil {
		t.Fatalf("the guide made no alice.crt and alice.key: %v", err)
	}
	// Readiness only (Caddy's internal CA issues the endpoint's certificate
	// in the background): the guide's curl checks the certificate. The
	// endpoint serves its certificate only to its name, from caddy.json.
	var cfg struct {
		Admin struct {
			Identity struct {
				Identifiers []string `json:"identifiers"`
			} `json:"identity"`
		} `json:"admin"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "caddy.json"))
	if err != nil {
		t.Fatal(err)
	}
	if decode(t, string(b), &cfg); len(cfg.Admin.Identity.Identifiers) == 0 {
		t.Fatal("the guide's caddy.json has no admin.identity.identifiers")
	}
	remote := net.JoinHostPort("127.0.0.1", ports["2021"])
	var lastErr error
	defer func() {
		if t.Failed() && lastErr != nil {
			t.Logf("the remote admin endpoint's last handshake: %v", lastErr)
		}
	}()
	testutil.WaitFor(t, 20*time.Second, "the remote admin endpoint completing a handshake", func() bool {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", remote,
			&tls.Config{InsecureSkipVerify: true, ServerName: cfg.Admin.Identity.Identifiers[0], Certificates: []tls.Certificate{alice}})
		if err != nil {
			lastErr = err
			return false
		}
		defer c.Close()
		lastErr = c.Handshake()
		return lastErr == nil
	})

	out := runGuide(t, dir, env, strings.Join(blocks[runAt+1:], "\n"))
	var answers []json.RawMessage
	for dec := json.NewDecoder(strings.NewReader(out)); ; {
		var v json.RawMessage
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("the guide's output is not JSON: %v\n%s", err, out)
		}
		answers = append(answers, v)
	}
	var filed requestJSON
	if len(answers) < 2 {
		t.Fatalf("the guide printed %d answers after `gatekeeper run`, want alice's registration and the audit's last event:\n%s", len(answers), out)
	}
	if decode(t, string(answers[len(answers)-2]), &filed); filed.Status != "pending" || filed.RequestedBy != "alice@example.com" {
		t.Errorf("alice's registration: %s, want pending, requested by alice@example.com", answers[len(answers)-2])
	}
	var last struct {
		Action string   `json:"action"`
		By     *whoJSON `json:"by"`
	}
	decode(t, string(answers[len(answers)-1]), &last)
	sum := sha256.Sum256(alice.Certificate[0])
	want := whoJSON{ID: "alice@example.com", Via: "mtls", Issuer: "alice", Cert: hex.EncodeToString(sum[:])}
	if last.Action != "approval.requested" || last.By == nil {
		t.Fatalf("the guide's last answer: %s, want alice's approval.requested", answers[len(answers)-1])
	}
	sameWho(t, "the guide's last answer", last.By, want)
}

// guideBlocks answers the ```sh blocks of the section of
// docs/operations.md headed heading, in order.
func guideBlocks(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/operations.md has no section %q", heading)
	}
	for _, next := range []string{"\n## ", "\n### "} {
		if end := strings.Index(section, next); end >= 0 {
			section = section[:end]
		}
	}
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "\n```sh\n")
		if !ok {
			break
		}
		code, after, ok := strings.Cut(rest, "\n```\n")
		if !ok {
			t.Fatalf("a ```sh block of %q is not closed", heading)
		}
		blocks, section = append(blocks, code+"\n"), after
	}
	if len(blocks) == 0 {
		t.Fatalf("%q has no ```sh blocks", heading)
	}
	return blocks
}

// runGuide runs script with bash in dir, stopping at the first failing
// command, within a minute, and answers its standard output.
func runGuide(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-u", "-o", "pipefail", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = dir, env, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("the guide's commands failed: %v\n%s\nstdout:\n%s\nstderr:\n%s", err, script, stdout.String(), stderr.String())
	}
	return stdout.String()
}
