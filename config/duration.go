package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/customernode/gatekeeper/internal/duration"
)

// Duration is a setting's length of time. Its JSON is a string as Go
// writes durations ("1h30m"), with "d" for days as Caddy allows ("7d"), or,
// as caddy.Duration reads it, a number of nanoseconds.
type Duration time.Duration

// MarshalJSON writes d as a string such as "1h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a string such as "90s" or "7d", or nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("%s is neither a duration such as \"1h\" nor nanoseconds", b)
		}
		*d = Duration(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) String() string { return time.Duration(d).String() }
