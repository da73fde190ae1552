package store

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/redis/go-redis/v9"
)

// listen turns notifications and (re)subscriptions into Changes signals. A
// subscription confirmation follows every reconnect, and notifications sent
// while we were away are lost, so it asks for a full re-read too.
func (s *RedisStore) listen(ctx context.Context, ps *redis.PubSub) {
	defer s.done.Done()
	backoff := 50 * time.Millisecond
	own := ownNotice(s.instance)
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
			if own(m.Payload) {
				continue // our own: during a flood, half of what every instance hears
			}
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

// ownNotice reports whether a payload is a notice instance published,
// from how notify encodes it ({"from":"<instance>", then "," or "}"),
// without decoding its bans.
func ownNotice(instance string) func(payload string) bool {
	start, _ := json.Marshal(notice{From: instance})
	prefix := string(start[:len(start)-1])
	return func(payload string) bool {
		rest, ok := strings.CutPrefix(payload, prefix)
		return ok && rest != "" && (rest[0] == ',' || rest[0] == '}')
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

func toWire(bans []approvals.Ban) []wireBan {
	out := make([]wireBan, len(bans))
	for i, b := range bans {
		out[i] = wireBan{b.Prefix, b.Reason, b.CreatedAt.UnixMilli(), b.ExpiresAt.UnixMilli(), b.Automatic, b.Network}
	}
	return out
}

// fromWire turns a notice's bans into bans, leaving out any without a
// valid, masked prefix (no instance sends one).
func fromWire(ws []wireBan) []approvals.Ban {
	out := make([]approvals.Ban, 0, len(ws))
	for _, w := range ws {
		if !w.Prefix.IsValid() || w.Prefix != w.Prefix.Masked() {
			continue
		}
		out = append(out, approvals.Ban{Prefix: w.Prefix, Reason: w.Reason, CreatedAt: time.UnixMilli(w.Created).UTC(), ExpiresAt: time.UnixMilli(w.Expires).UTC(), Automatic: w.Auto, Network: w.Net})
	}
	return out
}

// heard queues what a notification said and signals Changes.
func (s *RedisStore) heard(bans []approvals.Ban, full bool) {
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

// Changes implements Store.
func (s *RedisStore) Changes() <-chan struct{} { return s.changes }

// notify queues the notification other instances listen for: the bans
// added, or none for "read everything again".
func (s *RedisStore) notify(ctx context.Context, pipe redis.Pipeliner, bans []approvals.Ban) error {
	b, err := json.Marshal(notice{From: s.instance, Bans: toWire(bans)})
	if err != nil {
		return err
	}
	pipe.Publish(ctx, s.channel(), b)
	return nil
}
