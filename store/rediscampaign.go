package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/detect/campaign"
)

// Campaign evidence in Redis: each key's networks and paths go into
// HyperLogLogs, one a quarter of the window ("<prefix>{state}:campaign:n:
// <key>:<slot>" and ":p:"), so that every instance's evidence is counted
// once however the requests were spread between them, in 12 KiB a key at
// most; the campaigns in force are one hash ("<prefix>{state}:campaigns",
// field <key>, value the end in Unix milliseconds). Every key carries the
// {state} tag, so one pipeline reaches one node of a Cluster.

var _ campaign.Board = (*RedisStore)(nil)

// campaignSlots is how many slots a window is cut into.
const campaignSlots = 4

// ShareCampaigns implements campaign.Board.
func (s *RedisStore) ShareCampaigns(ctx context.Context, evidence []campaign.Evidence, inForce []campaign.Key, until, at time.Time, window time.Duration) (map[campaign.Key]campaign.Count, map[campaign.Key]time.Time, error) {
	slotLen := max(window/campaignSlots, time.Millisecond)
	slot := at.UnixMilli() / slotLen.Milliseconds()
	type members struct{ networks, paths []any }
	byKey := map[campaign.Key]*members{}
	for _, e := range evidence {
		m := byKey[e.Key]
		if m == nil {
			m = &members{}
			byKey[e.Key] = m
		}
		m.networks = append(m.networks, strconv.FormatUint(e.Network, 36))
		m.paths = append(m.paths, strconv.FormatUint(e.Path, 36))
	}
	type counted struct{ networks, paths *redis.IntCmd }
	counts := map[campaign.Key]counted{}
	active := s.key("campaigns")
	var all *redis.MapStringStringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for k, m := range byKey {
			field := campaignField(k)
			n, ps := s.campaignKey("n", field, slot), s.campaignKey("p", field, slot)
			p.PFAdd(ctx, n, m.networks...)
			p.PFAdd(ctx, ps, m.paths...)
			p.PExpire(ctx, n, window+2*slotLen)
			p.PExpire(ctx, ps, window+2*slotLen)
			var nk, pk []string
			for i := int64(0); i <= campaignSlots; i++ {
				nk = append(nk, s.campaignKey("n", field, slot-i))
				pk = append(pk, s.campaignKey("p", field, slot-i))
			}
			counts[k] = counted{p.PFCount(ctx, nk...), p.PFCount(ctx, pk...)}
		}
		if len(inForce) > 0 {
			ms := strconv.FormatInt(until.UnixMilli(), 10)
			values := make([]any, 0, 2*len(inForce))
			for _, k := range inForce {
				values = append(values, campaignField(k), ms)
			}
			p.HSet(ctx, active, values...)
			p.PExpire(ctx, active, 2*window)
		}
		all = p.HGetAll(ctx, active)
		return nil
	})
	if err != nil {
		return nil, nil, s.wrap("share campaigns", err)
	}
	out := make(map[campaign.Key]campaign.Count, len(counts))
	for k, c := range counts {
		out[k] = campaign.Count{Networks: int(c.networks.Val()), Paths: int(c.paths.Val())}
	}
	shared := map[campaign.Key]time.Time{}
	var ended []string
	for field, v := range all.Val() {
		k, ok := parseCampaignField(field)
		ms, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || ms <= at.UnixMilli() {
			ended = append(ended, field)
			continue
		}
		shared[k] = time.UnixMilli(ms)
	}
	if len(ended) > 0 {
		// Best effort: the next share tries again.
		_ = s.rdb.HDel(ctx, active, ended...).Err()
	}
	return out, shared, nil
}

// campaignField is k as a field: the shape in 16 hexadecimal digits, then
// the tenant.
func campaignField(k campaign.Key) string { return fmt.Sprintf("%016x%s", k.Shape, k.Tenant) }

func parseCampaignField(f string) (campaign.Key, bool) {
	if len(f) < 16 {
		return campaign.Key{}, false
	}
	shape, err := strconv.ParseUint(f[:16], 16, 64)
	return campaign.Key{Tenant: f[16:], Shape: shape}, err == nil
}

func (s *RedisStore) campaignKey(kind, field string, slot int64) string {
	return s.key("campaign:" + kind + ":" + field + ":" + strconv.FormatInt(slot, 10))
}
