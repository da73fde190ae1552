package approvals

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
	"strings"
	"sync"
	"time"

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
			s.heard(nil, true)
		case *redis.Message:
			var n notice
			if err := json.Unmarshal([]byte(m.Payload), &n); err != nil {
				// Not ours to read (another version): read everything.
				if m.Payload != s.instance {
					s.heard(nil, true)
				}
				continue
			}
			if n.From != s.instance {
				s.heard(fromWire(n.Bans), len(n.Bans) == 0)
			}
		}
	}
}

// notice is what a change publishes: who made it, and the bans it added
// when that is all it did. Bans travel in a compact form (times in Unix
// milliseconds): a flood publishes thousands a second, and every other
// instance decodes them.
type notice struct {
	From string    `json:"from"`
	Bans []wireBan `json:"bans,omitempty"`
}

type wireBan struct {
	Prefix  netip.Prefix `json:"p"`
	Reason  string       `json:"r"`
	Created int64        `json:"c"`
	Expires int64        `json:"e"`
	Auto    bool         `json:"a,omitempty"`
	Net     bool         `json:"n,omitempty"`
}

func toWire(bans []Ban) []wireBan {
	out := make([]wireBan, len(bans))
	for i, b := range bans {
		out[i] = wireBan{b.Prefix, b.Reason, b.CreatedAt.UnixMilli(), b.ExpiresAt.UnixMilli(), b.Automatic, b.Network}
	}
	return out
}

func fromWire(ws []wireBan) []Ban {
	out := make([]Ban, len(ws))
	for i, w := range ws {
		out[i] = Ban{Prefix: w.Prefix, Reason: w.Reason, CreatedAt: time.UnixMilli(w.Created).UTC(), ExpiresAt: time.UnixMilli(w.Expires).UTC(), Automatic: w.Auto, Network: w.Net}
	}
	return out
}

// heard queues what a notification said and signals Changes.
func (s *RedisStore) heard(bans []Ban, full bool) {
	s.pendMu.Lock()
	if full || len(s.pending.Bans)+len(bans) > maxPendingBans {
		s.pending = Change{Full: true}
	} else if !s.pending.Full {
		s.pending.Bans = append(s.pending.Bans, bans...)
	}
	s.pendMu.Unlock()
	s.signal()
}

// Pending implements Store.
func (s *RedisStore) Pending() Change {
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	c := s.pending
	s.pending = Change{}
	return c
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

// auditStream is the stream events of kind are appended to: "audit" for
// approvals (it held every kind before bans had their own), "audit:ban" for
// bans.
func (s *RedisStore) auditStream(kind string) string {
	if kind == "ban" {
		return s.key("audit:ban")
	}
	return s.key("audit")
}

// headKey holds the head of kind's audit chain, "seq hash"; each chain has
// its own, so that writers of one do not hold up writers of the other.
func (s *RedisStore) headKey(kind string) string { return s.key("audit:head:" + kind) }

// chainHead reads the head of kind's chain; inside a transaction, its key is
// watched, so a chain is never extended from a stale head.
func (s *RedisStore) chainHead(ctx context.Context, c redis.Cmdable, kind string) (ChainHead, error) {
	v, err := c.Get(ctx, s.headKey(kind)).Result()
	if errors.Is(err, redis.Nil) {
		return ChainHead{}, nil
	}
	if err != nil {
		return ChainHead{}, err
	}
	seq, hash, _ := strings.Cut(v, " ")
	n, err := strconv.ParseInt(seq, 10, 64)
	if _, ok := decodeHash([]byte(hash)); err != nil || n < 1 || !ok {
		return ChainHead{}, fmt.Errorf("audit chain head of %s is corrupt: %q", kind, v)
	}
	return ChainHead{Seq: n, Hash: hash}, nil
}

// logEvents queues, inside a transaction, events of kind with the
// canonical contents given, linked into their chain after head, and the
// chain's new head.
func (s *RedisStore) logEvents(ctx context.Context, pipe redis.Pipeliner, head ChainHead, kind string, contents ...[]byte) error {
	for _, c := range contents {
		line, next, err := chainEvent(head, "", c)
		if err != nil {
			return err
		}
		s.appendEvent(ctx, pipe, kind, line)
		head = next
	}
	pipe.Set(ctx, s.headKey(kind), strconv.FormatInt(head.Seq, 10)+" "+head.Hash, 0)
	return nil
}

// appendEvent queues the encoded event b on the stream of its kind; ban
// events are trimmed to banAuditMax.
func (s *RedisStore) appendEvent(ctx context.Context, pipe redis.Pipeliner, kind string, b []byte) {
	args := &redis.XAddArgs{Stream: s.auditStream(kind), Values: []any{"event", b}}
	if kind == "ban" {
		args.MaxLen, args.Approx = s.banAuditMax, s.banAuditMax >= 1000
	}
	pipe.XAdd(ctx, args)
}

// notify queues the notification other instances listen for: the bans
// added, or none for "read everything again".
func (s *RedisStore) notify(ctx context.Context, pipe redis.Pipeliner, bans []Ban) error {
	b, err := json.Marshal(notice{From: s.instance, Bans: toWire(bans)})
	if err != nil {
		return err
	}
	pipe.Publish(ctx, s.channel(), b)
	return nil
}

// logAndNotify queues the audit event for a change, after head in its
// chain, and a notification that asks other instances to read everything
// again.
func (s *RedisStore) logAndNotify(ctx context.Context, pipe redis.Pipeliner, head ChainHead, ev AuditEvent) error {
	ev.Time = s.now().UTC()
	content, err := ev.content()
	if err != nil {
		return err
	}
	if err := s.logEvents(ctx, pipe, head, ev.Kind(), content); err != nil {
		return err
	}
	return s.notify(ctx, pipe, nil)
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
		head, err := s.chainHead(ctx, tx, "approval")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, a.ID, b)
			return s.logAndNotify(ctx, pipe, head, AuditEvent{Action: ActionApprovalCreated, Actor: actor, Approval: a})
		})
		return err
	}, key, s.headKey("approval"))
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
		head, err := s.chainHead(ctx, tx, "approval")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HSet(ctx, key, id, b)
			return s.logAndNotify(ctx, pipe, head, AuditEvent{Action: ActionApprovalRevoked, Actor: actor, Approval: a})
		})
		out = a
		return err
	}, key, s.headKey("approval"))
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
func (s *RedisStore) AddBan(ctx context.Context, b Ban, actor string) error {
	return s.AddBans(ctx, []Ban{b}, actor)
}

// AddBans implements Store: one MULTI transaction that prunes expired bans,
// stores the new ones, links their audit events into the ban chain and
// publishes them. The chain's head is watched: when another instance
// extended the chain first, the batch is linked again after its events.
func (s *RedisStore) AddBans(ctx context.Context, list []Ban, actor string) error {
	if len(list) == 0 {
		return nil
	}
	bans, expiry := s.key("bans"), s.key("bans:expiry")
	// Each ban's record is encoded once, for the hash and inside its audit
	// event's content: {"time":…,"action":"ban.added","actor":…,"ban":record}.
	head, err := (AuditEvent{Time: s.now().UTC(), Action: ActionBanAdded, Actor: actor}).content()
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
		head, err := s.chainHead(ctx, tx, "ban")
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.HDel(ctx, bans, member)
			pipe.ZRem(ctx, expiry, member)
			return s.logAndNotify(ctx, pipe, head, AuditEvent{Action: ActionBanRemoved, Actor: actor, Ban: &out})
		})
		return err
	}, bans, expiry, s.headKey("ban"))
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

// Audit implements Store. Approval events are read from the approval
// stream and ban events from the ban stream (and from the approval stream,
// which held every kind before); with no kind, the two are merged by time.
func (s *RedisStore) Audit(ctx context.Context, q AuditQuery) ([]AuditEvent, error) {
	out, err := s.readStream(ctx, s.auditStream("approval"), "", q)
	if err != nil {
		return nil, err
	}
	if q.Kind == "" || q.Kind == "ban" {
		evs, err := s.readStream(ctx, s.auditStream("ban"), "ban:", q)
		if err != nil {
			return nil, err
		}
		out = append(out, evs...)
		slices.SortStableFunc(out, func(a, b AuditEvent) int { return b.Time.Compare(a.Time) })
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// AuditHead implements Store.
func (s *RedisStore) AuditHead(ctx context.Context, kind string) (ChainHead, error) {
	head, err := s.chainHead(ctx, s.rdb, kind)
	return head, s.wrap("read audit", err)
}

// AuditChain implements Store: the chain of approval events is the
// approval stream (which also holds ban events from before the chains, of
// no chain), the ban chain the ban stream.
func (s *RedisStore) AuditChain(ctx context.Context, kind string, fn func(raw []byte) error) error {
	stream, start := s.auditStream(kind), "-"
	for {
		msgs, err := s.rdb.XRangeN(ctx, stream, start, "+", 1000).Result()
		if err != nil {
			return unavailable("read audit", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["event"].(string)
			if err := fn([]byte(raw)); err != nil {
				return err
			}
		}
		if len(msgs) < 1000 {
			return nil
		}
		start = "(" + msgs[len(msgs)-1].ID
	}
}

// readStream pages back through one audit stream from the newest entry and
// stops at the first event older than q.Since: events are appended in time
// order, and stream IDs carry Redis's clock, not ours, so they are no use
// for the cut. Each event's ID is its entry's, after idPrefix.
func (s *RedisStore) readStream(ctx context.Context, stream, idPrefix string, q AuditQuery) ([]AuditEvent, error) {
	out := make([]AuditEvent, 0, min(q.Limit, 256))
	end := "+"
	for len(out) < q.Limit {
		msgs, err := s.rdb.XRevRangeN(ctx, stream, end, "-", 256).Result()
		if err != nil {
			return nil, unavailable("read audit", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["event"].(string)
			var ev AuditEvent
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				return nil, fmt.Errorf("audit entry %s is corrupt: %w", m.ID, err)
			}
			if ev.Time.Before(q.Since) {
				return out, nil
			}
			if !q.wants(ev) {
				continue
			}
			ev.ID = idPrefix + m.ID
			out = append(out, ev)
			if len(out) == q.Limit {
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
