package store

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// StressBoard is a store through which the instances in front of one
// platform share what their impact guards see (the Redis store; the file
// store serves one instance and has none).
type StressBoard interface {
	// ShareStress records instance's stress at at and returns the worst
	// stress another instance reported in the last StressFresh.
	ShareStress(ctx context.Context, instance string, stress float64, at time.Time) (worst float64, err error)
}

// StressFresh is how old another instance's report may be and still count:
// instances report every half second, so one that stopped is forgotten
// within two.
const StressFresh = 2 * time.Second

// stressScript records KEYS[1][ARGV[1]] = "stress ms" and returns the
// worst fresh stress of the other fields, dropping reports older than a
// minute. ARGV: instance, stress, now (ms), fresh (ms).
var stressScript = redis.NewScript(`
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], 60000)
local now, fresh, worst = tonumber(ARGV[3]), tonumber(ARGV[4]), 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
	local stress, at = string.match(all[i + 1], '^(%S+) (%d+)$')
	at = tonumber(at)
	if at == nil or now - at > 60000 then
		redis.call('HDEL', KEYS[1], all[i])
	elseif all[i] ~= ARGV[1] and now - at <= fresh then
		worst = math.max(worst, tonumber(stress) or 0)
	end
end
return tostring(worst)
`)

// ShareStress implements StressBoard.
func (s *RedisStore) ShareStress(ctx context.Context, instance string, stress float64, at time.Time) (float64, error) {
	res, err := stressScript.Run(ctx, s.rdb, []string{s.key("guard")}, instance,
		strconv.FormatFloat(stress, 'g', 6, 64), at.UnixMilli(), StressFresh.Milliseconds()).Text()
	if err != nil {
		return 0, s.wrap("share stress", err)
	}
	return strconv.ParseFloat(res, 64)
}
