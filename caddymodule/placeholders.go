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
)

// publish makes the decision's placeholders and access-log fields
// available. Placeholders are worked out only when something reads them:
// the first gatekeeper handler on a request adds a provider to its
// replacer, one small allocation; a later one (two sites' handlers on one
// request) sets its values outright, which Caddy's replacer reads before
// any provider, so placeholders always show the last decision. The access
// log's gatekeeper object is added only when the server writes access
// logs, and encoded only when the entry is written.
func publish(r *http.Request, x *exchange) {
	d, rc := &x.d, &x.rc
	f := logFields{verdict: d.Verdict, reason: d.Reason, tenant: x.in.Access.Tenant, country: x.country, asn: x.in.ASN}
	if d.Approval != nil {
		f.approval = d.Approval.ID
	}
	if d.Detection.Scanner {
		f.signals = d.Detection.Signals // named only when the entry is written
	}
	if rc.repl == nil {
		return // not a request Caddy's server prepared
	}
	if _, again := rc.vars[publishedVar]; !again && rc.vars != nil {
		rc.vars[publishedVar] = true
		rc.repl.Map(f.placeholder)
	} else {
		f.set(rc.repl)
	}
	if rc.logs {
		f.addToLog(r)
	}
}

// set sets the placeholders outright, for a second gatekeeper handler on
// one request.
func (f *logFields) set(repl *caddy.Replacer) {
	for i, v := range f.values() {
		repl.Set(decisionFields[i].placeholder, v)
	}
}

// addToLog adds the gatekeeper object to r's access log entry.
func (f *logFields) addToLog(r *http.Request) {
	if extra, ok := r.Context().Value(caddyhttp.ExtraLogFieldsCtxKey).(*caddyhttp.ExtraLogFields); ok {
		extra.Set(zap.Object("gatekeeper", *f))
	}
}

// publishedVar is the request variable that says a gatekeeper handler has
// published a decision on the request.
const publishedVar = "gatekeeper.published"

// placeholderPrefix begins every placeholder of decisionFields.
const placeholderPrefix = "http.gatekeeper."

// placeholder is the provider of the decision's placeholders.
func (f logFields) placeholder(key string) (any, bool) {
	name, ok := strings.CutPrefix(key, placeholderPrefix)
	if !ok {
		return nil, false
	}
	for i, v := range f.values() {
		if decisionFields[i].placeholder[len(placeholderPrefix):] == name {
			return v, true
		}
	}
	return nil, false
}

// decisionFields name the fields of a decision, in the order values gives
// them: as the access log's gatekeeper object has them, and as placeholders.
var decisionFields = [...]struct{ log, placeholder string }{
	{"verdict", "http.gatekeeper.verdict"},
	{"reason", "http.gatekeeper.reason"},
	{"tenant", "http.gatekeeper.tenant"},
	{"approval_id", "http.gatekeeper.approval_id"},
	{"country", "http.gatekeeper.country"},
	{"asn", "http.gatekeeper.asn"},
}

// values are the fields' values, in decisionFields' order.
func (f logFields) values() [len(decisionFields)]string {
	return [...]string{f.verdict, f.reason, f.tenant, f.approval, f.country, f.asnString()}
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
	for i, v := range f.values() {
		enc.AddString(decisionFields[i].log, v)
	}
	if f.signals != 0 {
		enc.AddString("signals", strings.Join(f.signals.Names(), ","))
	}
	return nil
}
