package cli

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/customernode/gatekeeper/api"
)

// status sets what the active tests are approved for beside the capacity.
func TestStatusSaysWhatIsApprovedBesideTheCapacity(t *testing.T) {
	for _, tc := range []struct {
		capacity, demand float64
		want             string
	}{
		{10, 4, "10/s; the tests active now are approved for 4/s of it together"},
		{1, 2, "1/s; the tests active now are approved for 2/s together, more than the capacity"},
		{10, 0, "10/s; no test active now"},
	} {
		var out bytes.Buffer
		if err := printStatus(&out, api.Status{TestCapacity: tc.capacity, TestDemand: tc.demand}); err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^test capacity +` + regexp.QuoteMeta(tc.want) + `$`).MatchString(out.String()) {
			t.Errorf("capacity %g/s, demand %g/s:\n%s\nwant test capacity  %s", tc.capacity, tc.demand, out.String(), tc.want)
		}
	}
}
