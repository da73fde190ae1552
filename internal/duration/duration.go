// Package duration reads lengths of time as Caddy's config does: Go's
// durations ("1h30m"), and days ("7d", "1d12h").
package duration

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var days = regexp.MustCompile(`(\d+(?:\.\d+)?)d`)

// Parse reads a duration as time.ParseDuration does, and days as
// caddy.ParseDuration does.
func Parse(s string) (time.Duration, error) {
	var bad error
	hours := days.ReplaceAllStringFunc(s, func(m string) string {
		n, err := strconv.ParseFloat(m[:len(m)-1], 64)
		if err != nil {
			bad = err
		}
		return strconv.FormatFloat(n*24, 'f', -1, 64) + "h"
	})
	d, err := time.ParseDuration(hours)
	if bad != nil || err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 1h or 7d", s)
	}
	return d, nil
}
