package caddymodule

import (
	"errors"
	"net/http"
	"path"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/customernode/gatekeeper/policy"
)

// A refusal is a Caddy handler error with the decision's status, the
// verdict and reason in its message, an ID of Caddy's for its logs, and
// the trace that names where refusals are made.
func TestRefusalsAreCaddyHandlerErrors(t *testing.T) {
	for _, d := range []policy.Decision{
		{Verdict: policy.VerdictBlocked, Reason: policy.ReasonScanner, Status: http.StatusForbidden},
		{Verdict: policy.VerdictBlocked, Status: policy.StatusClientClosed},
	} {
		var he caddyhttp.HandlerError
		if !errors.As(refusal(&d), &he) {
			t.Fatalf("%+v: not a caddyhttp.HandlerError", d)
		}
		if he.StatusCode != d.Status || len(he.ID) != 9 || he.Trace != refusalTrace || he.Err == nil {
			t.Errorf("%+v: status %d, ID %q, trace %q, error %v", d, he.StatusCode, he.ID, he.Trace, he.Err)
		}
	}
	err := refusal(&policy.Decision{Verdict: policy.VerdictBlocked, Reason: policy.ReasonScanner, Status: http.StatusForbidden})
	if !strings.Contains(err.Error(), "gatekeeper: blocked (scanner)") {
		t.Errorf("message %q", err.Error())
	}
	// The trace names refusal where it is, as Caddy's would.
	fn := runtime.FuncForPC(reflect.ValueOf(refusal).Pointer())
	file, _ := fn.FileLine(fn.Entry())
	if want := path.Base(fn.Name()) + " (" + path.Base(file) + ")"; refusalTrace != want {
		t.Errorf("refusalTrace = %q, want %q", refusalTrace, want)
	}
}
