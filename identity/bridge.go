package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/customernode/gatekeeper/approvals"
)

// Headers the console bridge sets on its requests to the admin API.
// Gatekeeper strips every header starting with "Gatekeeper-" from site
// traffic; the bridge talks to the admin endpoint, which reads them.
const (
	// BridgeKeyHeader carries the bridge key: the proof that the caller
	// can read the running Caddy's key file.
	BridgeKeyHeader = "Gatekeeper-Bridge-Key"
	// OnBehalfOfHeader names the local user the bridge acts for; it is
	// api.OnBehalfOfHeader, and counts only beside a valid bridge key.
	OnBehalfOfHeader = "Gatekeeper-On-Behalf-Of"
)

// BridgeKeyFile is the name of the bridge key's file in the directory the
// running Caddy is given (its data directory + "/gatekeeper").
const BridgeKeyFile = "bridge.key"

// bridgeKeyBytes is the key's entropy; the file holds it in hex.
const bridgeKeyBytes = 32

// LoadOrCreateBridgeKey returns the bridge key kept in dir, creating dir
// (0700) and the key when there is none. The key file is created whole or
// not at all, readable by its owner only (0600), and when two processes
// create it at once both end with the one that was linked first. A key
// file or a directory others could read or replace is refused: whoever
// reads the key can act as any local user.
func LoadOrCreateBridgeKey(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bridge key: %w", err)
	}
	if err := private(dir, os.Stat, 0o022); err != nil {
		return "", err
	}
	path := filepath.Join(dir, BridgeKeyFile)
	key, err := readKey(path, true)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	b := make([]byte, bridgeKeyBytes)
	rand.Read(b)
	key = hex.EncodeToString(b)
	tmp, err := os.CreateTemp(dir, BridgeKeyFile+".*") // 0600
	if err != nil {
		return "", fmt.Errorf("bridge key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(key + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("bridge key %s: %w", tmp.Name(), err)
	}
	// A link, unlike a rename, never replaces a key another process made.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("bridge key: %w", err)
	}
	return readKey(path, true)
}

// ReadBridgeKey returns the bridge key the running Caddy keeps in dir, for
// `gatekeeper console`: the local user who can read it may say whom the
// bridge acts for.
func ReadBridgeKey(dir string) (string, error) {
	return readKey(filepath.Join(dir, BridgeKeyFile), false)
}

// readKey reads the key file at path; owned, when the caller is its owner,
// refuses a file others can read.
func readKey(path string, owned bool) (string, error) {
	if owned {
		if err := private(path, os.Lstat, 0o077); err != nil {
			return "", err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bridge key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if _, err := hex.DecodeString(key); err != nil || len(key) != 2*bridgeKeyBytes {
		return "", fmt.Errorf("bridge key %s: not %d hex digits; remove it and restart Caddy to make a new one", path, 2*bridgeKeyBytes)
	}
	return key, nil
}

// private refuses path, as stat sees it, when it is a symbolic link (the
// key file must be the file itself) or its mode has any of the permission
// bits in others. Windows keeps permissions in ACLs, not in the mode:
// there only the link is checked.
func private(path string, stat func(string) (fs.FileInfo, error), others fs.FileMode) error {
	fi, err := stat(path)
	switch {
	case err != nil:
		return fmt.Errorf("bridge key: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("bridge key: %s is a symbolic link; it must be the file itself", path)
	case runtime.GOOS != "windows" && fi.Mode().Perm()&others != 0:
		return fmt.Errorf("bridge key: %s has mode %04o; others must not be able to read or replace it (chmod go-rwx)", path, fi.Mode().Perm())
	}
	return nil
}

// FromBridge is the local user the console bridge acts for, when h carries
// the bridge key (compared in constant time) and exactly one
// OnBehalfOfHeader whose value passes approvals.Identity.Check. host names
// the machine the bridge runs on. false: the caller is not the bridge (no
// key, a wrong key, an empty key given) or named nobody valid; on the
// local admin endpoint such a caller is approvals.Operator, and its
// OnBehalfOfHeader is ignored.
func FromBridge(h http.Header, key, host string) (approvals.Identity, bool) {
	keys, who := h.Values(BridgeKeyHeader), h.Values(OnBehalfOfHeader)
	if key == "" || len(keys) != 1 || len(who) != 1 || subtle.ConstantTimeCompare([]byte(keys[0]), []byte(key)) != 1 {
		return approvals.Identity{}, false
	}
	id := approvals.Identity{ID: who[0], Via: approvals.ViaBridge, Issuer: host}
	if id.Check() != nil {
		return approvals.Identity{}, false
	}
	return id, true
}

// BridgeKeyDir is where Caddy keeps the bridge key: Gatekeeper's folder in
// Caddy's data directory, dataDir (caddy.AppDataDir()), which the running
// Caddy and the CLI of the same user both find.
func BridgeKeyDir(dataDir string) string { return filepath.Join(dataDir, "gatekeeper") }
