package caddymodule

import (
	"math"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/customernode/gatekeeper/detect"
	"github.com/dustin/go-humanize"
)

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
func unmarshalDetect(d *caddyfile.Dispenser) (*detect.Settings, error) {
	c := &detect.Settings{}
	if d.NextArg() {
		if d.Val() != "off" || d.NextArg() {
			return nil, d.Err("detect: want a block, or `detect off`")
		}
		return &detect.Settings{Off: true}, nil
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
			err = parseBehavior(d, c, args)
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

// parseBehavior reads the behavior option's bucket pairs, or "off", into c.
func parseBehavior(d *caddyfile.Dispenser, c *detect.Settings, args []string) error {
	if len(args) == 1 && args[0] == "off" {
		for _, name := range detect.BucketNames() {
			c.SetBucket(name, "off")
		}
		return nil
	}
	if len(args)%2 != 0 {
		return d.Err("detect behavior: want pairs such as not_found 10/10s")
	}
	for i := 0; i < len(args); i += 2 {
		if !c.SetBucket(args[i], args[i+1]) {
			return d.Errf("detect behavior: unknown bucket %q (%s)", args[i], strings.Join(detect.BucketNames(), ", "))
		}
	}
	return nil
}
