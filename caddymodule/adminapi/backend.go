package adminapi

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/feed"
)

// Backend is what the admin API asks of the running config's engine: the
// operations security staff carry out, and what they read.
type Backend interface {
	RegisterApproval(ctx context.Context, req *approvals.Request, actor string) (*approvals.Approval, string, error)
	RevokeApproval(ctx context.Context, id, reason, actor string) (*approvals.Approval, error)
	Approvals(ctx context.Context, tenant string, status approvals.Status) ([]*approvals.Approval, error)
	Approval(ctx context.Context, id string) (*approvals.Approval, error)
	Report(ctx context.Context, id string) (api.Report, error)
	Export(ctx context.Context, id, actor string) (*audit.Evidence, error)
	Ban(ctx context.Context, source string, ttl time.Duration, reason, actor string) (approvals.Ban, error)
	LiftBan(ctx context.Context, source, actor string) (approvals.Ban, error)
	Bans(ctx context.Context) ([]approvals.Ban, error)
	Audit(ctx context.Context, q audit.Query) ([]audit.Event, error)
	VerifyAudit(ctx context.Context, known ...audit.KnownHead) audit.Verification
	Status(ctx context.Context) api.Status
	Events(since uint64, limit int) ([]feed.Event, uint64)
}

// The engines the admin API may serve, in the order their configs'
// apps started: the running config's is the last. Admin routes are set up
// before any app exists. A config that fails to start after its app did
// is stopped again while the one before it keeps running, which is then
// served again.
var served struct {
	sync.Mutex
	apps []Backend
}

// Serve makes app (an engine) the one the admin API serves.
func Serve(app Backend) {
	served.Lock()
	defer served.Unlock()
	served.apps = append(served.apps, app)
}

// Release stops serving app; the engine started before it, if still
// running, is served again unless a newer config's took over.
func Release(app Backend) {
	served.Lock()
	defer served.Unlock()
	served.apps = slices.DeleteFunc(served.apps, func(b Backend) bool { return b == app })
}

func serving() Backend {
	served.Lock()
	defer served.Unlock()
	if n := len(served.apps); n > 0 {
		return served.apps[n-1]
	}
	return nil
}

var errNoApp = errors.New("the gatekeeper app is not running")
