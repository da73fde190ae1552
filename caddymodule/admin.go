package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/detect"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI serves /gatekeeper/ on Caddy's admin endpoint: approvals, bans,
// the audit trail and status. Admin routes are set up before any app, so it
// finds the running gatekeeper app on each request.
type AdminAPI struct {
	logger *zap.Logger
}

// maxBodyBytes bounds every request body; a larger one gets 413.
const maxBodyBytes = 1 << 20

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

// Provision sets up logging.
func (api *AdminAPI) Provision(ctx caddy.Context) error {
	api.logger = ctx.Logger()
	return nil
}

// Routes returns the admin routes.
func (api *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/gatekeeper/", Handler: caddy.AdminHandlerFunc(api.serve)}}
}

func (api *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	app := current.Load()
	if app == nil {
		return apiError(http.StatusServiceUnavailable, errors.New("the gatekeeper app is not running"))
	}
	rest := strings.TrimPrefix(r.URL.Path, "/gatekeeper/")
	head, tail, _ := strings.Cut(rest, "/")
	h := adminRequest{app: app, w: w, r: r, logger: api.logger}
	switch {
	case head == "approvals" && tail == "":
		return h.route(map[string]func() error{http.MethodGet: h.listApprovals, http.MethodPost: h.createApproval})
	case head == "approvals" && strings.HasSuffix(tail, "/report") && strings.Count(tail, "/") == 1:
		id := strings.TrimSuffix(tail, "/report")
		return h.route(map[string]func() error{http.MethodGet: func() error { return h.report(id) }})
	case head == "approvals" && !strings.Contains(tail, "/"):
		return h.route(map[string]func() error{
			http.MethodGet:    func() error { return h.showApproval(tail) },
			http.MethodDelete: func() error { return h.revokeApproval(tail) },
		})
	case head == "bans" && tail == "":
		return h.route(map[string]func() error{http.MethodGet: h.listBans, http.MethodPost: h.addBan})
	case head == "bans":
		return h.route(map[string]func() error{http.MethodDelete: func() error { return h.removeBan(tail) }})
	case head == "audit" && tail == "":
		return h.route(map[string]func() error{http.MethodGet: h.audit})
	case head == "status" && tail == "":
		return h.route(map[string]func() error{http.MethodGet: h.status})
	}
	return apiError(http.StatusNotFound, fmt.Errorf("no such gatekeeper admin route: %s", r.URL.Path))
}

// adminRequest is one admin API call.
type adminRequest struct {
	app    *App
	w      http.ResponseWriter
	r      *http.Request
	logger *zap.Logger
}

func (h adminRequest) route(byMethod map[string]func() error) error {
	if f, ok := byMethod[h.r.Method]; ok {
		return f()
	}
	allowed := make([]string, 0, len(byMethod))
	for m := range byMethod {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed)
	h.w.Header().Set("Allow", strings.Join(allowed, ", "))
	return apiError(http.StatusMethodNotAllowed, fmt.Errorf("method %s not allowed; use %s", h.r.Method, strings.Join(allowed, " or ")))
}

func (h adminRequest) ctx() context.Context { return h.r.Context() }

// actor names who made a change, for the audit: the client certificate's
// subject when the admin endpoint uses mTLS, else the peer address.
func (h adminRequest) actor() string {
	if tls := h.r.TLS; tls != nil && len(tls.PeerCertificates) > 0 {
		return "cert:" + tls.PeerCertificates[0].Subject.String()
	}
	host, _, err := net.SplitHostPort(h.r.RemoteAddr)
	if err != nil {
		host = h.r.RemoteAddr
	}
	return "admin@" + host
}

// afterWrite makes this instance enforce a change at once; others hear of it
// through the store.
func (h adminRequest) afterWrite() {
	if err := h.app.Syncer().Refresh(h.ctx()); err != nil {
		h.logger.Warn("change stored, but re-reading the store failed; the resync timer will retry", zap.Error(err))
	}
}

func (h adminRequest) readBody() ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(h.w, h.r.Body, maxBodyBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, apiError(http.StatusRequestEntityTooLarge, fmt.Errorf("body: larger than %d bytes", maxBodyBytes))
	}
	if err != nil {
		return nil, apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	return b, nil
}

// approvalCreated is the answer to a registration: the approval, and its
// test token the one time it is ever shown.
type approvalCreated struct {
	*approvals.Approval
	Token string `json:"token,omitempty"`
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
	s := h.app.Settings()
	at := now()
	a, err := req.Build(approvals.Limits{MaxWindow: s.MaxWindow, AllowBroadSources: s.AllowBroadSources}, at)
	if err != nil {
		return apiError(http.StatusBadRequest, err)
	}
	a.ID = "apr_" + randomHex(8)
	a.CreatedAt = at.UTC()
	var token string
	if a.RequireToken {
		token = "gkt_" + randomBase64(32)
		a.TokenHash = approvals.HashToken(token)
	}
	if err := h.app.Syncer().Store().CreateApproval(h.ctx(), a, h.actor()); err != nil {
		return storeError(err)
	}
	h.afterWrite()
	h.logger.Info("approval registered", zap.String("id", a.ID), zap.String("tenant", a.Tenant),
		zap.String("approval_ref", a.ApprovalRef), zap.String("actor", h.actor()))
	return writeJSON(h.w, http.StatusCreated, approvalCreated{Approval: a.Public(at), Token: token})
}

func (h adminRequest) listApprovals() error {
	q := h.r.URL.Query()
	tenant := q.Get("tenant")
	status := approvals.Status(q.Get("status"))
	if status != "" && !status.Valid() {
		return apiError(http.StatusBadRequest, fmt.Errorf("status: %q is not one of %v", status, approvals.Statuses))
	}
	list, err := h.app.Syncer().Store().Approvals(h.ctx())
	if err != nil {
		return storeError(err)
	}
	at := now()
	out := make([]*approvals.Approval, 0, len(list))
	for _, a := range list {
		p := a.Public(at)
		if (tenant == "" || p.Tenant == tenant) && (status == "" || p.Status == status) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *approvals.Approval) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return writeJSON(h.w, http.StatusOK, out)
}

func (h adminRequest) showApproval(id string) error {
	a, err := h.app.Syncer().Store().Approval(h.ctx(), id)
	if err != nil {
		return storeError(err)
	}
	return writeJSON(h.w, http.StatusOK, a.Public(now()))
}

func (h adminRequest) revokeApproval(id string) error {
	reason := strings.TrimSpace(h.r.URL.Query().Get("reason"))
	if len(reason) > 1024 {
		return apiError(http.StatusBadRequest, errors.New("reason: at most 1024 bytes"))
	}
	at := now()
	a, err := h.app.Syncer().Store().RevokeApproval(h.ctx(), id, reason, h.actor(), at)
	if err != nil {
		return storeError(err)
	}
	h.afterWrite()
	h.logger.Info("approval revoked", zap.String("id", id), zap.String("reason", reason), zap.String("actor", h.actor()))
	return writeJSON(h.w, http.StatusOK, a.Public(at))
}

// Report is the close-out report of an approved test.
type Report struct {
	ID          string                `json:"id"`
	Tenant      string                `json:"tenant"`
	Status      approvals.Status      `json:"status"`
	ApprovalRef string                `json:"approval_ref"`
	NotBefore   time.Time             `json:"not_before"`
	NotAfter    time.Time             `json:"not_after"`
	MaxRPS      float64               `json:"max_rps"`
	Burst       int                   `json:"burst"`
	MaxRequests int64                 `json:"max_requests"`
	Usage       approvals.Usage       `json:"usage"`
	FirstSeen   *time.Time            `json:"first_seen,omitempty"`
	Hours       []approvals.HourUsage `json:"hours"`
}

func (h adminRequest) report(id string) error {
	st := h.app.Syncer().Store()
	a, err := st.Approval(h.ctx(), id)
	if err != nil {
		return storeError(err)
	}
	hist, err := st.History(h.ctx(), id)
	if err != nil {
		return storeError(err)
	}
	p := a.Public(now())
	return writeJSON(h.w, http.StatusOK, Report{
		ID: p.ID, Tenant: p.Tenant, Status: p.Status, ApprovalRef: p.ApprovalRef,
		NotBefore: p.NotBefore, NotAfter: p.NotAfter, MaxRPS: p.MaxRPS, Burst: p.Burst, MaxRequests: p.MaxRequests,
		Usage: p.Usage, FirstSeen: hist.FirstSeen, Hours: hist.Hours,
	})
}

// banRequest is the body of POST /gatekeeper/bans.
type banRequest struct {
	IP     string `json:"ip"`
	TTL    string `json:"ttl"`
	Reason string `json:"reason"`
}

func (h adminRequest) addBan() error {
	body, err := h.readBody()
	if err != nil {
		return err
	}
	var req banRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("body: %w", err))
	}
	p, err := h.banPrefix(req.IP)
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("field \"ip\": %w", err))
	}
	ttl := h.app.Settings().BanTTL
	if req.TTL != "" {
		ttl, err = caddy.ParseDuration(req.TTL)
		if err != nil || ttl <= 0 || ttl > 366*24*time.Hour {
			return apiError(http.StatusBadRequest, fmt.Errorf("field \"ttl\": %q is not a duration between 1s and 366d, such as 1h", req.TTL))
		}
	}
	reason := strings.TrimSpace(req.Reason)
	if reason == "" {
		reason = "manual"
	}
	if len(reason) > 1024 {
		return apiError(http.StatusBadRequest, errors.New("field \"reason\": at most 1024 bytes"))
	}
	at := now().UTC()
	b := approvals.Ban{Prefix: p, Reason: reason, CreatedAt: at, ExpiresAt: at.Add(ttl)}
	if err := h.app.Syncer().Store().AddBan(h.ctx(), b, h.actor()); err != nil {
		return storeError(err)
	}
	h.afterWrite()
	h.logger.Info("source banned by hand", zap.Stringer("source", p), zap.Duration("ttl", ttl), zap.String("actor", h.actor()))
	return writeJSON(h.w, http.StatusCreated, b)
}

// banPrefix turns an IP or CIDR into the prefix bans are kept by: a lone
// IPv6 address stands for its /64 (or the configured ipv6_prefix).
func (h adminRequest) banPrefix(s string) (netip.Prefix, error) {
	p, err := approvals.ParseSource(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if p.IsSingleIP() || (p.Addr().Is6() && p.Bits() > h.app.Settings().IPv6Prefix) {
		return h.app.sourcePrefix(p.Addr()), nil
	}
	return p, nil
}

func (h adminRequest) listBans() error {
	bans, err := h.app.Syncer().Store().Bans(h.ctx(), now())
	if err != nil {
		return storeError(err)
	}
	if bans == nil {
		bans = []approvals.Ban{}
	}
	return writeJSON(h.w, http.StatusOK, bans)
}

func (h adminRequest) removeBan(ip string) error {
	p, err := h.banPrefix(ip)
	if err != nil {
		return apiError(http.StatusBadRequest, fmt.Errorf("ip: %w", err))
	}
	h.app.state.bans.remove(p)
	eachMemory(func(m *detect.Memory) { m.Forget(p) })
	b, err := h.app.Syncer().Store().RemoveBan(h.ctx(), p, h.actor(), now())
	if err != nil {
		return storeError(err)
	}
	h.afterWrite()
	h.logger.Info("ban lifted", zap.Stringer("source", p), zap.String("actor", h.actor()))
	return writeJSON(h.w, http.StatusOK, b)
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
	kind := q.Get("kind")
	if kind != "" && !slices.Contains(approvals.AuditKinds, kind) {
		return apiError(http.StatusBadRequest, fmt.Errorf("kind: %q is neither approval nor ban", kind))
	}
	evs, err := h.app.Syncer().Store().Audit(h.ctx(), approvals.AuditQuery{Since: since, Limit: limit, Kind: kind})
	if err != nil {
		return storeError(err)
	}
	out := make([]approvals.AuditEvent, len(evs))
	for i, e := range evs {
		out[i] = e.Public()
	}
	return writeJSON(h.w, http.StatusOK, out)
}

// Status is the answer of GET /gatekeeper/status.
type Status struct {
	Store struct {
		Kind        string `json:"kind"`
		Description string `json:"description"`
		approvals.Health
		// Warnings name settings of the store that put its data at risk.
		Warnings []string `json:"warnings,omitempty"`
	} `json:"store"`
	Approvals  map[approvals.Status]int `json:"approvals"`
	BansActive int                      `json:"bans_active"`
}

func (h adminRequest) status() error {
	var st Status
	sy := h.app.Syncer()
	st.Store.Kind = sy.Store().Kind()
	st.Store.Description = h.app.Settings().Store.Describe()
	st.Store.Health = sy.Health()
	if err := sy.Store().Ping(h.ctx()); err != nil {
		st.Store.Up = false
		st.Store.LastError = err.Error()
	} else if c, ok := sy.Store().(approvals.Checker); ok {
		st.Store.Warnings = c.Check(h.ctx())
	}
	st.Approvals, st.BansActive = sy.Snapshot().Counts(now())
	return writeJSON(h.w, http.StatusOK, st)
}

// storeError maps store errors to HTTP statuses.
func storeError(err error) error {
	switch {
	case errors.Is(err, approvals.ErrNotFound):
		return apiError(http.StatusNotFound, err)
	case errors.Is(err, approvals.ErrExists), errors.Is(err, approvals.ErrAlreadyRevoked):
		return apiError(http.StatusConflict, err)
	case errors.Is(err, approvals.ErrUnavailable):
		return apiError(http.StatusServiceUnavailable, err)
	}
	return apiError(http.StatusInternalServerError, err)
}

func apiError(status int, err error) error {
	return caddy.APIError{HTTPStatus: status, Err: err}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return apiError(http.StatusInternalServerError, err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBase64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*AdminAPI)(nil)
	_ caddy.Provisioner = (*AdminAPI)(nil)
)
