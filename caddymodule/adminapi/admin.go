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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/feed"
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
	api.logger = ctx.Logger()
	api.mux = http.NewServeMux()
	for pattern, methods := range adminEndpoints {
		api.mux.Handle(pattern, endpoint{api, methods})
	}
	return nil
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
	"/gatekeeper/approvals/{id}/report": {http.MethodGet: adminRequest.report},
	"/gatekeeper/approvals/{id}/export": {http.MethodGet: adminRequest.export},
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
	return f(adminRequest{app: app, w: w, r: r, logger: e.api.logger})
}

// adminRequest is one admin API call.
type adminRequest struct {
	app    Backend
	w      http.ResponseWriter
	r      *http.Request
	logger *zap.Logger
}

func (h adminRequest) ctx() context.Context { return h.r.Context() }

// actor names who made a change, for the audit: the user the site's
// authentication named (gatekeeper_console), the client certificate's
// subject when the admin endpoint uses mTLS, else the peer address. A
// client acting for someone (the console bridge, for the local user who
// started it) says so in api.OnBehalfOfHeader; that is its word, so the peer
// stays in the record beside it.
func (h adminRequest) actor() string {
	if a, ok := h.r.Context().Value(actorKey{}).(string); ok {
		return a // the console handler's authenticated user
	}
	peer := "admin@" + remoteHost(h.r)
	if tls := h.r.TLS; tls != nil && len(tls.PeerCertificates) > 0 {
		peer = "cert:" + tls.PeerCertificates[0].Subject.String()
	}
	if who := h.r.Header.Get(api.OnBehalfOfHeader); who != "" && len(who) <= 128 && !strings.ContainsFunc(who, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return who + " via " + peer
	}
	return peer
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
	a, token, err := h.app.RegisterApproval(h.ctx(), req, h.actor())
	var full *approvals.CapacityError
	if errors.As(err, &full) {
		return api.WriteJSON(h.w, http.StatusConflict, api.NewCapacityRefusal(full))
	}
	if err != nil {
		return storeError(err)
	}
	return api.WriteJSON(h.w, http.StatusCreated, api.ApprovalCreated{Approval: a, Token: token})
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
	a, err := h.app.RevokeApproval(h.ctx(), h.r.PathValue("id"), h.r.URL.Query().Get("reason"), h.actor())
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
	ev, err := h.app.Export(h.ctx(), id, h.actor())
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
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	var ttl time.Duration
	if req.TTL != "" {
		ttl, err = duration.Parse(req.TTL)
		if err != nil {
			return apiError(http.StatusBadRequest, approvals.BadField("ttl", "%q is not a duration such as 1h", req.TTL))
		}
	}
	b, err := h.app.Ban(h.ctx(), req.IP, ttl, req.Reason, h.actor())
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
	b, err := h.app.LiftBan(h.ctx(), h.r.PathValue("ip"), h.actor())
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
	case errors.Is(err, approvals.ErrExists), errors.Is(err, approvals.ErrAlreadyRevoked), errors.Is(err, audit.ErrUnchained),
		errors.As(err, new(*approvals.CapacityError)):
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
