package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
)

// The audit chains prove that no event was changed within the trail a
// store holds, not that the store still holds all of it: a Redis that
// restarted without persistence starts both chains again at seq 1, linked
// perfectly. So every head this instance has seen verified is remembered,
// in memory and in a file on local disk, apart from the store, and each
// check holds the chains to it. The file is in Caddy's data directory
// (AppDataDir/gatekeeper), one per store, named after the store's identity.

// knownHeads are the newest chain heads seen for one store.
type knownHeads struct {
	mu    sync.Mutex
	path  string
	store string
	heads map[string]audit.ChainHead
}

type knownHeadsFile struct {
	Store string                     `json:"store"`
	Heads map[string]audit.ChainHead `json:"heads"`
}

// storeIdentity names a store the same way across restarts and reloads.
func storeIdentity(s config.Settings) string {
	if s.Store.Kind == config.StoreFile {
		if abs, err := filepath.Abs(s.Store.Dir); err == nil {
			return "file " + abs
		}
	}
	return s.Store.Describe() + " prefix " + s.KeyPrefix
}

// knownHeadsPath is where the heads seen of store are kept.
func knownHeadsPath(store string) string {
	sum := sha256.Sum256([]byte(store))
	return filepath.Join(caddy.AppDataDir(), "gatekeeper", "audit-heads-"+hex.EncodeToString(sum[:8])+".json")
}

// loadKnownHeads reads the heads kept for store; none when there is no file.
func loadKnownHeads(store, path string) (*knownHeads, error) {
	k := &knownHeads{path: path, store: store, heads: map[string]audit.ChainHead{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the audit heads seen before: %w", err)
	}
	var f knownHeadsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w (remove it only if you accept that the audit trail cannot be held to what was seen before)", path, err)
	}
	if f.Heads != nil {
		k.heads = f.Heads
	}
	return k, nil
}

// get returns a copy of the heads.
func (k *knownHeads) get() map[string]audit.ChainHead {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]audit.ChainHead, len(k.heads))
	for kind, h := range k.heads {
		out[kind] = h
	}
	return out
}

// advance records heads newer than the known ones (a verified trail, or an
// export's head) and keeps them on disk.
func (k *knownHeads) advance(heads map[string]audit.ChainHead) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := false
	for kind, h := range heads {
		if h.Seq > k.heads[kind].Seq {
			k.heads[kind], changed = h, true
		}
	}
	if !changed {
		return nil
	}
	b, err := json.MarshalIndent(knownHeadsFile{Store: k.store, Heads: k.heads}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	tmp := k.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, k.path)
}
