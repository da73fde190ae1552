package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/spf13/cobra"
)

// The admin API's errors name its JSON members; `approvals add` and
// `approvals request` say them as the flags the user typed.
func TestAPIFieldErrorsNameTheFlagsTyped(t *testing.T) {
	for _, tc := range []struct{ api, cli string }{
		{`HTTP 400: field "not_after": is already past (2026-01-01T00:00:00Z)`, `HTTP 400: --until: is already past (2026-01-01T00:00:00Z)`},
		{`HTTP 400: field "not_after": must be after not_before (2026-12-10T09:00:00Z)`, `HTTP 400: --until: must be after --from (2026-12-10T09:00:00Z)`},
		{`HTTP 400: field "not_before": is required: an RFC 3339 time such as 2026-12-01T09:00:00Z`, `HTTP 400: --from: is required: an RFC 3339 time such as 2026-12-01T09:00:00Z`},
		{`HTTP 400: field "max_rps": is 50/s; tenants may ask for at most 20/s`, `HTTP 400: --rps: is 50/s; tenants may ask for at most 20/s`},
		{`HTTP 400: field "sources": is required: list the IPs`, `HTTP 400: --source: is required: list the IPs`},
		{`HTTP 400: field "sources[0]": 10.0.0.0/8 is broader than /16`, `HTTP 400: --source (the 1st given): 10.0.0.0/8 is broader than /16`},
		{`HTTP 400: field "hosts[2]": "a b" is not a host`, `HTTP 400: --host (the 3rd given): "a b" is not a host`},
		{`HTTP 400: field "methods[10]": "x y" is not a method`, `HTTP 400: --method (the 11th given): "x y" is not a method`},
		{`HTTP 400: field "paths[21]": bad`, `HTTP 400: --path (the 22nd given): bad`},
		{`HTTP 400: field "max_requests": must be a positive number of requests`, `HTTP 400: --max-requests: must be a positive number of requests`},
		{`HTTP 400: field "requested_by": is required`, `HTTP 400: --requested-by: is required`},
		{`HTTP 400: field "approved_by": is set by the approvers' reviews under approval_policy; leave it out`, `HTTP 400: --approved-by: is set by the approvers' reviews under approval_policy; leave it out`},
		{`HTTP 400: field "approval_ref": is required`, `HTTP 400: --ref: is required`},
		{`HTTP 400: field "burst": must be at most 1000000`, `HTTP 400: --burst: must be at most 1000000`},
		{`HTTP 400: field "id": is set by the server and may not be sent`, `HTTP 400: field "id": is set by the server and may not be sent`},
		{`HTTP 409: the platform's test capacity is taken`, `HTTP 409: the platform's test capacity is taken`},
	} {
		if got := flagError(errors.New(tc.api)).Error(); got != tc.cli {
			t.Errorf("%s\n  printed as %s\n  want      %s", tc.api, got, tc.cli)
		}
	}
}

// Every member of a request the CLI sends has the flag its errors are
// said as, on add and (but for who approved) on request.
func TestEveryRequestMemberHasItsFlag(t *testing.T) {
	cmds := map[string]*cobra.Command{}
	for _, c := range Root().Commands() {
		if c.Name() == "approvals" {
			for _, sub := range c.Commands() {
				cmds[sub.Name()] = sub
			}
		}
	}
	typ := reflect.TypeFor[approvals.Request]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		flag, ok := requestFlags[name]
		if !ok {
			t.Errorf("approvals.Request's %q has no flag in requestFlags", name)
			continue
		}
		if cmds["add"].Flags().Lookup(flag) == nil {
			t.Errorf("approvals add has no --%s for %q", flag, name)
		}
		direct := name == "requested_by" || name == "approved_by" || name == "approval_ref"
		if !direct && cmds["request"].Flags().Lookup(flag) == nil {
			t.Errorf("approvals request has no --%s for %q", flag, name)
		}
	}
}
