package engine

import (
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/config"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// startEngine runs an engine with default settings on store st until t
// ends, its audit heads kept in t's own folder.
func startEngine(t *testing.T, st config.Store) *Engine {
	t.Helper()
	return startWith(t, config.Settings{Store: st})
}

// startWith runs an engine with settings s, defaults filled in, until t
// ends, its audit heads kept in t's own folder.
func startWith(t *testing.T, s config.Settings) *Engine {
	t.Helper()
	s = s.WithDefaults()
	testutil.NoError(t, s.Validate())
	e, err := New(s, zap.NewNop())
	testutil.NoError(t, err)
	sh, err := Open(s, t.TempDir(), zap.NewNop())
	testutil.NoError(t, err)
	e.Start(sh)
	t.Cleanup(func() {
		e.Stop()
		testutil.NoError(t, sh.Destruct())
		testutil.NoError(t, e.Close())
	})
	return e
}

// fileStore is a file store in a folder of t's own.
func fileStore(t *testing.T) config.Store {
	return config.Store{Kind: config.StoreFile, Dir: t.TempDir()}
}

// validApproval is a registration of tenant acme, open from an hour ago
// for eight hours.
func validApproval() string {
	from := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	b, _ := json.Marshal(map[string]any{
		"tenant": "acme", "sources": []string{"127.0.0.2", "2001:db8::/64"},
		"not_before": from.Format(time.RFC3339), "not_after": from.Add(8 * time.Hour).Format(time.RFC3339),
		"max_rps": 20, "burst": 40, "max_requests": 1000,
		"requested_by": "ciso@acme.example", "approved_by": "secops@customernode", "approval_ref": "SEC-1",
	})
	return string(b)
}
