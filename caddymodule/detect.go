package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/customernode/gatekeeper/detect"
)

// DetectConfig tunes scanner detection. Every signal is on by default.
type DetectConfig struct {
	// Turn detection off for this handler: no scoring, no tracking.
	Off bool `json:"off,omitempty"`
	// User-agent tokens: "default" for the embedded list, "+token" to add a
	// scanner token, "-token" to remove one, "off" for none.
	UserAgents []string `json:"user_agents,omitempty"`
	// Probe paths: "default" for the embedded list, "+fragment" to add one
	// (as a sensitive-file probe), "-fragment" to remove one, "off" for none.
	ProbePaths []string `json:"probe_paths,omitempty"`
	// Scanner-specific request headers: "default", "+name", "-name" or "off".
	ScannerHeaders []string `json:"scanner_headers,omitempty"`
	// Header anomalies (missing User-Agent or Accept, numeric-IP Host):
	// "off" to ignore them.
	HeaderAnomalies string `json:"header_anomalies,omitempty"`
	// Attack payloads in query values, path segments and small form or
	// JSON bodies (SQL injection, cross-site scripting, command injection,
	// file inclusion): "off" to stop looking for them.
	Payloads string `json:"payloads,omitempty"`
	// Largest form or JSON body inspected for payloads, in bytes; larger
	// bodies and bodies of unknown length pass unread. Default 65536.
	MaxBody int64 `json:"max_body,omitempty"`
	// Behaviour buckets, each "N/duration" (such as "10/10s") or "off".
	NotFound      string `json:"not_found,omitempty"`
	DistinctPaths string `json:"distinct_paths,omitempty"`
	ProbeHits     string `json:"probe_hits,omitempty"`
	PayloadHits   string `json:"payload_hits,omitempty"`
	// The hour-long bucket for scanners that pace themselves, "N/duration".
	Slow string `json:"slow,omitempty"`
	// Autonomous system numbers whose traffic counts as scanning (needs
	// the app's geoip_asn database).
	ASN []uint `json:"asn,omitempty"`
	// Score at which a source is a scanner. Default 100.
	Threshold int `json:"threshold,omitempty"`
	// Most sources tracked at once; the least recently seen are forgotten.
	// Default 1000000.
	MaxSources int `json:"max_sources,omitempty"`
}

// offRate is a bucket no source can fill.
var offRate = detect.Rate{N: 1 << 30, Per: time.Millisecond}

// maxMaxBody is the largest max_body allowed: 1 GiB.
const maxMaxBody = 1 << 30

// bucket is one behaviour bucket: its name in the config, its setting, and
// the detector's rate it sets.
type bucket struct {
	name string
	spec *string
	rate func(*detect.BehaviorConfig) *detect.Rate
}

// buckets lists the behaviour buckets once: the JSON fields, the
// Caddyfile's behavior pairs and the detector's rates all follow it.
func (c *DetectConfig) buckets() []bucket {
	return []bucket{
		{"not_found", &c.NotFound, func(b *detect.BehaviorConfig) *detect.Rate { return &b.NotFound }},
		{"distinct_paths", &c.DistinctPaths, func(b *detect.BehaviorConfig) *detect.Rate { return &b.DistinctPaths }},
		{"probe_hits", &c.ProbeHits, func(b *detect.BehaviorConfig) *detect.Rate { return &b.ProbeHits }},
		{"payload_hits", &c.PayloadHits, func(b *detect.BehaviorConfig) *detect.Rate { return &b.PayloadHits }},
		{"slow", &c.Slow, func(b *detect.BehaviorConfig) *detect.Rate { return &b.Slow }},
	}
}

// bucketNames are the buckets' names, for errors and docs.
func bucketNames() []string {
	var names []string
	for _, b := range (&DetectConfig{}).buckets() {
		names = append(names, b.name)
	}
	return names
}

// Validate checks the settings, naming the first one that is wrong. It is
// the one place they are checked: JSON and the Caddyfile alike.
func (c *DetectConfig) Validate() error {
	_, err := c.compile(nil)
	return err
}

// build turns the config, checked by Validate, into a Detector that keeps
// what it learns of sources in mem.
func (c *DetectConfig) build(mem *detect.Memory) (*detect.Detector, error) {
	cfg, err := c.compile(mem)
	if err != nil {
		return nil, err
	}
	return detect.New(cfg), nil
}

// compile turns the config into the detector's, or says what is wrong
// with it.
func (c *DetectConfig) compile(mem *detect.Memory) (detect.Config, error) {
	sigs, err := detect.DefaultSignatures()
	if err != nil {
		return detect.Config{}, err
	}
	if c == nil {
		c = &DetectConfig{}
	}
	switch {
	case c.Threshold < 0:
		return detect.Config{}, fmt.Errorf("detect threshold: %d is negative", c.Threshold)
	case c.MaxSources < 0:
		return detect.Config{}, fmt.Errorf("detect max_sources: %d is negative", c.MaxSources)
	case c.MaxBody < 0 || c.MaxBody > maxMaxBody:
		return detect.Config{}, fmt.Errorf("detect max_body: %d bytes is not between 0 and 1GiB", c.MaxBody)
	case slices.Contains(c.ASN, 0):
		return detect.Config{}, errors.New("detect asn: 0 is not an AS number")
	}
	cfg := detect.Config{Threshold: c.Threshold, Now: now, ScannerASNs: c.ASN, MaxBody: c.MaxBody}
	if cfg.PayloadsOff, err = off("payloads", c.Payloads); err != nil {
		return detect.Config{}, err
	}
	if anomaliesOff, err := off("header_anomalies", c.HeaderAnomalies); err != nil {
		return detect.Config{}, err
	} else if anomaliesOff {
		w := detect.DefaultWeights
		w[detect.SignalHeaderAnomaly] = 0
		cfg.Weights = &w
	}
	if cfg.UserAgents, err = editList("user_agents", sigs.UserAgents, c.UserAgents, detect.Signature{Kind: "strong", Family: "other"}); err != nil {
		return detect.Config{}, err
	}
	if cfg.ProbePaths, err = editList("probe_paths", sigs.ProbePaths, c.ProbePaths, detect.Signature{Kind: "sensitive"}); err != nil {
		return detect.Config{}, err
	}
	if cfg.ScannerHeaders, err = editList("scanner_headers", sigs.ScannerHeaders, c.ScannerHeaders, detect.Signature{Family: "other"}); err != nil {
		return detect.Config{}, err
	}
	cfg.Behavior = detect.BehaviorConfig{Memory: mem}
	for _, b := range c.buckets() {
		if *b.rate(&cfg.Behavior), err = parseRate(b.name, *b.spec); err != nil {
			return detect.Config{}, err
		}
	}
	return cfg, nil
}

// off reads an on/off setting ("" is on).
func off(name, v string) (bool, error) {
	switch v {
	case "", "on":
		return false, nil
	case "off":
		return true, nil
	}
	return false, fmt.Errorf("detect %s: %q is neither on nor off", name, v)
}

// checkEdits checks the words of a list edit: "default", "off" (alone),
// "+entry" and "-entry".
func checkEdits(name string, edits []string) error {
	for _, e := range edits {
		switch {
		case e == "default", len(e) > 1 && (e[0] == '+' || e[0] == '-'):
		case e == "off":
			if len(edits) != 1 {
				return fmt.Errorf("detect %s: off stands alone", name)
			}
		default:
			return fmt.Errorf("detect %s: %q is not default, off, +entry or -entry", name, e)
		}
	}
	return nil
}

// editList applies an edit checked by checkEdits to a default list.
func editList(name string, defaults []detect.Signature, edits []string, added detect.Signature) ([]detect.Signature, error) {
	if len(edits) == 0 {
		return defaults, nil
	}
	if err := checkEdits(name, edits); err != nil {
		return nil, err
	}
	var out []detect.Signature
	for _, e := range edits {
		switch {
		case e == "default":
			out = append(out, defaults...)
		case e == "off":
			return nil, nil
		case e[0] == '+':
			s := added
			s.Pattern, s.Source = strings.ToLower(e[1:]), "configuration"
			out = append(out, s)
		default: // "-entry"
			drop := strings.ToLower(e[1:])
			before := len(out)
			out = slices.DeleteFunc(out, func(s detect.Signature) bool { return s.Pattern == drop })
			if len(out) == before {
				return nil, fmt.Errorf("detect %s: %q is not in the list to remove", name, drop)
			}
		}
	}
	return out, nil
}

// parseRate reads "N/duration" (or "off"; "" is the default).
func parseRate(name, spec string) (detect.Rate, error) {
	switch spec {
	case "":
		return detect.Rate{}, nil
	case "off":
		return offRate, nil
	}
	n, per, ok := strings.Cut(spec, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count <= 0 {
		return detect.Rate{}, fmt.Errorf("detect %s: %q is not N/duration such as 10/10s", name, spec)
	}
	d, err := caddy.ParseDuration(per)
	if err != nil || d <= 0 {
		return detect.Rate{}, fmt.Errorf("detect %s: %q is not N/duration such as 10/10s", name, spec)
	}
	return detect.Rate{N: count, Per: d}, nil
}

// unmarshalDetect reads a detect block.
//
//	detect {
//		user_agents     default +mytool -curl
//		probe_paths     default
//		scanner_headers default
//		behavior        not_found 10/1m distinct_paths 100/1m probe_hits 3/1m payload_hits 4/1m slow 30/1h
//		payloads        on|off
//		max_body        64KiB
//		header_anomalies on|off
//		asn             398324 14061
//		threshold       100
//		max_sources     1000000
//	}
func unmarshalDetect(d *caddyfile.Dispenser) (*DetectConfig, error) {
	c := &DetectConfig{}
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Err("detect: want a block, or `detect off`")
		}
		return &DetectConfig{Off: true}, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		args := d.RemainingArgs()
		if len(args) == 0 {
			return nil, d.Errf("detect %s: a value is missing", opt)
		}
		one := func(dst *string) error {
			if len(args) != 1 {
				return d.Errf("detect %s: takes one value", opt)
			}
			*dst = args[0]
			return nil
		}
		var err error
		switch opt {
		case "user_agents":
			c.UserAgents = args
		case "probe_paths":
			c.ProbePaths = args
		case "scanner_headers":
			c.ScannerHeaders = args
		case "behavior":
			err = c.behavior(d, args)
		case "payloads":
			err = one(&c.Payloads)
		case "header_anomalies":
			err = one(&c.HeaderAnomalies)
		case "max_body":
			n, convErr := humanize.ParseBytes(strings.Join(args, " "))
			if convErr != nil || n > math.MaxInt64 {
				return nil, d.Errf("detect max_body: %q is not a size such as 64KiB", strings.Join(args, " "))
			}
			c.MaxBody = int64(n)
		case "threshold", "max_sources":
			n, convErr := strconv.Atoi(args[0])
			if convErr != nil || len(args) != 1 {
				return nil, d.Errf("detect %s: %q is not a whole number", opt, strings.Join(args, " "))
			}
			if opt == "threshold" {
				c.Threshold = n
			} else {
				c.MaxSources = n
			}
		case "asn":
			for _, a := range args {
				n, convErr := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(a), "AS"), 10, 32)
				if convErr != nil {
					return nil, d.Errf("detect asn: %q is not an AS number", a)
				}
				c.ASN = append(c.ASN, uint(n))
			}
		default:
			return nil, d.Errf("detect: unknown option %q", opt)
		}
		if err != nil {
			return nil, err
		}
		// Point at the line of the first setting that is wrong.
		if err := c.Validate(); err != nil {
			return nil, d.Errf("%v", err)
		}
	}
	return c, nil
}

// behavior reads the behavior option's bucket pairs, or "off".
func (c *DetectConfig) behavior(d *caddyfile.Dispenser, args []string) error {
	buckets := c.buckets()
	if len(args) == 1 && args[0] == "off" {
		for _, b := range buckets {
			*b.spec = "off"
		}
		return nil
	}
	if len(args)%2 != 0 {
		return d.Err("detect behavior: want pairs such as not_found 10/10s")
	}
	for i := 0; i < len(args); i += 2 {
		j := slices.IndexFunc(buckets, func(b bucket) bool { return b.name == args[i] })
		if j < 0 {
			return d.Errf("detect behavior: unknown bucket %q (%s)", args[i], strings.Join(bucketNames(), ", "))
		}
		*buckets[j].spec = args[i+1]
	}
	return nil
}

// sharedMemory is a detect.Memory in the pool.
type sharedMemory struct{ *detect.Memory }

// Destruct lets the memory go; nothing else holds it.
func (sharedMemory) Destruct() error { return nil }

// memoryKey names the memory of a given shape.
func memoryKey(maxSources, ipv6Prefix int) string {
	return fmt.Sprintf("detect-memory/%d/%d", max(maxSources, 0), ipv6Prefix)
}

// takeMemory returns the process's memory of that shape, making it if no
// loaded config has one; every call is balanced by a memories.Delete(key).
func takeMemory(key string, maxSources, ipv6Prefix int) (*detect.Memory, error) {
	val, _, err := memories.LoadOrNew(key, func() (caddy.Destructor, error) {
		return sharedMemory{detect.NewMemory(maxSources, ipv6Prefix, now)}, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(sharedMemory).Memory, nil
}

// eachMemory calls f with every memory in use.
func eachMemory(f func(*detect.Memory)) {
	memories.Range(func(_, v any) bool { f(v.(sharedMemory).Memory); return true })
}

// memories hold what detection knows of sources, one per process for every
// site whose handlers agree on its shape (max_sources and the app's
// ipv6_prefix; by default, all of them). A memory outlives config reloads:
// the new config's handlers take it before the old ones let go, so a
// scanner half-way through its walk is not forgotten by a reload.
var memories = caddy.NewUsagePool()
