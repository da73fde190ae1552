package store

import (
	"context"
	"strconv"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/ledger"
)

// SetTestHook lets the crash tests stop a write at a chosen step.
func SetTestHook(f func(step string)) { testHook = f }

// LeaseAt leases at now instead of the Redis server's clock.
func (s *RedisStore) LeaseAt(ctx context.Context, a *approvals.Approval, want int, now time.Time) (ledger.Lease, error) {
	return s.lease(ctx, a, want, strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64))
}

// SetBanAuditMax lowers the count of ban events that makes the audit log
// compact.
func (s *FileStore) SetBanAuditMax(n int64) { s.banAuditMax = n }

// SetBanAuditMax lowers the length the ban event stream is trimmed to.
func (s *RedisStore) SetBanAuditMax(n int64) { s.banAuditMax = n }
