package store

import (
	"context"
	"fmt"
	"strings"
)

// Checker is a store that can say what in its set-up puts its data at risk.
type Checker interface {
	Check(ctx context.Context) []string
}

// Check implements Checker: Gatekeeper's keys have no expiry and must never
// be evicted (an evicted ledger would hand a budget out again), and without
// the AOF a restart loses every approval and ban since the last snapshot.
// CONFIG may be refused (managed Redis); that is said too.
func (s *RedisStore) Check(ctx context.Context) []string {
	cfg, err := s.rdb.ConfigGet(ctx, "*").Result()
	if err != nil {
		return []string{fmt.Sprintf("cannot read the Redis settings (CONFIG GET: %v); make sure maxmemory-policy is noeviction (or volatile-*) and appendonly is yes", err)}
	}
	var out []string
	if p := cfg["maxmemory-policy"]; strings.HasPrefix(p, "allkeys-") {
		out = append(out, fmt.Sprintf("maxmemory-policy is %s: Redis may evict Gatekeeper's approvals, bans and budgets; set noeviction or use a Redis of Gatekeeper's own", p))
	}
	if cfg["appendonly"] == "no" {
		out = append(out, "appendonly is no: a Redis restart loses approvals, bans and budgets written since its last RDB save; set appendonly yes")
	}
	return out
}
