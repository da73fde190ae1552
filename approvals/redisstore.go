package approvals

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps approvals, bans and the audit stream in Redis, shared by
// every instance that uses the same key prefix. Each change is one MULTI
// transaction that writes the record, appends the audit event and publishes a
// notification, so other instances hear of it at once and nothing is ever
// half-written. All keys carry one hash tag, so the transactions also work on
// Redis Cluster.
type RedisStore struct {
	rdb      redis.UniversalClient
	prefix   string
	now      func() time.Time
	instance string // tags our own notifications so we can ignore them
	seen     grantsSeen

	changes chan struct{}
	ps      *redis.PubSub
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// AuditStreamMaxLen caps the audit stream (approximately, as XADD MAXLEN ~ does).
const AuditStreamMaxLen = 100_000

// NewRedisStore uses rdb under key prefix and starts listening for other
// instances' changes. now is the clock for audit times (time.Now when nil).
// The store owns rdb and closes it in Close.
func NewRedisStore(rdb redis.UniversalClient, prefix string, now func() time.Time) *RedisStore {
	if now == nil {
		now = time.Now
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	ctx, cancel := context.WithCancel(context.Background())
	s := &RedisStore{
		rdb:      rdb,
		prefix:   prefix,
		now:      now,
		instance: hex.EncodeToString(id[:]),
		changes:  make(chan struct{}, 1),
		cancel:   cancel,
	}
	watchFailover(rdb)
	s.ps = rdb.Subscribe(ctx, s.channel())
	s.done.Add(1)
	go s.listen(ctx, s.ps)
	return s
}

// key names one of the store's keys. The "{state}" hash tag puts them all in
// one Cluster slot.
func (s *RedisStore) key(name string) string { return s.prefix + "{state}:" + name }

func (s *RedisStore) channel() string { return s.prefix + "changes" }

// listen turns notifications and (re)subscriptions into Changes signals. A
// subscription confirmation follows every reconnect, and notifications sent
// while we were away are lost, so it asks for a full re-read too.
func (s *RedisStore) listen(ctx context.Context, ps *redis.PubSub) {
	defer s.done.Done()
	backoff := 50 * time.Millisecond
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			s.signal()
		case *redis.Message:
			if m.Payload != s.instance {
				s.signal()
			}
		}
	}
}

func (s *RedisStore) signal() {
	select {
	case s.changes <- struct{}{}:
	default: // a signal is already pending; one re-read covers both
	}
}

// Kind implements Store.
func (s *RedisStore) Kind() string { return "redis" }

// Changes implements Store.
func (s *RedisStore) Changes() <-chan struct{} { return s.changes }

// Ping implements Store.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("redis ping", err)
	}
	return nil
}

// Close implements Store.
func (s *RedisStore) Close() error {
	s.cancel()
	err := s.ps.Close() // unblocks a Receive waiting on the socket
	s.done.Wait()
	return errors.Join(err, s.rdb.Close())
}

// logAndNotify queues, inside a transaction, the audit event for a change
// and the notification other instances listen for.
func (s *RedisStore) logAndNotify(ctx context.Context, pipe redis.Pipeliner, ev AuditEvent) error {
	ev.Time = s.now().UTC()
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	pipe.XAdd(ctx, &redis.XAddArgs{
		Stream: s.key("audit"),
		MaxLen: AuditStreamMaxLen,
		Approx: true,
		Values: []any{"event", b},
	})
	pipe.Publish(ctx, s.channel(), s.instance)
	return nil
}

// update runs fn in a WATCH transaction over keys, retrying when another
// writer got there first.
func (s *RedisStore) update(ctx context.Context, op string, fn func(*redis.Tx) error, keys ...string) error {
	for range 20 {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return s.wrap(op, err)
		}
	}
	return unavailable(op, errors.New("too much contention; try again"))
}

// wrap marks failures to talk to Redis as ErrUnavailable and passes the
// store's own errors through.
func (s *RedisStore) wrap(op string, err error) error {
	switch {
	case err == nil,
		errors.Is(err, ErrNotFound),
		errors.Is(err, ErrExists),
		errors.Is(err, ErrAlreadyRevoked):
		return err
	}
	return unavailable(op, err)
}

// CreateApproval implements Store.
func (s *RedisStore) CreateApproval(ctx context.Context, a *Approval, actor string) error {
	key := s.key("approvals")
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.update(ctx, "create approval", func(tx *redis.Tx) error {
		exists, err := tx.HExists(ctx, key, a.ID).Result()
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("approval %s: %w", a.ID, ErrExists)
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, a.ID, b)
			return s.logAndNotify(ctx, pipe, AuditEvent{Action: ActionApprovalCreated, Actor: actor, Approval: a})
		})
		return err
	}, key)
}

// RevokeApproval implements Store.
func (s *RedisStore) RevokeApproval(ctx context.Context, id, reason, actor string, at time.Time) (*Approval, error) {
	key := s.key("approvals")
	var out *Approval
	err := s.update(ctx, "revoke approval", func(tx *redis.Tx) error {
		cur, err := s.getApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.RevokedAt != nil {
			out = cur
			return fmt.Errorf("approval %s: %w", id, ErrAlreadyRevoked)
		}
		a := revoked(cur, reason, at)
		b, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, id, b)
			return s.logAndNotify(ctx, pipe, AuditEvent{Action: ActionApprovalRevoked, Actor: actor, Approval: a})
		})
		out = a
		return err
	}, key)
	return out, err
}

func (s *RedisStore) getApproval(ctx context.Context, c redis.Cmdable, id string) (*Approval, error) {
	b, err := c.HGet(ctx, s.key("approvals"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("approval %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var a Approval
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("approval %s: stored record is corrupt: %w", id, err)
	}
	return &a, nil
}

// Approval implements Store.
func (s *RedisStore) Approval(ctx context.Context, id string) (*Approval, error) {
	a, err := s.getApproval(ctx, s.rdb, id)
	if err == nil {
		err = s.withUsage(ctx, []*Approval{a})
	}
	return a, s.wrap("get approval", err)
}

// Approvals implements Store.
func (s *RedisStore) Approvals(ctx context.Context) ([]*Approval, error) {
	all, err := s.rdb.HGetAll(ctx, s.key("approvals")).Result()
	if err != nil {
		return nil, unavailable("list approvals", err)
	}
	out := make([]*Approval, 0, len(all))
	for id, v := range all {
		var a Approval
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("approval %s: stored record is corrupt: %w", id, err)
		}
		out = append(out, &a)
	}
	if err := s.withUsage(ctx, out); err != nil {
		return nil, unavailable("list approvals", err)
	}
	return out, nil
}

// AddBan implements Store. Expired bans are pruned in the same transaction.
func (s *RedisStore) AddBan(ctx context.Context, b Ban, actor string) error {
	bans, expiry := s.key("bans"), s.key("bans:expiry")
	rec, err := json.Marshal(b)
	if err != nil {
		return err
	}
	member := b.Prefix.String()
	now := s.now()
	return s.update(ctx, "add ban", func(tx *redis.Tx) error {
		stale, err := tx.ZRangeByScore(ctx, expiry, &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10)}).Result()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			if len(stale) > 0 {
				pipe.HDel(ctx, bans, stale...)
				pipe.ZRem(ctx, expiry, toAny(stale)...)
			}
			pipe.HSet(ctx, bans, member, rec)
			pipe.ZAdd(ctx, expiry, redis.Z{Score: float64(b.ExpiresAt.UnixMilli()), Member: member})
			return s.logAndNotify(ctx, pipe, AuditEvent{Action: ActionBanAdded, Actor: actor, Ban: &b})
		})
		return err
	}, bans, expiry)
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// RemoveBan implements Store.
func (s *RedisStore) RemoveBan(ctx context.Context, p netip.Prefix, actor string, at time.Time) (Ban, error) {
	bans, expiry := s.key("bans"), s.key("bans:expiry")
	member := p.String()
	var out Ban
	err := s.update(ctx, "remove ban", func(tx *redis.Tx) error {
		b, err := tx.HGet(ctx, bans, member).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("ban %s: %w", p, ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("ban %s: stored record is corrupt: %w", p, err)
		}
		if !out.ActiveAt(at) {
			return fmt.Errorf("ban %s: %w", p, ErrNotFound)
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HDel(ctx, bans, member)
			pipe.ZRem(ctx, expiry, member)
			return s.logAndNotify(ctx, pipe, AuditEvent{Action: ActionBanRemoved, Actor: actor, Ban: &out})
		})
		return err
	}, bans, expiry)
	return out, err
}

// Bans implements Store.
func (s *RedisStore) Bans(ctx context.Context, now time.Time) ([]Ban, error) {
	members, err := s.rdb.ZRangeByScore(ctx, s.key("bans:expiry"), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, unavailable("list bans", err)
	}
	if len(members) == 0 {
		return nil, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.key("bans"), members...).Result()
	if err != nil {
		return nil, unavailable("list bans", err)
	}
	out := make([]Ban, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // lifted between the two reads
		}
		var b Ban
		if err := json.Unmarshal([]byte(str), &b); err != nil {
			return nil, fmt.Errorf("ban %s: stored record is corrupt: %w", members[i], err)
		}
		if b.ActiveAt(now) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Ban) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Audit implements Store. It pages back through the stream from the newest
// entry and stops at the first event older than since: events are appended
// in time order, and stream IDs carry Redis's clock, not ours, so they are no
// use for the cut.
func (s *RedisStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	since, limit := q.Since, q.Limit
	out := make([]AuditEvent, 0, min(limit, 256))
	end := "+"
	for len(out) < limit {
		msgs, err := s.rdb.XRevRangeN(ctx, s.key("audit"), end, "-", 256).Result()
		if err != nil {
			return nil, unavailable("read audit", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["event"].(string)
			var ev AuditEvent
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				return nil, fmt.Errorf("audit entry %s is corrupt: %w", m.ID, err)
			}
			if ev.Time.Before(since) {
				return out, nil
			}
			if !q.wants(ev) {
				continue
			}
			ev.ID = m.ID
			out = append(out, ev)
			if len(out) == limit {
				return out, nil
			}
		}
		if len(msgs) < 256 {
			return out, nil
		}
		end = "(" + msgs[len(msgs)-1].ID
	}
	return out, nil
}
