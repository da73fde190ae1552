package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/customernode/gatekeeper/audit"
	"github.com/redis/go-redis/v9"
)

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
func (s *RedisStore) chainHead(ctx context.Context, c redis.Cmdable, kind string) (audit.ChainHead, error) {
	v, err := c.Get(ctx, s.headKey(kind)).Result()
	if errors.Is(err, redis.Nil) {
		return audit.ChainHead{}, nil
	}
	if err != nil {
		return audit.ChainHead{}, err
	}
	seq, hash, _ := strings.Cut(v, " ")
	n, err := strconv.ParseInt(seq, 10, 64)
	if _, ok := audit.DecodeHash([]byte(hash)); err != nil || n < 1 || !ok {
		return audit.ChainHead{}, fmt.Errorf("audit chain head of %s is corrupt: %q", kind, v)
	}
	return audit.ChainHead{Seq: n, Hash: hash}, nil
}

// logEvents queues, inside a transaction, events of kind with the
// canonical contents given, linked into their chain after head, and the
// chain's new head.
func (s *RedisStore) logEvents(ctx context.Context, pipe redis.Pipeliner, head audit.ChainHead, kind string, contents ...[]byte) error {
	for _, c := range contents {
		line, next, err := audit.Link(head, "", c)
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

// logAndNotify queues the audit event for a change, after head in its
// chain, and a notification that asks other instances to read everything
// again.
func (s *RedisStore) logAndNotify(ctx context.Context, pipe redis.Pipeliner, head audit.ChainHead, ev audit.Event) error {
	ev.Time = s.now().UTC()
	content, err := ev.Content()
	if err != nil {
		return err
	}
	if err := s.logEvents(ctx, pipe, head, ev.Kind(), content); err != nil {
		return err
	}
	return s.notify(ctx, pipe, nil)
}

// Audit implements Store. Approval events are read from the approval
// stream and ban events from the ban stream (and from the approval stream,
// which held every kind before); with no kind, the two are merged by time.
func (s *RedisStore) Audit(ctx context.Context, q audit.Query) ([]audit.Event, error) {
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
		slices.SortStableFunc(out, func(a, b audit.Event) int { return b.Time.Compare(a.Time) })
	}
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// AuditHead implements Store.
func (s *RedisStore) AuditHead(ctx context.Context, kind string) (audit.ChainHead, error) {
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
func (s *RedisStore) readStream(ctx context.Context, stream, idPrefix string, q audit.Query) ([]audit.Event, error) {
	out := make([]audit.Event, 0, min(q.Limit, 256))
	end := "+"
	for len(out) < q.Limit {
		msgs, err := s.rdb.XRevRangeN(ctx, stream, end, "-", 256).Result()
		if err != nil {
			return nil, unavailable("read audit", err)
		}
		for _, m := range msgs {
			raw, _ := m.Values["event"].(string)
			var ev audit.Event
			if err := json.Unmarshal([]byte(raw), &ev); err != nil {
				return nil, fmt.Errorf("audit entry %s is corrupt: %w", m.ID, err)
			}
			if ev.Time.Before(q.Since) {
				return out, nil
			}
			if !q.Within(ev.Time) || !q.Wants(ev) {
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
