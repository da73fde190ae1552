package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// The audit chains prove that no event was changed within the trail a
// store holds, not that the store still holds all of it: a Redis that
// restarted without persistence starts both chains again at seq 1, linked
// perfectly. So every head this instance has seen verified is remembered,
// in memory and in a file on local disk, apart from the store, and each
// check holds the chains to it. The file is in Caddy's data directory
// (AppDataDir/gatekeeper), one per store, named after the store's identity.

// KnownHeads are the newest chain heads seen for one store.
type KnownHeads struct {
	mu    sync.Mutex
	path  string
	store string
	heads map[string]ChainHead
}

type knownHeadsFile struct {
	Store string               `json:"store"`
	Heads map[string]ChainHead `json:"heads"`
}

// LoadKnownHeads reads the heads kept for store; none when there is no file.
func LoadKnownHeads(store, path string) (*KnownHeads, error) {
	k := &KnownHeads{path: path, store: store, heads: map[string]ChainHead{}}
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

// Get returns a copy of the heads.
func (k *KnownHeads) Get() map[string]ChainHead {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make(map[string]ChainHead, len(k.heads))
	for kind, h := range k.heads {
		out[kind] = h
	}
	return out
}

// Advance records heads newer than the known ones (a verified trail, or an
// export's head) and keeps them on disk.
func (k *KnownHeads) Advance(heads map[string]ChainHead) error {
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
