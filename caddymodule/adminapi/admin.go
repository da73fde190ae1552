// Package adminapi is Gatekeeper's admin API on Caddy's admin endpoint
// (the admin.api.gatekeeper module: approvals, bans, the audit trail,
// status, the live feed, the console's files) and the
// http.handlers.gatekeeper_console handler that serves the same to a site.
// It works on a Backend, the running config's engine (engine.Running);
// its request and answer bodies are package api's, which the CLI shares.
package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/engine"
	"github.com/customernode/gatekeeper/feed"
	"github.com/customernode/gatekeeper/identity"
	"github.com/customernode/gatekeeper/internal/duration"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves /gatekeeper/ on Caddy's admin endpoint: approvals, bans,
// the audit trail, status, and the console. Admin routes are set up before
// any app, so it finds the running config's engine on each request. Its
// endpoints are routed by ServeMux patterns, one each, and each answers
// only its methods (405 and Allow otherwise).
type AdminAPI struct {
	logger *zap.Logger
	mux    *http.ServeMux
	// bridgeKey is the console bridge's key (see identity.FromBridge),
	// host this machine's name, which a bridge identity's issuer names.
	bridgeKey, host string
}

// Audit listing bounds.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.gatekeeper",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Provision sets up logging and the routes.
func (api *AdminAPI) Provision(ctx caddy.Context) error {
	api.routes(ctx.Logger())
	var err error
	if api.bridgeKey, err = identity.LoadOrCreateBridgeKey(identity.BridgeKeyDir(caddy.AppDataDir())); err != nil {
		// The console bridge then acts as the operator; nothing else needs it.
		api.logger.Warn("no console bridge key: the bridge's changes are recorded as the local operator's", zap.Error(err))
	}
	api.host, _ = os.Hostname()
	return nil
}

// routes sets up logging and the routes.
func (api *AdminAPI) routes(logger *zap.Logger) {
	api.logger = logger
	api.mux = http.NewServeMux()
	for pattern, methods := range adminEndpoints {
		api.mux.Handle(pattern, endpoint{api, methods})
	}
}

// adminEndpoints are the admin API's endpoints by ServeMux pattern, each
// with a handler per method.
var adminEndpoints = map[string]methods{
	"/gatekeeper/approvals": {
		http.MethodGet:  adminRequest.listApprovals,
		http.MethodPost: adminRequest.createApproval,
	},
	"/gatekeeper/approvals/{id}": {
		http.MethodGet:    adminRequest.showApproval,
		http.MethodDelete: adminRequest.revokeApproval,
	},
	"/gatekeeper/approvals/{id}/report":  {http.MethodGet: adminRequest.report},
	"/gatekeeper/approvals/{id}/approve": {http.MethodPost: adminRequest.approve},
	"/gatekeeper/approvals/{id}/deny":    {http.MethodPost: adminRequest.deny},
	"/gatekeeper/approvals/{id}/token":   {http.MethodPost: adminRequest.token},
	"/gatekeeper/approvals/{id}/export":  {http.MethodGet: adminRequest.export},
	"/gatekeeper/bans": {
		http.MethodGet:  adminRequest.listBans,
		http.MethodPost: adminRequest.addBan,
	},
	// An IPv6 CIDR has a slash in it.
	"/gatekeeper/bans/{ip...}": {http.MethodDelete: adminRequest.removeBan},
	"/gatekeeper/audit":        {http.MethodGet: adminRequest.audit},
	"/gatekeeper/audit/verify": {http.MethodPost: adminRequest.verifyAudit},
	"/gatekeeper/events":       {http.MethodGet: adminRequest.events},
	"/gatekeeper/status":       {http.MethodGet: adminRequest.status},
	"/gatekeeper/ui":           {http.MethodGet: adminRequest.consoleRedirect},
	"/gatekeeper/ui/{file...}": {http.MethodGet: adminRequest.console, http.MethodHead: adminRequest.console},
	"/gatekeeper/{unknown...}": {},
}

// Routes returns the admin routes: everything under /gatekeeper/, routed
// by api's patterns.
func (api *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/gatekeeper/", Handler: caddy.AdminHandlerFunc(api.serve)}}
}

// serve hands r to its endpoint and returns the endpoint's error, which
// Caddy's admin server writes as {"error": …} with its status.
func (api *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	var err error
	api.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), adminErrKey{}, &err)))
	return err
}

type adminErrKey struct{}

// methods are an endpoint's handlers by HTTP method.
type methods map[string]func(adminRequest) error

// endpoint is one pattern's handlers.
type endpoint struct {
	api     *AdminAPI
	methods methods
}

func (e endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	errp, _ := r.Context().Value(adminErrKey{}).(*error)
	if errp == nil {
		errp = new(error)
	}
	*errp = e.serve(w, r)
}

func (e endpoint) serve(w http.ResponseWriter, r *http.Request) error {
	if len(e.methods) == 0 {
		return apiError(http.StatusNotFound, fmt.Errorf("no such gatekeeper admin route: %s", r.URL.Path))
	}
	f, ok := e.methods[r.Method]
	if !ok {
		allowed := slices.Sorted(maps.Keys(e.methods))
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed; use %s", r.Method, strings.Join(allowed, " or ")))
	}
	app := serving()
	if app == nil {
		return apiError(http.StatusServiceUnavailable, errNoApp)
	}
	return f(adminRequest{app: app, api: e.api, w: w, r: r, logger: e.api.logger})
}

// adminRequest is one admin API call.
type adminRequest struct {
	app    Backend
	api    *AdminAPI
	w      http.ResponseWriter
	r      *http.Request
	logger *zap.Logger
}

func (h adminRequest) ctx() context.Context { return h.r.Context() }

// caller is who makes this call, as authenticated: the user a site's
// handler authenticated (gatekeeper_console), the verified client
// certificate on Caddy's remote admin endpoint, the console bridge's local
// user (only with the bridge's key), else the local endpoint's operator.
// Nothing a client writes in a body or a plain header names it.
func (h adminRequest) caller() (identity.Caller, error) {
	if c, ok := h.r.Context().Value(callerKey{}).(identity.Caller); ok {
		return c, nil
	}
	if tls := h.r.TLS; tls != nil {
		if len(tls.PeerCertificates) == 0 {
			return identity.Caller{}, apiError(http.StatusUnauthorized, errors.New("no client certificate: the remote admin endpoint names each person by theirs"))
		}
		id, err := identity.FromCertificate(tls.PeerCertificates[0])
		if err != nil {
			return identity.Caller{}, apiError(http.StatusForbidden, err)
		}
		return identity.Caller{Identity: id}, nil
	}
	if id, ok := identity.FromBridge(h.r.Header, h.api.bridgeKey, h.api.host); ok {
		return identity.Caller{Identity: id}, nil
	}
	return identity.Caller{Identity: approvals.Operator}, nil
}

// by is who makes this call, for a handler that needs only the identity.
func (h adminRequest) by() (approvals.Identity, error) {
	c, err := h.caller()
	return c.Identity, err
}

func (h adminRequest) readBody() ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(h.w, h.r.Body, api.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", api.MaxBodyBytes))
	}
	if err != nil {
		return nil, apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	return b, nil
}

func (h adminRequest) createApproval() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	req, err := approvals.DecodeRequestBytes(body)
	if err != nil {
		return apiError(http.StatusBadRequest, err)
	}
	by, err := h.by()
	if err != nil {
		return err
	}
	a, token, err := h.app.RegisterApproval(h.ctx(), req, by)
	var full *approvals.CapacityError
	if errors.As(err, &full) {
		return api.WriteJSON(h.w, http.StatusConflict, api.NewCapacityRefusal(full))
	}
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusCreated, api.ApprovalCreated{Approval: a, Token: token})
}

// approve and deny review a pending request (four eyes).
func (h adminRequest) approve() error { return h.review(approvals.DecisionApprove) }
func (h adminRequest) deny() error    { return h.review(approvals.DecisionDeny) }

func (h adminRequest) review(decision string) error {
	c, err := h.caller()
	if err != nil {
		return err
	}
	body, err := h.readBody()
	if err != nil {
		return err
	}
	var req api.ReviewRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	note := req.Note
	if decision == approvals.DecisionDeny {
		if req.ApprovalRef != "" || req.Note != "" {
			return apiError(http.StatusBadRequest, approvals.BadField("reason", "a denial takes a reason only"))
		}
		note = req.Reason
	} else if req.Reason != "" {
		return apiError(http.StatusBadRequest, approvals.BadField("reason", "belongs to a denial; an approval takes approval_ref and note"))
	}
	a, err := h.app.Review(h.ctx(), h.r.PathValue("id"), decision, req.ApprovalRef, note, req.Digest, c)
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, a)
}

// token hands the requester of an approved request its test token, once.
func (h adminRequest) token() error {
	by, err := h.by()
	if err != nil {
		return err
	}
	a, token, err := h.app.IssueToken(h.ctx(), h.r.PathValue("id"), by)
	if err != nil {
		return storeError(err)
	}
	h.w.Header().Set("Cache-Control", "no-store")
	return api.WriteJSON(h.w, http.StatusOK, api.TokenIssued{Approval: a, Token: token})
}

// decodeStrict decodes a JSON body into v, refusing unknown fields.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	return nil
}

func (h adminRequest) listApprovals() error {
	q := h.r.URL.Query()
	list, err := h.app.Approvals(h.ctx(), q.Get("tenant"), approvals.Status(q.Get("status")))
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, list)
}

func (h adminRequest) showApproval() error {
	a, err := h.app.Approval(h.ctx(), h.r.PathValue("id"))
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, a)
}

func (h adminRequest) revokeApproval() error {
	by, err := h.by()
	if err != nil {
		return err
	}
	a, err := h.app.RevokeApproval(h.ctx(), h.r.PathValue("id"), h.r.URL.Query().Get("reason"), by)
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, a)
}

func (h adminRequest) report() error {
	rep, err := h.app.Report(h.ctx(), h.r.PathValue("id"))
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, rep)
}

// export answers one approval's evidence, as a file to keep.
func (h adminRequest) export() error {
	id := h.r.PathValue("id")
	by, err := h.by()
	if err != nil {
		return err
	}
	ev, err := h.app.Export(h.ctx(), id, by)
	if err != nil {
		return storeError(err)
	}
	h.w.Header().Set("Content-Disposition", `attachment; filename="`+id+`-evidence.json"`)
	h.w.Header().Set("Cache-Control", "no-store")
	return api.WriteJSON(h.w, http.StatusOK, ev)
}

func (h adminRequest) addBan() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	var req api.BanRequest
	if err := decodeStrict(body, &req); err != nil {
		return err
	}
	var ttl time.Duration
	if req.TTL != "" {
		ttl, err = duration.Parse(req.TTL)
		if err != nil {
			return apiError(http.StatusBadRequest, approvals.BadField("ttl", "%q is not a duration such as 1h", req.TTL))
		}
	}
	by, err := h.by()
	if err != nil {
		return err
	}
	b, err := h.app.Ban(h.ctx(), req.IP, ttl, req.Reason, by)
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusCreated, b)
}

func (h adminRequest) listBans() error {
	bans, err := h.app.Bans(h.ctx())
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, bans)
}

func (h adminRequest) removeBan() error {
	by, err := h.by()
	if err != nil {
		return err
	}
	b, err := h.app.LiftBan(h.ctx(), h.r.PathValue("ip"), by)
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, b)
}

func (h adminRequest) audit() error {
	q := h.r.URL.Query()
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("since: %q is not an RFC 3339 time", s))
		}
		since = t
	}
	limit := defaultAuditLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAuditLimit {
			return apiError(http.StatusBadRequest, fmt.Errorf("limit: %q is not a number from 1 to %d", s, maxAuditLimit))
		}
		limit = n
	}
	evs, err := h.app.Audit(h.ctx(), audit.Query{Since: since, Limit: limit, Kind: q.Get("kind")})
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusOK, evs)
}

// verifyAudit checks the audit chains now and answers what it found (ok is
// false when a chain is broken); 503 when the store cannot be read.
func (h adminRequest) verifyAudit() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	// Optionally, heads seen elsewhere (a signed export's) that the chains
	// must still reach: {"known": [{"kind": "approval", "seq": …, "hash": …}]}.
	var req struct {
		Known []audit.KnownHead `json:"known"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
		}
		for i, k := range req.Known {
			if !slices.Contains(audit.Kinds, k.Kind) || k.Seq <= 0 || len(k.Hash) != 64 {
				return apiError(http.StatusBadRequest, fmt.Errorf("field \"known[%d]\": want a kind (approval or ban), a positive seq and a 64-digit hash", i))
			}
		}
	}
	v := h.app.VerifyAudit(h.ctx(), req.Known...)
	if v.Error != "" {
		return apiError(http.StatusServiceUnavailable, fmt.Errorf("reading the audit trail: %s", v.Error))
	}
	return api.WriteJSON(h.w, http.StatusOK, v)
}

// feedPage is the answer of GET /gatekeeper/events: the events after the
// cursor asked for, oldest first, and the cursor to ask after next.
type feedPage struct {
	Events []feed.Event `json:"events"`
	Next   uint64       `json:"next"`
}

// events answers GET /gatekeeper/events[?since=ID&limit=N]: the live feed
// of refused and flagged requests after event ID (from the oldest held
// without since), at most limit (100 by default, 500 at most).
func (h adminRequest) events() error {
	q := h.r.URL.Query()
	var since uint64
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return apiError(http.StatusBadRequest, fmt.Errorf("since: %q is not an event id (the next of the last answer)", s))
		}
		since = n
	}
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > feed.MaxRead {
			return apiError(http.StatusBadRequest, fmt.Errorf("limit: %q is not a number from 1 to %d", s, feed.MaxRead))
		}
		limit = n
	}
	evs, next := h.app.Events(since, limit)
	return api.WriteJSON(h.w, http.StatusOK, feedPage{Events: evs, Next: next})
}

func (h adminRequest) status() error {
	return api.WriteJSON(h.w, http.StatusOK, h.app.Status(h.ctx()))
}

// storeError maps store errors to HTTP statuses.
func storeError(err error) error {
	switch {
	case errors.Is(err, approvals.ErrNotFound):
		return apiError(http.StatusNotFound, err)
	case errors.Is(err, approvals.ErrSelfReview), errors.Is(err, engine.ErrNotApprover), errors.Is(err, engine.ErrNotRequester):
		return apiError(http.StatusForbidden, err)
	case errors.Is(err, approvals.ErrExists), errors.Is(err, approvals.ErrAlreadyRevoked), errors.Is(err, audit.ErrUnchained),
		errors.As(err, new(*approvals.CapacityError)), errors.Is(err, approvals.ErrNotPending), errors.Is(err, approvals.ErrReviewed),
		errors.Is(err, approvals.ErrChanged), errors.Is(err, approvals.ErrTokenIssued):
		return apiError(http.StatusConflict, err)
	case errors.As(err, new(*approvals.FieldError)):
		return apiError(http.StatusBadRequest, err)
	case errors.Is(err, approvals.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, err)
	}
	return apiError(http.StatusInternalServerError, err)
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
