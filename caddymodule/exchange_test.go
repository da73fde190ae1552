package caddymodule

import (
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/policy"
)

// What release leaves in a pooled exchange for the next request: the
// handler's settings, which inputs writes again whenever they differ, and
// nothing a request brought. Every field of policy.Inputs is one or the
// other: a new field fails here until release clears it or it is added to
// the settings inputs writes for every request.
func TestReleaseClearsEveryRequestsInputs(t *testing.T) {
	kept := map[string]bool{"Mode": true, "StoreUnavailable": true, "Limiter": true, "Detector": true}
	cleared := map[string]bool{"View": true, "Request": true, "ASN": true, "Snapshot": true,
		"BannedHere": true, "BannedHereNetwork": true, "Now": true}
	typ := reflect.TypeFor[policy.Inputs]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !kept[f.Name] && !cleared[f.Name] {
			t.Errorf("policy.Inputs.%s: neither cleared by release nor a handler setting", f.Name)
		}
	}

	x := &exchange{stripe: 3, start: time.Now(), decided: time.Now(),
		rc:   requestContext{vars: map[string]any{}, logs: true},
		view: requestView{tenant: "acme", host: "acme.example", ip: netip.MustParseAddr("192.0.2.1"), country: "DE", asn: 7}}
	x.in = policy.Inputs{View: policy.View{Access: approvals.Access{Host: "acme.example", Token: "s3cret"}, LegacyToken: true},
		Request: httptest.NewRequest("GET", "/", nil), ASN: 7, Snapshot: &approvals.Snapshot{},
		BannedHere: true, BannedHereNetwork: true, Now: time.Now(), Mode: policy.ModeBlock, StoreUnavailable: "fail_open"}
	x.release()
	in := reflect.ValueOf(x.in)
	for name := range cleared {
		if !in.FieldByName(name).IsZero() {
			t.Errorf("after release, Inputs.%s = %v", name, in.FieldByName(name))
		}
	}
	if x.in.Mode != policy.ModeBlock || x.in.StoreUnavailable != "fail_open" {
		t.Errorf("after release the settings are %q, %q; want them kept", x.in.Mode, x.in.StoreUnavailable)
	}
	if !x.start.IsZero() || !x.decided.IsZero() || x.rc.repl != nil || x.rc.vars != nil || x.rc.logs || x.view != (requestView{}) || x.stripe != 3 {
		t.Errorf("after release: start %v decided %v rc %+v view %+v stripe %d", x.start, x.decided, x.rc, x.view, x.stripe)
	}
}
