package approvals

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// leaseScript is ledger.take in Lua, run on the Redis server with its clock,
// so that every instance shares one bucket and one budget per approval.
// KEYS[1] is the approval's usage hash; ARGV are max_rps, burst,
// max_requests and the number of admissions wanted. It returns the number
// granted, the microseconds until a whole lease is due when none was, and
// the budget remaining.
var leaseScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxreq = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'tokens', 'refill', 'granted')
local tokens = tonumber(h[1])
local refill = tonumber(h[2])
local granted = tonumber(h[3]) or 0
if tokens == nil or refill == nil then
	tokens = burst
	refill = now
end
if now > refill then
	tokens = math.min(burst, tokens + (now - refill) * rate)
	refill = now
end
local remaining = maxreq - granted
local n = math.min(want, math.floor(tokens), remaining, math.max(1, math.floor(remaining / 8)))
if n < 0 then n = 0 end
tokens = tokens - n
granted = granted + n
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'refill', tostring(refill), 'granted', granted)
local retry = 0
if n == 0 and remaining > 0 then
	local need = math.min(want, remaining, math.max(1, math.floor(remaining / 8)), burst)
	retry = math.ceil((need - tokens) * 1000000 / rate)
end
return {n, retry, remaining - n}
`)

// releaseScript gives n leased admissions back to the budget, inside the
// ledger like a lease: granted never goes below zero (after a failover or a
// restore lost grants, a release must not hand the budget out twice), and
// a usage hash that does not exist is not created. KEYS[1] is the usage
// hash; ARGV[1] is n. It returns granted after the release.
var releaseScript = redis.NewScript(`
local granted = tonumber(redis.call('HGET', KEYS[1], 'granted'))
if granted == nil then return 0 end
granted = math.max(0, granted - tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'granted', granted)
return granted
`)

// recordScript adds usage counts, to the totals and to one hour's, and
// keeps the earliest first_seen and the latest last_seen. KEYS[1] is the
// usage hash; ARGV are allowed, rate_limited, budget_exhausted,
// out_of_scope, last_seen in Unix milliseconds, and the hour (Unix seconds).
var recordScript = redis.NewScript(`
local fields = {'allowed', 'rate_limited', 'budget_exhausted', 'out_of_scope'}
for i, f in ipairs(fields) do
	local n = tonumber(ARGV[i])
	if n ~= 0 then
		redis.call('HINCRBY', KEYS[1], f, n)
		redis.call('HINCRBY', KEYS[1], 'h:' .. ARGV[6] .. ':' .. f, n)
	end
end
local seen = tonumber(ARGV[5])
if seen > 0 then
	local cur = tonumber(redis.call('HGET', KEYS[1], 'last_seen') or '0')
	if seen > cur then redis.call('HSET', KEYS[1], 'last_seen', ARGV[5]) end
	local first = tonumber(redis.call('HGET', KEYS[1], 'first_seen') or '0')
	if first == 0 or seen < first then redis.call('HSET', KEYS[1], 'first_seen', ARGV[5]) end
end
return 1
`)

var usageFields = []string{"allowed", "rate_limited", "budget_exhausted", "out_of_scope", "last_seen"}

func (s *RedisStore) usageKey(id string) string { return s.key("usage:" + id) }

// Lease implements Store.
func (s *RedisStore) Lease(ctx context.Context, a *Approval, want int) (Lease, error) {
	res, err := leaseScript.Run(ctx, s.rdb, []string{s.usageKey(a.ID)},
		strconv.FormatFloat(a.MaxRPS, 'g', -1, 64), max(a.Burst, 1), a.MaxRequests, want).Int64Slice()
	if err != nil || len(res) != 3 {
		return Lease{}, unavailable("lease", err)
	}
	return Lease{Granted: int(res[0]), RetryAfter: time.Duration(res[1]) * time.Microsecond, Remaining: res[2]}, nil
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
func (s *RedisStore) RecordUsage(ctx context.Context, id string, d Usage) error {
	var seen int64
	if d.LastSeen != nil {
		seen = d.LastSeen.UnixMilli()
	}
	err := recordScript.Run(ctx, s.rdb, []string{s.usageKey(id)},
		d.Allowed, d.RateLimited, d.BudgetExhausted, d.OutOfScope, seen, usageHour(d, s.now()).Unix()).Err()
	if err != nil {
		return unavailable("record usage", err)
	}
	return nil
}

// History implements Store.
func (s *RedisStore) History(ctx context.Context, id string) (History, error) {
	if _, err := s.Approval(ctx, id); err != nil {
		return History{}, err
	}
	all, err := s.rdb.HGetAll(ctx, s.usageKey(id)).Result()
	if err != nil {
		return History{}, unavailable("usage history", err)
	}
	out := History{Hours: []HourUsage{}}
	if ms, _ := strconv.ParseInt(all["first_seen"], 10, 64); ms > 0 {
		t := time.UnixMilli(ms).UTC()
		out.FirstSeen = &t
	}
	hours := map[int64]*HourUsage{}
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
			h = &HourUsage{Hour: time.Unix(hour, 0).UTC()}
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
		}
	}
	for _, h := range hours {
		out.Hours = append(out.Hours, *h)
	}
	slices.SortFunc(out.Hours, func(a, b HourUsage) int { return a.Hour.Compare(b.Hour) })
	return out, nil
}

// withUsage reads the usage of each approval in one round trip.
func (s *RedisStore) withUsage(ctx context.Context, list []*Approval) error {
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
		a.Usage = Usage{Allowed: n(0), RateLimited: n(1), BudgetExhausted: n(2), OutOfScope: n(3)}
		if ms := n(4); ms > 0 {
			t := time.UnixMilli(ms).UTC()
			a.Usage.LastSeen = &t
		}
	}
	return nil
}
