package caddymodule

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/policy"
)

// publish sets the placeholders and access-log fields of the decision.
func publish(r *http.Request, d policy.Decision, view requestView) {
	f := logFields{verdict: d.Verdict, reason: d.Reason, tenant: view.tenant, country: view.country, asn: view.asn}
	if d.Approval != nil {
		f.approval = d.Approval.ID
	}
	if d.Detection.Scanner {
		f.signals = d.Detection.Signals // named only when the entry is written
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.gatekeeper.verdict", f.verdict)
	repl.Set("http.gatekeeper.reason", f.reason)
	repl.Set("http.gatekeeper.tenant", f.tenant)
	repl.Set("http.gatekeeper.approval_id", f.approval)
	repl.Set("http.gatekeeper.country", f.country)
	repl.Set("http.gatekeeper.asn", f.asnString())
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("gatekeeper", f))
	}
}

// logFields is the decision as the access log shows it; it is encoded only
// when the entry is written.
type logFields struct {
	verdict, reason, tenant, approval, country string
	asn                                        uint
	signals                                    detect.SignalSet // when detection fired
}

func (f logFields) asnString() string {
	if f.asn == 0 {
		return ""
	}
	return strconv.FormatUint(uint64(f.asn), 10)
}

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (f logFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("verdict", f.verdict)
	enc.AddString("reason", f.reason)
	enc.AddString("tenant", f.tenant)
	enc.AddString("approval_id", f.approval)
	enc.AddString("country", f.country)
	enc.AddString("asn", f.asnString())
	if f.signals != 0 {
		enc.AddString("signals", strings.Join(f.signals.Names(), ","))
	}
	return nil
}
