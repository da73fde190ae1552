package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
// in memory and in a file on local disk, apart from the store (the
// anchor), and each check holds the chains to it.
//
// The anchor is keyed by the store's identity, a random id kept in the
// store (Anchorable.StoreID), not by its address: the file is
// audit-heads-<store id>.json in Caddy's data directory (AppDataDir/
// gatekeeper), and names the id and the address. A store whose data was
// replaced has a new id; the anchor of the old one, still there under the
// same address, says so. Each instance keeps its own id beside its anchors
// (instance-id), and the store keeps the ids of the instances that anchor
// it, so a missing anchor of a store this instance anchored before is
// told from a first start. Heads move only after a check that held the
// chains to the known ones: a replaced trail is never taken for the
// known one.

// Anchorable is what anchoring a store's trail needs of it, besides
// reading the trail.
type Anchorable interface {
	Trail
	// StoreID is the store's identity, made by the first call.
	StoreID(ctx context.Context) (string, error)
	// NoteAnchor records that instance keeps an anchor of the trail;
	// Anchored reports whether it did.
	NoteAnchor(ctx context.Context, instance string) error
	Anchored(ctx context.Context, instance string) (bool, error)
}

// KnownHeads are the newest chain heads seen for one store, and what is
// wrong with them.
type KnownHeads struct {
	mu       sync.Mutex
	dir      string
	address  string
	instance string
	storeID  string // the store the heads are of; "" until the first check
	heads    map[string]ChainHead
	legacy   string // an anchor named after the address, taken over
	// lost says why the trail cannot be held to what was seen before (the
	// anchor is missing or unreadable, the store's data was replaced); it
	// stays for the process's life, and the heads stay as they are.
	lost string
	// unkept says why the last write of the anchor failed; the next
	// check tries again.
	unkept string
	noted  bool // the store knows this instance anchors it
}

type knownHeadsFile struct {
	StoreID  string               `json:"store_id,omitempty"`
	Store    string               `json:"store"` // the store's address
	Instance string               `json:"instance,omitempty"`
	Heads    map[string]ChainHead `json:"heads"`
}

const instanceFile = "instance-id"

// NewKnownHeads keeps the heads seen of the store at address in dir. The
// heads are read at the first check, once the store has told its id.
func NewKnownHeads(dir, address string) *KnownHeads {
	k := &KnownHeads{dir: dir, address: address, heads: map[string]ChainHead{}}
	b, err := os.ReadFile(filepath.Join(dir, instanceFile))
	switch id := string(trimNewline(b)); {
	case err == nil && validID(id):
		k.instance = id
	case err == nil:
		k.lost = fmt.Sprintf("this instance's id in %s is %q, not one Gatekeeper writes: its anchors cannot be told apart", filepath.Join(dir, instanceFile), id)
		k.instance = newID()
	case errors.Is(err, fs.ErrNotExist):
		k.instance = newID() // written beside the first anchor
	default:
		k.lost = fmt.Sprintf("this instance's id cannot be read: %v", err)
		k.instance = newID()
	}
	return k
}

// Instance is this instance's id, as the store knows it.
func (k *KnownHeads) Instance() string { return k.instance }

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

// Problem says what is wrong with the anchor; "" when nothing is.
func (k *KnownHeads) Problem() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost != "" {
		return k.lost
	}
	return k.unkept
}

// StoreID is the id of the store the heads are of ("" before the first
// check).
func (k *KnownHeads) StoreID() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.storeID
}

func (k *KnownHeads) path(storeID string) string {
	return filepath.Join(k.dir, "audit-heads-"+storeID+".json")
}

// bind asks st for its id and finds the heads kept of it: at the first
// check, its anchor, or an earlier store's at the same address (whose
// heads the chains are then held to); afterwards, that the id did not
// change. An error is the store's: the check cannot be made.
func (k *KnownHeads) bind(ctx context.Context, st Anchorable) error {
	id, err := st.StoreID(ctx)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case !validID(id):
		k.lost = fmt.Sprintf("the store's id %q is not one Gatekeeper makes: someone wrote it, and no anchor can be found by it", id)
		return nil
	case id == k.storeID:
		return nil
	case k.storeID != "":
		if k.lost == "" {
			k.lost = fmt.Sprintf("the store at %s was %s and is now %s: its data was replaced (flushed, lost or restored from "+
				"another store) while this instance ran; the chains are held to the heads seen of %s", k.address, k.storeID, id, k.storeID)
		}
		k.storeID = id
		return nil
	}
	f, err := readHeads(k.path(id))
	switch {
	case err == nil:
		k.storeID, k.heads = id, nonNil(f.Heads)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		k.storeID, k.lost = id, fmt.Sprintf("the anchor of store %s cannot be read (%v): the trail cannot be held to the heads seen before", id, err)
		return nil
	}
	if old, path := k.atAddress(id); old != nil {
		k.storeID, k.heads = id, nonNil(old.Heads)
		if old.StoreID == "" {
			k.legacy = path // from before store ids: taken over, held to its heads
			return nil
		}
		k.lost = fmt.Sprintf("the store at %s is %s, but was %s when this instance last saw it: its data was replaced (flushed, "+
			"lost or restored from another store), which is not a first start; the chains are held to the heads seen of %s (%s)",
			k.address, id, old.StoreID, old.StoreID, path)
		return nil
	}
	anchored, err := st.Anchored(ctx, k.instance)
	if err != nil {
		return err
	}
	k.storeID = id
	if anchored {
		k.lost = fmt.Sprintf("this instance (%s) anchored store %s before, but its anchor %s is missing: the heads it saw are lost, "+
			"and the trail cannot be held to them", k.instance, id, k.path(id))
	}
	return nil
}

// atAddress finds an anchor in dir of another store at this address; nil
// when there is none.
func (k *KnownHeads) atAddress(id string) (*knownHeadsFile, string) {
	paths, _ := filepath.Glob(filepath.Join(k.dir, "audit-heads-*.json"))
	for _, p := range paths {
		if f, err := readHeads(p); err == nil && f.Store == k.address && f.StoreID != id {
			return f, p
		}
	}
	return nil, ""
}

// advance records the heads a check reached (to), after it held the chains
// to from, the heads known then, and keeps them on disk. It moves no head
// while the trail cannot be held to the heads seen before (lost), nor one
// that changed since from.
func (k *KnownHeads) advance(ctx context.Context, st Anchorable, from, to map[string]ChainHead) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.lost != "" || k.storeID == "" {
		return
	}
	changed := false
	for kind, h := range to {
		if cur := k.heads[kind]; cur == from[kind] && h.Seq > cur.Seq {
			k.heads[kind], changed = h, true
		}
	}
	if changed || k.unkept != "" {
		if err := k.write(); err != nil {
			k.unkept = fmt.Sprintf("the heads seen could not be kept (%v): a lost trail would go unnoticed after a restart", err)
			return
		}
		k.unkept = ""
	}
	if _, err := os.Stat(k.path(k.storeID)); err == nil && !k.noted {
		if err := st.NoteAnchor(ctx, k.instance); err != nil {
			k.unkept = fmt.Sprintf("the store could not be told that this instance anchors it (%v): a lost anchor would pass for a first start", err)
			return
		}
		k.noted = true
	}
}

// write keeps the heads in the store's anchor, and this instance's id
// beside it.
func (k *KnownHeads) write() error {
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return err
	}
	ipath := filepath.Join(k.dir, instanceFile)
	if f, err := os.OpenFile(ipath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		_, err = f.WriteString(k.instance + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return err
	} else if b, err := os.ReadFile(ipath); err != nil {
		return err
	} else if id := string(trimNewline(b)); id != k.instance && !k.noted && validID(id) {
		k.instance = id // another store's anchor in this process wrote it first
	}
	b, err := json.MarshalIndent(knownHeadsFile{StoreID: k.storeID, Store: k.address, Instance: k.instance, Heads: k.heads}, "", "  ")
	if err != nil {
		return err
	}
	path := k.path(k.storeID)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if k.legacy != "" {
		os.Remove(k.legacy)
		k.legacy = ""
	}
	return nil
}

func readHeads(path string) (*knownHeadsFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f knownHeadsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

func nonNil(m map[string]ChainHead) map[string]ChainHead {
	if m == nil {
		return map[string]ChainHead{}
	}
	return m
}

// newID is a fresh instance id: 128 random bits in hex, as store ids are.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// validID reports whether id is 32 lower-case hex digits, as Gatekeeper
// makes store and instance ids: nothing else names a file.
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
