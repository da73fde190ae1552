package detect

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/customernode/gatekeeper/detect/behavior"
	"github.com/customernode/gatekeeper/internal/duration"
)

// Settings tunes scanner detection. Every signal is on by default.
type Settings struct {
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
var offRate = behavior.Rate{N: 1 << 30, Per: time.Millisecond}

// maxMaxBody is the largest max_body allowed: 1 GiB.
const maxMaxBody = 1 << 30

// bucket is one behaviour bucket: its name in the config, its setting, and
// the detector's rate it sets.
type bucket struct {
	name string
	spec *string
	rate func(*behavior.Config) *behavior.Rate
}

// buckets lists the behaviour buckets once: the JSON fields, the
// Caddyfile's behavior pairs and the detector's rates all follow it.
func (c *Settings) buckets() []bucket {
	return []bucket{
		{"not_found", &c.NotFound, func(b *behavior.Config) *behavior.Rate { return &b.NotFound }},
		{"distinct_paths", &c.DistinctPaths, func(b *behavior.Config) *behavior.Rate { return &b.DistinctPaths }},
		{"probe_hits", &c.ProbeHits, func(b *behavior.Config) *behavior.Rate { return &b.ProbeHits }},
		{"payload_hits", &c.PayloadHits, func(b *behavior.Config) *behavior.Rate { return &b.PayloadHits }},
		{"slow", &c.Slow, func(b *behavior.Config) *behavior.Rate { return &b.Slow }},
	}
}

// BucketNames are the behaviour buckets' names, for errors and docs.
func BucketNames() []string {
	var names []string
	for _, b := range (&Settings{}).buckets() {
		names = append(names, b.name)
	}
	return names
}

// SetBucket sets the bucket named name to spec ("N/duration" or "off");
// false when there is no such bucket.
func (c *Settings) SetBucket(name, spec string) bool {
	for _, b := range c.buckets() {
		if b.name == name {
			*b.spec = spec
			return true
		}
	}
	return false
}

// Validate checks the settings, naming the first one that is wrong. It is
// the one place they are checked: JSON and the Caddyfile alike.
func (c *Settings) Validate() error {
	_, err := c.compile(nil)
	return err
}

// Detector turns the settings, checked by Validate, into a Detector that
// keeps what it learns of sources in mem, on the clock now.
func (c *Settings) Detector(mem *behavior.Memory, now func() time.Time) (*Detector, error) {
	cfg, err := c.compile(mem)
	cfg.Now = now
	if err != nil {
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return New(cfg), nil
}

// compile turns the config into the detector's, or says what is wrong
// with it.
func (c *Settings) compile(mem *behavior.Memory) (Config, error) {
	sigs, err := DefaultSignatures()
	if err != nil {
		return Config{}, err
	}
	if c == nil {
		c = &Settings{}
	}
	switch {
	case c.Threshold < 0:
		return Config{}, fmt.Errorf("detect threshold: %d is negative", c.Threshold)
	case c.MaxSources < 0:
		return Config{}, fmt.Errorf("detect max_sources: %d is negative", c.MaxSources)
	case c.MaxBody < 0 || c.MaxBody > maxMaxBody:
		return Config{}, fmt.Errorf("detect max_body: %d bytes is not between 0 and 1GiB", c.MaxBody)
	case slices.Contains(c.ASN, 0):
		return Config{}, errors.New("detect asn: 0 is not an AS number")
	}
	cfg := Config{Threshold: c.Threshold, ScannerASNs: c.ASN, MaxBody: c.MaxBody}
	if cfg.PayloadsOff, err = off("payloads", c.Payloads); err != nil {
		return Config{}, err
	}
	if anomaliesOff, err := off("header_anomalies", c.HeaderAnomalies); err != nil {
		return Config{}, err
	} else if anomaliesOff {
		w := DefaultWeights
		w[SignalHeaderAnomaly] = 0
		cfg.Weights = &w
	}
	if cfg.UserAgents, err = editList("user_agents", sigs.UserAgents, c.UserAgents, Signature{Kind: "strong", Family: "other"}); err != nil {
		return Config{}, err
	}
	if cfg.ProbePaths, err = editList("probe_paths", sigs.ProbePaths, c.ProbePaths, Signature{Kind: "sensitive"}); err != nil {
		return Config{}, err
	}
	if cfg.ScannerHeaders, err = editList("scanner_headers", sigs.ScannerHeaders, c.ScannerHeaders, Signature{Family: "other"}); err != nil {
		return Config{}, err
	}
	cfg.Behavior = behavior.Config{Memory: mem}
	for _, b := range c.buckets() {
		if *b.rate(&cfg.Behavior), err = parseRate(b.name, *b.spec); err != nil {
			return Config{}, err
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
func editList(name string, defaults []Signature, edits []string, added Signature) ([]Signature, error) {
	if len(edits) == 0 {
		return defaults, nil
	}
	if err := checkEdits(name, edits); err != nil {
		return nil, err
	}
	var out []Signature
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
			out = slices.DeleteFunc(out, func(s Signature) bool { return s.Pattern == drop })
			if len(out) == before {
				return nil, fmt.Errorf("detect %s: %q is not in the list to remove", name, drop)
			}
		}
	}
	return out, nil
}

// parseRate reads "N/duration" (or "off"; "" is the default).
func parseRate(name, spec string) (behavior.Rate, error) {
	switch spec {
	case "":
		return behavior.Rate{}, nil
	case "off":
		return offRate, nil
	}
	n, per, ok := strings.Cut(spec, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count <= 0 {
		return behavior.Rate{}, fmt.Errorf("detect %s: %q is not N/duration such as 10/10s", name, spec)
	}
	d, err := duration.Parse(per)
	if err != nil || d <= 0 {
		return behavior.Rate{}, fmt.Errorf("detect %s: %q is not N/duration such as 10/10s", name, spec)
	}
	return behavior.Rate{N: count, Per: d}, nil
}
