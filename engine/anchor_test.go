package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// node is one Gatekeeper instance: an engine on a store, its audit
// anchors kept in its data directory, which it can be restarted on.
type node struct {
	t    *testing.T
	s    config.Settings
	data string
	e    *Engine
	stop func()
}

func runNode(t *testing.T, st config.Store, data string) *node {
	t.Helper()
	s := config.Settings{Store: st}.WithDefaults()
	testutil.NoError(t, s.Validate())
	n := &node{t: t, s: s, data: data}
	n.start()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *node) start() {
	n.t.Helper()
	e, err := New(n.s, zap.NewNop())
	testutil.NoError(n.t, err)
	sh, err := Open(n.s, n.data, zap.NewNop())
	testutil.NoError(n.t, err)
	e.Start(sh)
	n.e = e
	n.stop = sync.OnceFunc(func() {
		e.Stop()
		testutil.NoError(n.t, sh.Destruct())
		testutil.NoError(n.t, e.Close())
	})
}

func (n *node) restart() { n.stop(); n.start() }

func (n *node) register() string {
	n.t.Helper()
	var req approvals.Request
	testutil.NoError(n.t, json.Unmarshal([]byte(validApproval()), &req))
	ap, _, err := n.e.RegisterApproval(context.Background(), &req, approvals.Identity{ID: "alice", Via: approvals.ViaLocal})
	testutil.NoError(n.t, err)
	return ap.ID
}

// verify checks the trail now, and checks that the status and the
// audit_intact gauge show what the check found.
func (n *node) verify() audit.Verification {
	n.t.Helper()
	v := n.e.VerifyAudit(context.Background())
	if st := n.e.Status(context.Background()); st.Audit == nil || st.Audit.OK != v.OK || st.Audit.Anchor != v.Anchor {
		n.t.Fatalf("status audit = %+v; want the check's %+v", st.Audit, v)
	}
	want := 0.0
	if v.OK {
		want = 1
	}
	if got := auditIntact(n.t); got != want {
		n.t.Fatalf("audit_intact = %v after a check that found %+v", got, v)
	}
	return v
}

// auditIntact reads the audit_intact gauge as Prometheus would.
func auditIntact(t *testing.T) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(Collectors()...)
	families, err := reg.Gather()
	testutil.NoError(t, err)
	for _, f := range families {
		if f.GetName() == "caddy_gatekeeper_audit_intact" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no audit_intact gauge")
	return 0
}

// An export of a trail that replaced the one seen before does not make the
// replacement known: the check after it still fails, audit_intact stays 0,
// and so it stays after a restart. Whether the store's id went with the
// data (a FLUSHALL) or was put back, the chains are held to the heads seen.
func TestExportDoesNotReanchorAReplacedTrail(t *testing.T) {
	for _, idBack := range []bool{false, true} {
		name := map[bool]string{false: "flushed", true: "flushed, its id put back"}[idBack]
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := testredis.Start(t)
			n := runNode(t, config.Store{Kind: config.StoreRedis, Redis: config.Redis{URL: srv.URL(0)}}, t.TempDir())
			n.register()
			n.register()
			v := n.verify()
			seen := v.Known["approval"]
			if !v.OK || seen.Seq != 2 || v.StoreID == "" {
				t.Fatalf("first check = %+v; want the trail intact up to seq 2, of a store with an id", v)
			}
			testutil.NoError(t, srv.Client().FlushAll(ctx).Err())
			if idBack {
				testutil.NoError(t, srv.Client().Set(ctx, n.s.KeyPrefix+"{state}:store-id", v.StoreID, 0).Err())
			}
			id := n.register()
			n.register()
			n.register()
			ev, err := n.e.Export(ctx, id, approvals.Identity{ID: "auditor", Via: approvals.ViaLocal})
			testutil.NoError(t, err)
			if ev.Head().Seq != 3 {
				t.Fatalf("the export's head is %+v; want the replaced trail's seq 3", ev.Head())
			}
			for _, when := range []string{"after the export", "after a restart"} {
				v := n.verify()
				if v.OK || v.Known["approval"] != seen || v.Chains[0].OK || v.Chains[0].BrokenAt != 2 ||
					!strings.Contains(v.Chains[0].Problem, "the trail was replaced") {
					t.Fatalf("%s: %+v; want the approval chain broken at seq 2, held to the head seen before", when, v)
				}
				if !idBack && !strings.Contains(v.Anchor, "its data was replaced") {
					t.Fatalf("%s: anchor problem %q; want the store's new id seen as a replaced trail", when, v.Anchor)
				}
				n.restart()
			}
		})
	}
}

// A lost, unreadable or unwritten anchor, or a store emptied under the
// same address, fails the check with a sentence saying so, where it was
// taken for a first start; a moved store keeps its anchor (found by the
// store's id), and a new instance starts afresh.
func TestAnchorTroubleIsNotAFirstStart(t *testing.T) {
	// seeded runs a node on a file store with two approvals checked, and
	// stops it: its anchor holds seq 2.
	seeded := func(t *testing.T) (dir, data string, seen audit.ChainHead, storeID string) {
		dir, data = t.TempDir(), t.TempDir()
		n := runNode(t, config.Store{Kind: config.StoreFile, Dir: dir}, data)
		n.register()
		n.register()
		v := n.verify()
		if !v.OK || v.Known["approval"].Seq != 2 {
			t.Fatalf("first check = %+v", v)
		}
		n.stop()
		return dir, data, v.Known["approval"], v.StoreID
	}
	anchor := func(t *testing.T, data, storeID string) string {
		return filepath.Join(data, "gatekeeper", "audit-heads-"+storeID+".json")
	}
	for _, c := range []struct {
		name   string
		before func(t *testing.T, dir, data, storeID string) (newDir string)
		want   string
	}{
		{"anchor deleted", func(t *testing.T, dir, data, storeID string) string {
			testutil.NoError(t, os.Remove(anchor(t, data, storeID)))
			return dir
		}, "anchored store " + "%s before, but its anchor"},
		{"anchor unreadable", func(t *testing.T, dir, data, storeID string) string {
			testutil.NoError(t, os.WriteFile(anchor(t, data, storeID), []byte("{not json"), 0o600))
			return dir
		}, "the anchor of store %s cannot be read"},
		{"store emptied at the same address", func(t *testing.T, dir, data, storeID string) string {
			testutil.NoError(t, os.RemoveAll(dir))
			return dir
		}, "but was %s when this instance last saw it: its data was replaced"},
		{"store moved", func(t *testing.T, dir, data, storeID string) string {
			moved := filepath.Join(t.TempDir(), "moved")
			testutil.NoError(t, os.CopyFS(moved, os.DirFS(dir)))
			testutil.NoError(t, os.Remove(filepath.Join(moved, "lock")))
			return moved
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, data, seen, storeID := seeded(t)
			dir = c.before(t, dir, data, storeID)
			n := runNode(t, config.Store{Kind: config.StoreFile, Dir: dir}, data)
			v := n.verify()
			if c.want == "" {
				if !v.OK || v.Known["approval"] != seen || v.StoreID != storeID {
					t.Fatalf("check = %+v; want the trail held to seq 2 of store %s", v, storeID)
				}
				return
			}
			if want := strings.ReplaceAll(c.want, "%s", storeID); v.OK || !strings.Contains(v.Anchor, want) {
				t.Fatalf("check = %+v; want it failed: %q", v, want)
			}
			n.register() // a change after it moves no head
			if v := n.verify(); v.OK || v.Known["approval"].Seq == 3 {
				t.Fatalf("check after a change = %+v; want it failed still, the heads not moved", v)
			}
		})
	}

	t.Run("anchor not written, then written", func(t *testing.T) {
		dir, data, storeID := t.TempDir(), t.TempDir(), "0123456789abcdef0123456789abcdef"
		testutil.NoError(t, os.WriteFile(filepath.Join(dir, "store-id"), []byte(storeID+"\n"), 0o600))
		blocker := anchor(t, data, storeID) + ".tmp"
		testutil.NoError(t, os.MkdirAll(blocker, 0o700)) // a folder where the anchor is written first
		n := runNode(t, config.Store{Kind: config.StoreFile, Dir: dir}, data)
		n.register()
		if v := n.verify(); v.OK || !strings.Contains(v.Anchor, "the heads seen could not be kept") {
			t.Fatalf("check = %+v; want it failed: the heads could not be kept", v)
		}
		testutil.NoError(t, os.Remove(blocker))
		if v := n.verify(); !v.OK || v.Anchor != "" || v.Known["approval"].Seq != 1 {
			t.Fatalf("check once the anchor can be written = %+v; want the head kept and the check intact", v)
		}
	})

	t.Run("an anchor from before store ids", func(t *testing.T) {
		dir, data, seen, storeID := seeded(t)
		legacy := filepath.Join(data, "gatekeeper", "audit-heads-0011223344556677.json")
		b, err := json.Marshal(map[string]any{"store": "file " + dir, "heads": map[string]audit.ChainHead{"approval": seen}})
		testutil.NoError(t, err)
		testutil.NoError(t, os.WriteFile(legacy, b, 0o600))
		testutil.NoError(t, os.Remove(anchor(t, data, storeID)))
		testutil.NoError(t, os.RemoveAll(dir)) // and the store replaced: the old anchor still holds it
		n := runNode(t, config.Store{Kind: config.StoreFile, Dir: dir}, data)
		n.register()
		if v := n.verify(); v.OK || v.Chains[0].BrokenAt != 2 {
			t.Fatalf("check against an anchor named after the address = %+v; want the replaced trail broken at seq 2", v)
		}
	})

	t.Run("a new instance", func(t *testing.T) {
		dir, _, _, _ := seeded(t)
		n := runNode(t, config.Store{Kind: config.StoreFile, Dir: dir}, t.TempDir())
		if v := n.verify(); !v.OK || v.Anchor != "" {
			t.Fatalf("a new instance's first check = %+v; want a first start, intact", v)
		}
	})
}
