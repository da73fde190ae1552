package adminapi

import (
	"context"
	"errors"
	"time"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/engine"
	"github.com/customernode/gatekeeper/feed"
	"github.com/customernode/gatekeeper/identity"
)

// Backend is what the admin API asks of the running config's engine: the
// operations security staff carry out, and what they read.
type Backend interface {
	RegisterApproval(ctx context.Context, req *approvals.Request, by approvals.Identity) (*approvals.Approval, string, error)
	RevokeApproval(ctx context.Context, id, reason string, by approvals.Identity) (*approvals.Approval, error)
	Review(ctx context.Context, id, decision, ref, note, digest string, by identity.Caller) (*approvals.Approval, error)
	IssueToken(ctx context.Context, id string, by approvals.Identity) (*approvals.Approval, string, error)
	Approvals(ctx context.Context, tenant string, status approvals.Status) ([]*approvals.Approval, error)
	Approval(ctx context.Context, id string) (*approvals.Approval, error)
	Report(ctx context.Context, id string) (api.Report, error)
	Export(ctx context.Context, id string, by approvals.Identity) (*audit.Evidence, error)
	Ban(ctx context.Context, source string, ttl time.Duration, reason string, by approvals.Identity) (approvals.Ban, error)
	LiftBan(ctx context.Context, source string, by approvals.Identity) (approvals.Ban, error)
	Bans(ctx context.Context) ([]approvals.Ban, error)
	Audit(ctx context.Context, q audit.Query) ([]audit.Event, error)
	VerifyAudit(ctx context.Context, known ...audit.KnownHead) audit.Verification
	Status(ctx context.Context) api.Status
	Events(since uint64, limit int) ([]feed.Event, uint64)
	VerifyBearer(ctx context.Context, token string) (identity.Caller, error)
	MayUseConsole(by identity.Caller) error
}

// serving is the running config's engine, nil when none is running. Admin
// routes are set up before any app exists, and a config that fails to
// start after its app did leaves the one before it running, which is then
// served again.
func serving() Backend {
	if e := engine.Running(); e != nil {
		return e
	}
	return nil
}

var errNoApp = errors.New("the gatekeeper app is not running")
