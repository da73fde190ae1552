package store

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/ledger"
)

// FuzzLedgerMatchesRedis runs one sequence of leases, releases and clock
// steps through the Go ledger (the file store's) and the Redis ledger
// script, and wants the same grants and budget left, and retry times within
// a millisecond (Lua rounds them up to the microsecond, Go down).
func FuzzLedgerMatchesRedis(f *testing.F) {
	srv := testredis.Start(f)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	f.Cleanup(func() { rdb.Close() })
	f.Add([]byte{0x13, 0x80, 0x45, 0xc2, 0x07, 0x13, 0x13, 0xff}, uint8(5), uint8(3), uint16(40))
	f.Add([]byte{0x01, 0x01, 0x01, 0x41, 0x01, 0xc9, 0x01}, uint8(1), uint8(1), uint16(7))
	run := 0
	f.Fuzz(func(t *testing.T, ops []byte, rps, burst uint8, budget uint16) {
		run++
		a := &approvals.Approval{ID: "apr_fuzz" + strconv.Itoa(run), MaxRPS: float64(rps%50) + 0.5, Burst: int(burst%20) + 1, MaxRequests: int64(budget%500) + 1}
		s := NewRedisStore(rdb, "fz"+strconv.Itoa(run)+":", nil)
		defer func() { s.cancel(); s.ps.Close(); s.done.Wait() }()
		var l ledger.State
		now := time.Unix(1000, 0)
		for i, op := range ops {
			switch op >> 6 {
			case 0, 1: // lease 1..16
				want := int(op&15) + 1
				got, err := s.lease(context.Background(), a, want, strconv.FormatFloat(float64(now.UnixMicro())/1e6, 'f', 6, 64))
				if err != nil {
					t.Fatal(err)
				}
				exp := l.Take(a, want, now)
				if got.Granted != exp.Granted || got.Remaining != exp.Remaining || (got.RetryAfter-exp.RetryAfter).Abs() > time.Millisecond {
					t.Fatalf("op %d (lease %d at +%s): redis %+v, go %+v", i, want, now.Sub(time.Unix(1000, 0)), got, exp)
				}
			case 2: // release 1..64
				n := int(op&63) + 1
				if err := s.Release(context.Background(), a.ID, n); err != nil {
					t.Fatal(err)
				}
				l.Release(n)
			case 3: // the clock moves 1..64 × 37 ms
				now = now.Add(time.Duration(op&63+1) * 37 * time.Millisecond)
			}
		}
	})
}
