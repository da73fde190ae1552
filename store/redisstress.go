package store

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// StressBoard is a store through which the instances in front of one
// platform share what their impact guards see (the Redis store; the file
// store serves one instance and has none).
type StressBoard interface {
	// ShareStress records instance's stress (0 calm to 1 severe; clamped
	// to that) and returns the worst stress another instance reported in
	// the last StressFresh. Reports are dated by the store's clock, not by
	// any instance's, so a reporter whose clock runs fast cannot make its
	// report last.
	ShareStress(ctx context.Context, instance string, stress float64) (worst float64, err error)
}

// StressFresh is how old another instance's report may be and still count:
// instances report every half second, so one that stopped is forgotten
// within two.
const StressFresh = 2 * time.Second

// stressSkew is how far ahead of the store's clock a report may be dated
// and still count: none that this store wrote is, so one that is was
// written by hand or by a writer with another clock.
const stressSkew = time.Second

// stressScript records KEYS[1][ARGV[1]] = "stress ms", dated by the Redis
// server's clock, and returns the worst fresh stress of the other fields,
// clamped to [0, 1]. A report that is stale, dated ahead of the server's
// clock by more than the skew, or unparsable counts for nothing and is
// deleted. ARGV: instance, stress, fresh (ms), skew (ms). Redis replicates
// a script's effects, so reading TIME before writing is allowed.
var stressScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. now)
redis.call('PEXPIRE', KEYS[1], 60000)
local fresh, skew, worst = tonumber(ARGV[3]), tonumber(ARGV[4]), 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
	local stress, at = string.match(all[i + 1], '^(%S+) (%d+)$')
	stress, at = tonumber(stress), tonumber(at)
	if stress == nil or stress ~= stress or at == nil or now - at > fresh or at - now > skew then
		redis.call('HDEL', KEYS[1], all[i])
	elseif all[i] ~= ARGV[1] then
		worst = math.max(worst, math.min(1, math.max(0, stress)))
	end
end
return tostring(worst)
`)

// ShareStress implements StressBoard.
func (s *RedisStore) ShareStress(ctx context.Context, instance string, stress float64) (float64, error) {
	if math.IsNaN(stress) {
		stress = 0
	}
	stress = min(1, max(0, stress))
	res, err := stressScript.Run(ctx, s.rdb, []string{s.key("guard")}, instance,
		strconv.FormatFloat(stress, 'g', 6, 64), StressFresh.Milliseconds(), stressSkew.Milliseconds()).Text()
	if err != nil {
		return 0, s.wrap("share stress", err)
	}
	return strconv.ParseFloat(res, 64)
}
