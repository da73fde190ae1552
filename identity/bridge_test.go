package identity_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/identity"
)

func bridgeRequest(key, who string) http.Header {
	h := http.Header{}
	if key != "" {
		h.Set(identity.BridgeKeyHeader, key)
	}
	if who != "" {
		h.Set(identity.OnBehalfOfHeader, who)
	}
	return h
}

func TestOnlyTheBridgeSaysWhomItActsFor(t *testing.T) {
	key, err := identity.LoadOrCreateBridgeKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	twoKeys := bridgeRequest(key, "alice")
	twoKeys.Add(identity.BridgeKeyHeader, "wrong")
	twoNames := bridgeRequest(key, "alice")
	twoNames.Add(identity.OnBehalfOfHeader, "bob")
	for name, c := range map[string]struct {
		h   http.Header
		key string
	}{
		"no key":                        {bridgeRequest("", "alice"), key},
		"a wrong key":                   {bridgeRequest(strings.Repeat("0", len(key)), "alice"), key},
		"the key's prefix":              {bridgeRequest(key[:32], "alice"), key},
		"no key configured, none given": {bridgeRequest("", "alice"), ""},
		"two keys":                      {twoKeys, key},
		"two names":                     {twoNames, key},
		"no name":                       {bridgeRequest(key, ""), key},
		"a bidi override in the name":   {bridgeRequest(key, "\u202eecila"), key},
		"a control character":           {bridgeRequest(key, "alice\x7f"), key},
		"an over-long name":             {bridgeRequest(key, strings.Repeat("a", approvals.MaxIdentityLen+1)), key},
	} {
		if id, ok := identity.FromBridge(c.h, c.key, "build-7"); ok {
			t.Errorf("%s: the caller passed for the bridge, as %+v", name, id)
		}
	}
	id, ok := identity.FromBridge(bridgeRequest(key, "alice"), key, "build-7")
	if want := (approvals.Identity{ID: "alice", Via: approvals.ViaBridge, Issuer: "build-7"}); !ok || id != want {
		t.Fatalf("the bridge: %+v, %v; want %+v", id, ok, want)
	}
}

func TestBridgeKeyOthersCouldReadIsRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := identity.LoadOrCreateBridgeKey(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, identity.BridgeKeyFile)
	os.Chmod(path, 0o640)
	if _, err := identity.LoadOrCreateBridgeKey(dir); err == nil || !strings.Contains(err.Error(), "0640") {
		t.Fatalf("a group-readable key file: %v", err)
	}

	linked := t.TempDir()
	os.Chmod(path, 0o600)
	if err := os.Symlink(path, filepath.Join(linked, identity.BridgeKeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.LoadOrCreateBridgeKey(linked); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("a key file that is a link: %v", err)
	}

	open := filepath.Join(t.TempDir(), "gatekeeper")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777) // past the umask
	if _, err := identity.LoadOrCreateBridgeKey(open); err == nil || !strings.Contains(err.Error(), "0777") {
		t.Fatalf("a directory anyone can write to: %v", err)
	}

	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, identity.BridgeKeyFile), []byte("short\n"), 0o600)
	for name, f := range map[string]func(string) (string, error){"LoadOrCreateBridgeKey": identity.LoadOrCreateBridgeKey, "ReadBridgeKey": identity.ReadBridgeKey} {
		if _, err := f(bad); err == nil || !strings.Contains(err.Error(), "hex digits") {
			t.Errorf("%s of a damaged key: %v", name, err)
		}
	}
}

func TestBridgeKeyIsMadeOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "caddy", "gatekeeper")
	if _, err := identity.ReadBridgeKey(dir); err == nil {
		t.Fatal("read a key before Caddy made one")
	}
	var wg sync.WaitGroup
	keys := make([]string, 16)
	errs := make([]error, 16)
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = identity.LoadOrCreateBridgeKey(dir) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil || keys[i] != keys[0] {
			t.Fatalf("starts at once: %q, %v; the first got %q", keys[i], errs[i], keys[0])
		}
	}
	if len(keys[0]) != 64 {
		t.Fatalf("key %q: want 64 hex digits", keys[0])
	}
	fi, err := os.Stat(filepath.Join(dir, identity.BridgeKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("left behind in %s: %v", dir, entries)
	}
	again, err := identity.LoadOrCreateBridgeKey(dir)
	read, rerr := identity.ReadBridgeKey(dir)
	if err != nil || rerr != nil || again != keys[0] || read != keys[0] {
		t.Fatalf("after a restart %q (%v), the CLI reads %q (%v); want %q", again, err, read, rerr, keys[0])
	}
}
