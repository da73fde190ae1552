package store_test

import (
	"os"
	"testing"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/store"
)

// The store's id goes with its data: every instance on a Redis sees the
// one the first made, and a flushed Redis has another; a file store keeps
// its id across a reopen, and an emptied directory has another.
func TestStoreIDGoesWithTheData(t *testing.T) {
	srv := testredis.Start(t)
	a, b := redisStore(t, srv.Addr), redisStore(t, srv.Addr)
	idA, err := a.StoreID(ctx)
	testutil.NoError(t, err)
	idB, err := b.StoreID(ctx)
	testutil.NoError(t, err)
	testutil.NoError(t, a.NoteAnchor(ctx, "inst-a"))
	testutil.NoError(t, srv.Client().FlushAll(ctx).Err())
	flushed, err := b.StoreID(ctx)
	testutil.NoError(t, err)
	anchored, err := b.Anchored(ctx, "inst-a")
	testutil.NoError(t, err)
	if idA != idB || flushed == idA || anchored {
		t.Fatalf("Redis: ids %q and %q, after FLUSHALL %q (inst-a anchored: %v); want one id, then another that knows no anchor", idA, idB, flushed, anchored)
	}

	dir := t.TempDir()
	f, err := store.OpenFileStore(dir, nil)
	testutil.NoError(t, err)
	id, err := f.StoreID(ctx)
	testutil.NoError(t, err)
	testutil.NoError(t, f.NoteAnchor(ctx, "inst-a"))
	testutil.NoError(t, f.Close())
	f = openFile(t, dir)
	again, err := f.StoreID(ctx)
	testutil.NoError(t, err)
	anchored, err = f.Anchored(ctx, "inst-a")
	testutil.NoError(t, err)
	if again != id || !anchored {
		t.Fatalf("file store reopened: id %q (was %q), inst-a anchored %v; want both kept", again, id, anchored)
	}
	testutil.NoError(t, f.Close())
	testutil.NoError(t, os.RemoveAll(dir))
	f = openFile(t, dir)
	t.Cleanup(func() { f.Close() })
	if fresh, err := f.StoreID(ctx); err != nil || fresh == id {
		t.Fatalf("file store in an emptied directory: id %q, %v; want a new one", fresh, err)
	}
}
