package storetest

import (
	"regexp"
	"slices"
	"testing"

	"github.com/customernode/gatekeeper/internal/testutil"
)

var hexID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// The store's id is made once, by whichever caller comes first, and every
// caller after gets the same one; another store has another.
func (x suite) storeIDIsMadeOnceAndKept(t *testing.T) {
	s, _ := x.fresh(t)
	ids := make([]string, 8)
	errs := concurrently(len(ids), func(i int) (err error) {
		ids[i], err = s.StoreID(ctx)
		return err
	})
	for _, err := range errs {
		testutil.NoError(t, err)
	}
	if !hexID.MatchString(ids[0]) || slices.IndexFunc(ids, func(id string) bool { return id != ids[0] }) >= 0 {
		t.Fatalf("StoreID from 8 callers at once = %q; want one id of 32 hex digits", ids)
	}
	again, err := s.StoreID(ctx)
	testutil.NoError(t, err)
	other, _ := x.fresh(t)
	otherID, err := other.StoreID(ctx)
	testutil.NoError(t, err)
	if again != ids[0] || otherID == ids[0] {
		t.Fatalf("StoreID again = %q, another store's = %q; want %q, then another", again, otherID, ids[0])
	}
}

// The store remembers which instances anchor its trail, each once.
func (x suite) anchoringInstancesAreKept(t *testing.T) {
	s, _ := x.fresh(t)
	if ok, err := s.Anchored(ctx, "inst-a"); err != nil || ok {
		t.Fatalf("Anchored before any note = %v, %v; want false", ok, err)
	}
	testutil.NoError(t, s.NoteAnchor(ctx, "inst-a"))
	testutil.NoError(t, s.NoteAnchor(ctx, "inst-a"))
	for inst, want := range map[string]bool{"inst-a": true, "inst-b": false} {
		if ok, err := s.Anchored(ctx, inst); err != nil || ok != want {
			t.Fatalf("Anchored(%s) = %v, %v; want %v", inst, ok, err, want)
		}
	}
}
