package detect

import (
	"strings"
	"sync/atomic"
)

// agentCache remembers what the user-agent signatures said of the user
// agents seen lately: browsers send the same few strings over and over, and
// a lookup (a hash the tracker needs anyway, and a compare) costs a third
// of a walk of the signature trie. It is direct-mapped: a new user agent
// takes its slot's place. Long user agents are not kept, so the cache holds
// at most agentCacheSlots × maxCachedAgent bytes of them.
type agentCache struct {
	slots [agentCacheSlots]atomic.Pointer[agentVerdict]
}

const (
	agentCacheSlots = 1024
	maxCachedAgent  = 512
)

// agentVerdict is what the signatures said of one user agent.
type agentVerdict struct {
	ua      string
	signals SignalSet // SignalUserAgent, SignalWeakClient, exploit and payload signals, or none
	family  string
}

// uaVerdict is what d's user-agent signatures say of ua, whose hash is h.
func (d *Detector) uaVerdict(ua string, h uint64) agentVerdict {
	slot := &d.agents.slots[h%agentCacheSlots]
	if v := slot.Load(); v != nil && v.ua == ua {
		return *v
	}
	v := agentVerdict{ua: ua}
	d.ua.find(ua, func(i, _ int) bool {
		s := d.uaSigs[i]
		if s.Kind == "weak" {
			v.signals.Add(SignalWeakClient)
			return true
		}
		v.signals.Add(SignalUserAgent)
		v.family = s.Family
		return false
	})
	if d.payloads != nil {
		v.signals |= d.payloads.headerValue("User-Agent", ua)
	}
	if len(ua) <= maxCachedAgent {
		slot.Store(&v)
	}
	return v
}

// agentTail is what follows, in a user agent, the product tokens
// ("Firefox/128.0"), comments ("(X11; Linux x86_64)") and bare words
// ("Mobile") that agents are made of: "" for a browser's, the payload for
// a browser's with one appended. A token starts with a letter and holds
// letters, digits and ._-+/ only, never ".." or "//"; a comment holds no
// quote, angle bracket or shell metacharacter.
func agentTail(ua string) string {
	rest := ua
	for {
		rest = strings.TrimLeft(rest, " ")
		if rest == "" {
			return ""
		}
		end := strings.IndexByte(rest, ' ')
		if rest[0] == '(' {
			end = strings.IndexByte(rest, ')') + 1
			if end == 0 || strings.ContainsAny(rest[:end], "'\"<>`|&$") {
				return rest
			}
		} else {
			if end < 0 {
				end = len(rest)
			}
			t := rest[:end]
			if !isLetter(t[0]) || strings.Contains(t, "..") || strings.Contains(t, "//") {
				return rest
			}
			for i := 1; i < len(t); i++ {
				if c := t[i]; !isLetter(c) && !isDigit(c) && strings.IndexByte("._-+/", c) < 0 {
					return rest
				}
			}
		}
		rest = rest[end:]
	}
}
