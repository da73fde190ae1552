package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/redis/go-redis/v9"
)

// RedisStore keeps approvals, bans and the audit streams in Redis, shared by
// every instance that uses the same key prefix. Each change is one MULTI
// transaction that writes the record, appends the audit event and publishes a
// notification, so other instances hear of it at once and nothing is ever
// half-written. A notification of new bans carries the bans, so that other
// instances add them to what they hold instead of reading every ban again.
// All keys carry one hash tag, so the transactions also work on Redis
// Cluster.
//
// Approval events go to one stream, kept whole: they are the evidence the
// audit exists for, and a few a day. Ban events go to another, capped at
// BanAuditMaxLen, so that a flood of scanners never evicts approval history.
type RedisStore struct {
	rdb      redis.UniversalClient
	prefix   string
	now      func() time.Time
	instance string // tags our own notifications so we can ignore them
	seen     grantsSeen
	// banAuditMax is BanAuditMaxLen but in tests.
	banAuditMax int64

	changes chan struct{}
	pendMu  sync.Mutex
	pending Change // what other instances changed; see Pending
	ps      *redis.PubSub
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// BanAuditMaxLen caps the stream of ban events (approximately, as XADD
// MAXLEN ~ does). Approval events are never trimmed.
const BanAuditMaxLen = 100_000

// maxPendingBans bounds the bans heard of and not yet taken by Pending;
// beyond it the next Pending asks for a whole re-read instead.
const maxPendingBans = 200_000

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
		rdb:         rdb,
		prefix:      prefix,
		now:         now,
		instance:    hex.EncodeToString(id[:]),
		changes:     make(chan struct{}, 1),
		banAuditMax: BanAuditMaxLen,
		cancel:      cancel,
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

// Kind implements Store.
func (s *RedisStore) Kind() string { return "redis" }

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

// update runs fn in a WATCH transaction over keys, retrying when another
// writer got there first, after a short random pause that grows with each
// try so that writers racing for one key spread out.
func (s *RedisStore) update(ctx context.Context, op string, fn func(*redis.Tx) error, keys ...string) error {
	for try := range 50 {
		err := s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return s.wrap(op, err)
		}
		pause := time.Duration(mrand.Int64N(int64(time.Millisecond) * int64(min(try+1, 20))))
		select {
		case <-ctx.Done():
			return unavailable(op, ctx.Err())
		case <-time.After(pause):
		}
	}
	return unavailable(op, errors.New("too much contention; try again"))
}

// wrap marks failures to talk to Redis as approvals.ErrUnavailable and passes the
// store's own errors through.
func (s *RedisStore) wrap(op string, err error) error {
	switch {
	case err == nil,
		errors.Is(err, approvals.ErrNotFound),
		errors.Is(err, approvals.ErrExists),
		errors.Is(err, approvals.ErrAlreadyRevoked):
		return err
	}
	return unavailable(op, err)
}

// CreateApproval implements Store.
func (s *RedisStore) CreateApproval(ctx context.Context, a *approvals.Approval, by approvals.Identity, capacity float64) error {
	key := s.key("approvals")
	ev := created(a, by)
	var refused error
	err := s.update(ctx, "create approval", func(tx *redis.Tx) error {
		exists, err := tx.HExists(ctx, key, a.ID).Result()
		if err != nil {
			return err
		}
		if exists {
			return fmt.Errorf("approval %s: %w", a.ID, approvals.ErrExists)
		}
		if capacity > 0 && ev.Action == audit.ActionApprovalCreated {
			// The hash is watched: an approval another instance adds
			// before this transaction commits makes it retry, and the
			// retry checks again with it. An exhausted approval holds no
			// capacity (see stored).
			stored, err := s.stored(ctx, tx)
			if err != nil {
				return err
			}
			if refused = approvals.CheckCapacity(stored, a, capacity, a.CreatedAt); refused != nil {
				return refused
			}
		}
		return s.writeApproval(ctx, tx, a, ev)
	}, key, s.headKey("approval"))
	if refused != nil && errors.Is(err, refused) {
		return refused
	}
	return err
}

// MoveApproval implements Store: the record is read and moved inside a
// WATCH transaction over the approvals hash, so a concurrent move (another
// approver's review, a second hand-out of the token) makes this one retry
// on the record that move left, where Apply counts it or refuses.
func (s *RedisStore) MoveApproval(ctx context.Context, id string, m approvals.Move, capacity float64, at time.Time) (*approvals.Approval, string, error) {
	key := s.key("approvals")
	var (
		out     *approvals.Approval
		action  string
		refused error
	)
	err := s.update(ctx, "move approval", func(tx *redis.Tx) error {
		cur, err := s.getApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		a, ev, err := moved(cur, m, at)
		if err != nil {
			refused = err
			return err
		}
		if capacity > 0 && ev.Action == approvals.ActionApproved {
			// As in CreateApproval: the watched hash holds every
			// approval, so one approved meanwhile makes this retry.
			stored, err := s.stored(ctx, tx)
			if err != nil {
				return err
			}
			if refused = approvals.CheckCapacity(stored, a, capacity, at); refused != nil {
				return refused
			}
		}
		out, action = a, ev.Action
		return s.writeApproval(ctx, tx, a, ev)
	}, key, s.headKey("approval"))
	if refused != nil && errors.Is(err, refused) {
		return nil, "", refused
	}
	if err != nil {
		return nil, "", err
	}
	return out, action, nil
}

// writeApproval stores a and its event ev, linked after the approval
// chain's head, in tx's MULTI: the record and its event are written
// together or not at all, and other instances are told.
func (s *RedisStore) writeApproval(ctx context.Context, tx *redis.Tx, a *approvals.Approval, ev audit.Event) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	head, err := s.chainHead(ctx, tx, "approval")
	if err != nil {
		return err
	}
	_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, s.key("approvals"), a.ID, b)
		return s.logAndNotify(ctx, pipe, head, ev)
	})
	return err
}

// stored reads every approval, with its usage, for a capacity check inside
// tx. Usage is read beside the transaction, for it only grows (read a
// moment early, it can only keep holding an approval that has just run
// out, never free too much).
func (s *RedisStore) stored(ctx context.Context, tx *redis.Tx) ([]*approvals.Approval, error) {
	list, err := s.decodeApprovals(tx.HGetAll(ctx, s.key("approvals")))
	if err != nil {
		return nil, err
	}
	return list, s.withUsage(ctx, list)
}

// RevokeApproval implements Store.
func (s *RedisStore) RevokeApproval(ctx context.Context, id, reason string, by approvals.Identity, at time.Time) (*approvals.Approval, error) {
	key := s.key("approvals")
	var out *approvals.Approval
	err := s.update(ctx, "revoke approval", func(tx *redis.Tx) error {
		cur, err := s.getApproval(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.RevokedAt != nil {
			out = cur
			return fmt.Errorf("approval %s: %w", id, approvals.ErrAlreadyRevoked)
		}
		a := revoked(cur, reason, by, at)
		ev := madeBy(audit.ActionApprovalRevoked, by)
		ev.Approval = a
		out = a
		return s.writeApproval(ctx, tx, a, ev)
	}, key, s.headKey("approval"))
	return out, err
}

// NoteGuard implements Store: the event alone, linked after the chain's
// watched head, and no notification, for no record changed.
func (s *RedisStore) NoteGuard(ctx context.Context, action, note, actor, tenant string) error {
	if !audit.GuardAction(action) {
		return fmt.Errorf("note guard: %q is not an impact guard action", action)
	}
	content, err := (audit.Event{Time: s.now().UTC(), Action: action, Actor: actor, Note: note, Tenant: tenant}).Content()
	if err != nil {
		return err
	}
	return s.update(ctx, "note guard", func(tx *redis.Tx) error {
		head, err := s.chainHead(ctx, tx, "approval")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			return s.logEvents(ctx, pipe, head, "approval", content)
		})
		return err
	}, s.headKey("approval"))
}

func (s *RedisStore) getApproval(ctx context.Context, c redis.Cmdable, id string) (*approvals.Approval, error) {
	b, err := c.HGet(ctx, s.key("approvals"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("approval %s: %w", id, approvals.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	var a approvals.Approval
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("approval %s: stored record is corrupt: %w", id, err)
	}
	return &a, nil
}

// Approval implements Store.
func (s *RedisStore) Approval(ctx context.Context, id string) (*approvals.Approval, error) {
	a, err := s.getApproval(ctx, s.rdb, id)
	if err == nil {
		err = s.withUsage(ctx, []*approvals.Approval{a})
	}
	return a, s.wrap("get approval", err)
}

// Approvals implements Store.
func (s *RedisStore) Approvals(ctx context.Context) ([]*approvals.Approval, error) {
	out, err := s.decodeApprovals(s.rdb.HGetAll(ctx, s.key("approvals")))
	if err != nil {
		return nil, err
	}
	if err := s.withUsage(ctx, out); err != nil {
		return nil, unavailable("list approvals", err)
	}
	return out, nil
}

// decodeApprovals decodes the approvals hash cmd read.
func (s *RedisStore) decodeApprovals(cmd *redis.MapStringStringCmd) ([]*approvals.Approval, error) {
	all, err := cmd.Result()
	if err != nil {
		return nil, unavailable("list approvals", err)
	}
	out := make([]*approvals.Approval, 0, len(all))
	for id, v := range all {
		var a approvals.Approval
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("approval %s: stored record is corrupt: %w", id, err)
		}
		out = append(out, &a)
	}
	return out, nil
}

// pruneBansScript drops up to 1000 bans that expired before ARGV[1] (Unix
// milliseconds). KEYS are the bans hash and the expiry set.
var pruneBansScript = redis.NewScript(`
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, 1000)
if #stale > 0 then
	redis.call('HDEL', KEYS[1], unpack(stale))
	redis.call('ZREM', KEYS[2], unpack(stale))
end
return #stale
`)

// AddBan implements Store.
func (s *RedisStore) AddBan(ctx context.Context, b approvals.Ban, by approvals.Identity) error {
	return s.addBans(ctx, []approvals.Ban{b}, madeBy(audit.ActionBanAdded, by))
}

// AddBans implements Store.
func (s *RedisStore) AddBans(ctx context.Context, list []approvals.Ban, actor string) error {
	return s.addBans(ctx, list, audit.Event{Action: audit.ActionBanAdded, Actor: actor})
}

// addBans stores list in one MULTI transaction that prunes expired bans,
// stores the new ones, links their audit events (ev, each with its ban)
// into the ban chain and publishes them. The chain's head is watched: when
// another instance extended the chain first, the batch is linked again
// after its events.
func (s *RedisStore) addBans(ctx context.Context, list []approvals.Ban, ev audit.Event) error {
	if len(list) == 0 {
		return nil
	}
	bans, expiry := s.key("bans"), s.key("bans:expiry")
	// Each ban's record is encoded once, for the hash and inside its audit
	// event's content: {"time":…,"action":"ban.added","actor":…,"ban":record}.
	ev.Time = s.now().UTC()
	head, err := ev.Content()
	if err != nil {
		return err
	}
	head = append(head[:len(head)-1], `,"ban":`...)
	fields := make([]any, 0, 2*len(list))
	scores := make([]redis.Z, 0, len(list))
	contents := make([][]byte, 0, len(list))
	for _, b := range list {
		rec, err := json.Marshal(b)
		if err != nil {
			return err
		}
		member := b.Prefix.String()
		fields = append(fields, member, rec)
		scores = append(scores, redis.Z{Score: float64(b.ExpiresAt.UnixMilli()), Member: member})
		contents = append(contents, append(append(slices.Clip(head), rec...), '}'))
	}
	return s.update(ctx, "add bans", func(tx *redis.Tx) error {
		chain, err := s.chainHead(ctx, tx, "ban")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pruneBansScript.Eval(ctx, pipe, []string{bans, expiry}, s.now().UnixMilli())
			pipe.HSet(ctx, bans, fields...)
			pipe.ZAdd(ctx, expiry, scores...)
			if err := s.logEvents(ctx, pipe, chain, "ban", contents...); err != nil {
				return err
			}
			return s.notify(ctx, pipe, list)
		})
		return err
	}, s.headKey("ban"))
}

// RemoveBan implements Store.
func (s *RedisStore) RemoveBan(ctx context.Context, p netip.Prefix, by approvals.Identity, at time.Time) (approvals.Ban, error) {
	bans, expiry := s.key("bans"), s.key("bans:expiry")
	member := p.String()
	var out approvals.Ban
	err := s.update(ctx, "remove ban", func(tx *redis.Tx) error {
		b, err := tx.HGet(ctx, bans, member).Bytes()
		if errors.Is(err, redis.Nil) {
			return fmt.Errorf("ban %s: %w", p, approvals.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("ban %s: stored record is corrupt: %w", p, err)
		}
		if !out.ActiveAt(at) {
			return fmt.Errorf("ban %s: %w", p, approvals.ErrNotFound)
		}
		head, err := s.chainHead(ctx, tx, "ban")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HDel(ctx, bans, member)
			pipe.ZRem(ctx, expiry, member)
			ev := madeBy(audit.ActionBanRemoved, by)
			ev.Ban = &out
			return s.logAndNotify(ctx, pipe, head, ev)
		})
		return err
	}, bans, expiry, s.headKey("ban"))
	return out, err
}

// Bans implements Store.
func (s *RedisStore) Bans(ctx context.Context, now time.Time) ([]approvals.Ban, error) {
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
	out := make([]approvals.Ban, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // lifted between the two reads
		}
		var b approvals.Ban
		if err := json.Unmarshal([]byte(str), &b); err != nil {
			return nil, fmt.Errorf("ban %s: stored record is corrupt: %w", members[i], err)
		}
		if b.ActiveAt(now) {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b approvals.Ban) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}
