package store

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/internal/rates"
	"github.com/customernode/gatekeeper/ledger"
	"github.com/redis/go-redis/v9"
)

// leaseScript is ledger.State.Take in Lua, run on the Redis server with its
// clock, so that every instance shares one bucket and one budget per
// approval.
//
// The usage hash counts grants and releases apart, both only ever growing,
// so that a count lower than one an instance has seen can only mean that
// Redis lost writes: a failover to a replica that had not received them, a
// restore from an older backup, an eviction. Each instance therefore sends
// the highest count of grants it has seen (the floor) and its own grants
// since it started, kept per instance in a second hash. The ledger never
// counts fewer grants than either says; when it finds it had lost some, it
// grants nothing for the hold, so that every instance that is serving the
// approval reports what it knows before the budget is handed out again.
//
// KEYS are the usage hash and the per-instance grants hash. ARGV are max_rps,
// burst, max_requests, the number of admissions wanted, the floor, this
// instance's name, its own grants, the hold in milliseconds, the time in
// seconds (empty for the Redis server's clock) and the longest wait
// (rates.MaxWait) in microseconds. It returns the number
// granted, the microseconds until a lease is worth asking for when none
// was, the budget remaining, the count of grants and 1 during a hold.
var leaseScript = redis.NewScript(`
local now
if ARGV[9] ~= '' then
	now = tonumber(ARGV[9])
else
	local t = redis.call('TIME')
	now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxreq = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'refill', 'granted', 'released', 'hold')
local tokens = tonumber(h[1])
local refill = tonumber(h[2])
local stored = tonumber(h[3]) or 0
local released = tonumber(h[4]) or 0
local hold = tonumber(h[5]) or 0
local own = math.max(tonumber(redis.call('HGET', KEYS[2], ARGV[6])) or 0, tonumber(ARGV[7]))
redis.call('HSET', KEYS[2], ARGV[6], own)
local sum = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do sum = sum + tonumber(v) end
local granted = math.max(stored, tonumber(ARGV[5]), sum)
if granted > stored then
	hold = math.max(hold, now + tonumber(ARGV[8]) / 1000)
end
if tokens == nil or refill == nil then
	tokens = burst
	refill = now
end
if now > refill then
	tokens = math.min(burst, tokens + (now - refill) * rate)
	refill = now
end
local remaining = maxreq - (granted - released)
local n = 0
local retry = 0
if now < hold then
	retry = math.ceil((hold - now) * 1000000)
else
	-- a whole token less a rounding error counts (tokenSlack in lease.go)
	n = math.max(0, math.min(want, math.floor(tokens + 1e-9), remaining, math.max(1, math.floor(remaining / 8))))
	if n == 0 and remaining > 0 then
		local need = math.min(want, remaining, math.max(1, math.floor(remaining / 8)), burst)
		-- bounded as rates.Seconds bounds it: at a rate of (nearly)
		-- nothing the wait is inf, which Redis cannot return as an integer
		retry = math.max(1000, math.min(math.ceil((need - tokens) * 1000000 / rate), tonumber(ARGV[10])))
	end
end
tokens = tokens - n
granted = granted + n
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'refill', string.format('%.17g', refill), 'granted', granted, 'released', released, 'hold', string.format('%.17g', hold))
if n > 0 then redis.call('HSET', KEYS[2], ARGV[6], own + n) end
local held = 0
if now < hold then held = 1 end
return {n, retry, remaining - n, granted, held}
`)

// releaseScript gives n leased admissions back to the budget. Releases are
// counted apart from grants and never exceed them, so a release can never
// hand the budget out twice; a usage hash that does not exist (lost, or
// never leased) is not created. KEYS[1] is the usage hash; ARGV[1] is n.
var releaseScript = redis.NewScript(`
local h = redis.call('HMGET', KEYS[1], 'granted', 'released')
local granted = tonumber(h[1])
if granted == nil then return 0 end
redis.call('HSET', KEYS[1], 'released', math.min(granted, (tonumber(h[2]) or 0) + tonumber(ARGV[1])))
return 1
`)

// LedgerHold is how long the Redis ledger grants nothing after finding that
// it lost grants, so that every instance serving the approval can report
// what it saw first. Instances lease several times a second while a test
// runs, so a second is enough to hear from each.
const LedgerHold = time.Second

// recordScript adds usage counts, to the totals and to one hour's, and
// keeps the earliest first_seen and the latest last_seen. KEYS[1] is the
// usage hash; ARGV are allowed, rate_limited, budget_exhausted,
// out_of_scope, platform_busy, capacity_full, last_seen in Unix
// milliseconds, and the hour (Unix seconds). Usage recorded before
// capacity_full was counted apart has those refusals in platform_busy.
var recordScript = redis.NewScript(`
local fields = {'allowed', 'rate_limited', 'budget_exhausted', 'out_of_scope', 'platform_busy', 'capacity_full'}
local seen, hour = ARGV[#fields + 1], ARGV[#fields + 2]
for i, f in ipairs(fields) do
	local n = tonumber(ARGV[i])
	if n ~= 0 then
		redis.call('HINCRBY', KEYS[1], f, n)
		redis.call('HINCRBY', KEYS[1], 'h:' .. hour .. ':' .. f, n)
	end
end
if tonumber(seen) > 0 then
	local cur = tonumber(redis.call('HGET', KEYS[1], 'last_seen') or '0')
	if tonumber(seen) > cur then redis.call('HSET', KEYS[1], 'last_seen', seen) end
	local first = tonumber(redis.call('HGET', KEYS[1], 'first_seen') or '0')
	if first == 0 or tonumber(seen) < first then redis.call('HSET', KEYS[1], 'first_seen', seen) end
end
return 1
`)

var usageFields = []string{"allowed", "rate_limited", "budget_exhausted", "out_of_scope", "platform_busy", "capacity_full", "last_seen"}

func (s *RedisStore) usageKey(id string) string { return s.key("usage:" + id) }

// grantsSeen is what this instance knows of each approval's grants: the
// highest count the ledger reported, and its own grants since it started.
type grantsSeen struct {
	mu sync.Mutex
	m  map[string]seenGrants
}

type seenGrants struct{ floor, own int64 }

func (g *grantsSeen) get(id string) seenGrants {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.m[id]
}

func (g *grantsSeen) add(id string, granted int64, total int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = map[string]seenGrants{}
	}
	cur := g.m[id]
	g.m[id] = seenGrants{floor: max(cur.floor, total), own: cur.own + granted}
}

// Lease implements Store.
func (s *RedisStore) Lease(ctx context.Context, a *approvals.Approval, want int) (ledger.Lease, error) {
	return s.lease(ctx, a, want, "")
}

// lease runs the ledger script at the Redis server's time, or at now when
// it is not empty (for the differential test against the Go ledger).
func (s *RedisStore) lease(ctx context.Context, a *approvals.Approval, want int, now string) (ledger.Lease, error) {
	seen := s.seen.get(a.ID)
	res, err := leaseScript.Run(ctx, s.rdb, []string{s.usageKey(a.ID), s.key("grants:" + a.ID)},
		strconv.FormatFloat(a.MaxRPS, 'g', -1, 64), max(a.Burst, 1), a.MaxRequests, want,
		seen.floor, s.instance, seen.own, LedgerHold.Milliseconds(), now, rates.MaxWait.Microseconds()).Int64Slice()
	if err != nil || len(res) != 5 {
		return ledger.Lease{}, unavailable("lease", err)
	}
	s.seen.add(a.ID, res[0], res[3])
	return ledger.Lease{
		Granted:    int(res[0]),
		RetryAfter: time.Duration(res[1]) * time.Microsecond,
		Remaining:  res[2],
		Recovering: res[4] == 1,
	}, nil
}

// Release implements Store.
func (s *RedisStore) Release(ctx context.Context, id string, n int) error {
	if n <= 0 {
		return nil
	}
	if err := releaseScript.Run(ctx, s.rdb, []string{s.usageKey(id)}, n).Err(); err != nil {
		return unavailable("release", err)
	}
	return nil
}

// RecordUsage implements Store.
func (s *RedisStore) RecordUsage(ctx context.Context, id string, d approvals.Usage) error {
	var seen int64
	if d.LastSeen != nil {
		seen = d.LastSeen.UnixMilli()
	}
	err := recordScript.Run(ctx, s.rdb, []string{s.usageKey(id)},
		d.Allowed, d.RateLimited, d.BudgetExhausted, d.OutOfScope, d.PlatformBusy, d.CapacityFull, seen, d.Hour(s.now()).Unix()).Err()
	if err != nil {
		return unavailable("record usage", err)
	}
	return nil
}

// History implements Store.
func (s *RedisStore) History(ctx context.Context, id string) (approvals.History, error) {
	if _, err := s.Approval(ctx, id); err != nil {
		return approvals.History{}, err
	}
	all, err := s.rdb.HGetAll(ctx, s.usageKey(id)).Result()
	if err != nil {
		return approvals.History{}, unavailable("usage history", err)
	}
	out := approvals.History{Hours: []approvals.HourUsage{}}
	if ms, _ := strconv.ParseInt(all["first_seen"], 10, 64); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		out.FirstSeen = &t
	}
	hours := map[int64]*approvals.HourUsage{}
	for k, v := range all {
		rest, ok := strings.CutPrefix(k, "h:")
		if !ok {
			continue
		}
		hs, field, _ := strings.Cut(rest, ":")
		hour, err1 := strconv.ParseInt(hs, 10, 64)
		n, err2 := strconv.ParseInt(v, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		h := hours[hour]
		if h == nil {
			h = &approvals.HourUsage{Hour: time.Unix(hour, 0).UTC()}
			hours[hour] = h
		}
		switch field {
		case "allowed":
			h.Allowed = n
		case "rate_limited":
			h.RateLimited = n
		case "budget_exhausted":
			h.BudgetExhausted = n
		case "out_of_scope":
			h.OutOfScope = n
		case "platform_busy":
			h.PlatformBusy = n
		case "capacity_full":
			h.CapacityFull = n
		}
	}
	for _, h := range hours {
		out.Hours = append(out.Hours, *h)
	}
	slices.SortFunc(out.Hours, func(a, b approvals.HourUsage) int { return a.Hour.Compare(b.Hour) })
	return out, nil
}

// withUsage reads the usage of each approval in one round trip.
func (s *RedisStore) withUsage(ctx context.Context, list []*approvals.Approval) error {
	if len(list) == 0 {
		return nil
	}
	cmds := make([]*redis.SliceCmd, len(list))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range list {
			cmds[i] = p.HMGet(ctx, s.usageKey(a.ID), usageFields...)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, a := range list {
		v := cmds[i].Val()
		n := func(j int) int64 {
			str, _ := v[j].(string)
			x, _ := strconv.ParseInt(str, 10, 64)
			return x
		}
		a.Usage = approvals.Usage{Allowed: n(0), RateLimited: n(1), BudgetExhausted: n(2), OutOfScope: n(3), PlatformBusy: n(4), CapacityFull: n(5)}
		if ms := n(6); ms > 0 {
			t := time.UnixMilli(ms).UTC()
			a.Usage.LastSeen = &t
		}
	}
	return nil
}
