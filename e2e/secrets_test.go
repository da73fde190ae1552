package e2e

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// The shipped systemd unit's start command, with a Redis password and the
// audit signing key in the environment as docs/operations.md puts them,
// prints neither: not at start, not while serving, not at stop.
func TestShippedStartPrintsNoSecrets(t *testing.T) {
	args := execStart(t, "../deploy/systemd/gatekeeper.service")
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	password := "pw-" + hex.EncodeToString(secret)
	rs := testredis.StartWith(t, testredis.Options{Extra: []string{"--requirepass", password}})
	_, key, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	dir := t.TempDir()
	admin, site := testutil.FreeAddr(t), testutil.FreeAddr(t)
	_, port, _ := strings.Cut(site, ":")
	config := filepath.Join(dir, "Caddyfile")
	writeFile(t, config, "{\n\tadmin "+admin+"\n\tdefault_bind 127.0.0.1\n\tgatekeeper {\n\t\tstore redis {\n\t\t\taddrs "+rs.Addr+
		"\n\t\t\tpassword {env.REDIS_PASSWORD}\n\t\t}\n\t\taudit_signing_key {env.GATEKEEPER_AUDIT_KEY}\n\t}\n}\nhttp://:"+port+
		" {\n\tgatekeeper\n\trespond ok\n}\n")
	for i, a := range args {
		if a == "/etc/gatekeeper/Caddyfile" {
			args[i] = config
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir,
		"REDIS_PASSWORD="+password, "GATEKEEPER_AUDIT_KEY="+keyPEM)
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 15*time.Second, "the store to be up", func() bool {
		resp, err := http.Get("http://" + admin + "/gatekeeper/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	for _, path := range []string{"/", "/.env", "/gatekeeper/approvals"} {
		if resp, err := http.Get("http://" + site + path); err == nil {
			resp.Body.Close()
		}
	}
	testutil.Stop(cmd, 10*time.Second)
	printed, _ := os.ReadFile(out.Name())
	if !strings.Contains(string(printed), "gatekeeper store ready") {
		t.Fatalf("the server did not start with the Redis store; output:\n%s", tail(string(printed), 3000))
	}
	keyBody := strings.Split(keyPEM, "\n")[1]
	for what, s := range map[string]string{"the Redis password": password, "the signing key": keyBody} {
		if strings.Contains(string(printed), s) {
			t.Errorf("%s is in the server's output", what)
		}
	}
}

// execStart is the arguments of a unit's ExecStart, after the binary.
func execStart(t *testing.T, unit string) []string {
	f, err := os.Open(unit)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if cmd, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			return strings.Fields(cmd)[1:]
		}
	}
	t.Fatalf("%s has no ExecStart", unit)
	return nil
}
