package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/guard"
)

// The CLI's tables, for people. Scripts use --json.

const cliTime = "2006-01-02 15:04Z07:00"

func table(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0) }

func printApprovals(w io.Writer, body []byte) error {
	var list []*approvals.Approval
	if err := json.Unmarshal(body, &list); err != nil {
		return err
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(w, "no approvals")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "ID\tTENANT\tSTATUS\tSOURCES\tWINDOW (UTC)\tRPS/BURST\tUSED/MAX\tREF")
	for _, a := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%g/%d\t%d/%d\t%s\n", a.ID, a.Tenant, a.Status, sources(a),
			window(a), a.MaxRPS, a.Burst, a.Usage.Allowed, a.MaxRequests, a.ApprovalRef)
	}
	return tw.Flush()
}

func printApproval(w io.Writer, body []byte) error {
	var a approvals.Approval
	if err := json.Unmarshal(body, &a); err != nil {
		return err
	}
	tw := table(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("id", a.ID)
	row("tenant", a.Tenant)
	row("status", string(a.Status))
	row("sources", sources(&a))
	row("hosts", strings.Join(a.Hosts, ", "))
	row("paths", strings.Join(a.Paths, ", "))
	row("methods", strings.Join(a.Methods, ", "))
	row("window", window(&a))
	row("rate", fmt.Sprintf("%g/s, burst %d", a.MaxRPS, a.Burst))
	row("budget", fmt.Sprintf("%d requests", a.MaxRequests))
	row("requested by", a.RequestedBy)
	row("approved by", a.ApprovedBy)
	row("approval ref", a.ApprovalRef)
	row("contact", a.Contact)
	row("notes", a.Notes)
	row("require token", fmt.Sprint(a.RequireToken))
	row("created", a.CreatedAt.UTC().Format(cliTime))
	if a.Requester != nil {
		row("registered by", a.Requester.String())
	}
	if a.Requested() {
		row("approvals", fmt.Sprintf("%d of %d", a.Approvals(), max(a.Approvers, 1)))
		row("pending until", a.PendingUntil.UTC().Format(cliTime))
		row("digest", a.ContentDigest)
	}
	for _, r := range a.Reviews {
		row("review", fmt.Sprintf("%s %s at %s %s", r.By, pastTense(r.Decision), r.At.UTC().Format(cliTime), r.Note))
	}
	if a.DeniedAt != nil {
		row("deny reason", a.DenyReason)
	}
	if a.RevokedAt != nil {
		row("revoked", a.RevokedAt.UTC().Format(cliTime))
		row("revoke reason", a.RevokeReason)
	}
	u := a.Usage
	used := fmt.Sprintf("%d allowed, %d rate-limited, %d budget-exhausted, %d out of scope",
		u.Allowed, u.RateLimited, u.BudgetExhausted, u.OutOfScope)
	if u.PlatformBusy > 0 {
		used += fmt.Sprintf(", %d held back by the impact guard", u.PlatformBusy)
	}
	if u.CapacityFull > 0 {
		used += fmt.Sprintf(", %d held back by test_capacity", u.CapacityFull)
	}
	row("usage", used)
	if u.LastSeen != nil {
		row("last seen", u.LastSeen.UTC().Format(cliTime))
	}
	return tw.Flush()
}

func printReport(w io.Writer, body []byte) error {
	var r api.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return err
	}
	tw := table(w)
	fmt.Fprintf(tw, "approval\t%s (%s), tenant %s, ref %s\n", r.ID, r.Status, r.Tenant, r.ApprovalRef)
	fmt.Fprintf(tw, "window\t%s – %s\n", r.NotBefore.UTC().Format(cliTime), r.NotAfter.UTC().Format(cliTime))
	fmt.Fprintf(tw, "bounds\t%g/s, burst %d, %d requests\n", r.MaxRPS, r.Burst, r.MaxRequests)
	fmt.Fprintf(tw, "requested by\t%s\n", r.RequestedBy)
	if r.Requester != nil {
		fmt.Fprintf(tw, "registered by\t%s\n", r.Requester)
	}
	if r.Approvers > 0 {
		fmt.Fprintf(tw, "four eyes\t%d approval(s) needed\n", r.Approvers)
	} else {
		fmt.Fprintf(tw, "approved by\t%s (as registered)\n", r.ApprovedBy)
	}
	for _, rv := range r.Reviews {
		fmt.Fprintf(tw, "%s\t%s by %s: %s %s\n", pastTense(rv.Decision), rv.At.UTC().Format(time.RFC3339), rv.By, rv.ApprovalRef, rv.Note)
	}
	fmt.Fprintf(tw, "allowed\t%d (%.1f%% of the budget)\n", r.Usage.Allowed, 100*float64(r.Usage.Allowed)/float64(max(r.MaxRequests, 1)))
	fmt.Fprintf(tw, "rate-limited\t%d\n", r.Usage.RateLimited)
	fmt.Fprintf(tw, "budget-exhausted\t%d\n", r.Usage.BudgetExhausted)
	fmt.Fprintf(tw, "out of scope\t%d\n", r.Usage.OutOfScope)
	// Each refusal of an approved test's rate names what held it back:
	// the impact guard (platform_busy) or test_capacity (capacity_full).
	if n := r.Usage.PlatformBusy; n > 0 {
		fmt.Fprintf(tw, "held back by the impact guard\t%d (platform_busy)\n", n)
	}
	if n := r.Usage.CapacityFull; n > 0 {
		fmt.Fprintf(tw, "held back by test_capacity\t%d (capacity_full)\n", n)
	}
	seen := func(t *time.Time) string {
		if t == nil {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(tw, "first seen\t%s\n", seen(r.FirstSeen))
	fmt.Fprintf(tw, "last seen\t%s\n", seen(r.Usage.LastSeen))
	if r.RevokedAt != nil {
		by := r.RevokedBy
		if by == "" {
			by = "(no revocation event found in the audit)"
		}
		fmt.Fprintf(tw, "revoked\t%s by %s: %s\n", r.RevokedAt.UTC().Format(time.RFC3339), by, r.RevokeReason)
	}
	for _, y := range r.Yielded {
		fmt.Fprintf(tw, "%s\t%s: %s (%s)\n", strings.TrimPrefix(y.Action, "approval."), y.At.UTC().Format(time.RFC3339), y.Why, y.By)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Hours) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = table(w)
	fmt.Fprintln(tw, "HOUR (UTC)\tALLOWED\tRATE-LIMITED\tBUDGET-EXHAUSTED\tOUT OF SCOPE\tIMPACT GUARD\tTEST CAPACITY")
	for _, h := range r.Hours {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", h.Hour.UTC().Format(cliTime), h.Allowed, h.RateLimited, h.BudgetExhausted, h.OutOfScope, h.PlatformBusy, h.CapacityFull)
	}
	return tw.Flush()
}

// pastTense is a review's decision as a table says it.
func pastTense(decision string) string {
	if decision == approvals.DecisionDeny {
		return "denied"
	}
	return "approved"
}

func printCreated(w io.Writer, c api.ApprovalCreated) error {
	if c.Status == approvals.StatusPending {
		fmt.Fprintf(w, "request %s filed for tenant %s (pending: it needs %d approval(s) from the approver group, none of them yours)\n",
			c.ID, c.Tenant, max(c.Approvers, 1))
	} else {
		fmt.Fprintf(w, "approval %s registered for tenant %s (%s)\n", c.ID, c.Tenant, c.Status)
	}
	fmt.Fprintf(w, "window %s, %g req/s (burst %d), %d requests in all\n", window(c.Approval), c.MaxRPS, c.Burst, c.MaxRequests)
	if c.Token != "" {
		fmt.Fprintf(w, "test token (shown once; the tester sends it as \"Proxy-Authorization: Gatekeeper <token>\"): %s\n", c.Token)
	}
	return nil
}

func printBans(w io.Writer, body []byte) error {
	var bans []approvals.Ban
	if err := json.Unmarshal(body, &bans); err != nil {
		return err
	}
	if len(bans) == 0 {
		_, err := fmt.Fprintln(w, "no bans")
		return err
	}
	tw := table(w)
	fmt.Fprintln(tw, "SOURCE\tREASON\tSINCE (UTC)\tUNTIL (UTC)")
	for _, b := range bans {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Prefix, b.Reason, b.CreatedAt.UTC().Format(cliTime), b.ExpiresAt.UTC().Format(cliTime))
	}
	return tw.Flush()
}

func printStatus(w io.Writer, st api.Status) error {
	tw := table(w)
	up := "up"
	if !st.Store.Up {
		up = "DOWN"
	}
	fmt.Fprintf(tw, "store\t%s (%s)\n", st.Store.Description, up)
	if !st.Store.LastSync.IsZero() {
		fmt.Fprintf(tw, "last sync\t%s (%s ago)\n", st.Store.LastSync.UTC().Format(time.RFC3339), time.Since(st.Store.LastSync).Round(time.Second))
	}
	if st.Store.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", st.Store.LastError)
	}
	for _, w := range st.Store.Warnings {
		fmt.Fprintf(tw, "WARNING\t%s\n", w)
	}
	var counts []string
	for _, s := range approvals.Statuses {
		counts = append(counts, fmt.Sprintf("%d %s", st.Approvals[s], s))
	}
	fmt.Fprintf(tw, "approvals\t%s\n", strings.Join(counts, ", "))
	fmt.Fprintf(tw, "bans\t%d active\n", st.BansActive)
	fmt.Fprintf(tw, "impact guard\t%s\n", guardSummary(st.ImpactGuard))
	fmt.Fprintf(tw, "campaigns\t%s\n", campaignSummary(st.Campaigns))
	if st.TestCapacity > 0 {
		fmt.Fprintf(tw, "test capacity\t%s\n", capacitySummary(st.TestCapacity, st.TestDemand))
	}
	if v := st.Audit; v != nil {
		fmt.Fprintf(tw, "audit\t%s, checked %s\n", auditSummary(v), v.At.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// capacitySummary sets what the tests active now are approved for beside
// the platform's test capacity.
func capacitySummary(capacity, demand float64) string {
	switch {
	case demand == 0:
		return fmt.Sprintf("%g/s; no test active now", capacity)
	case demand > capacity:
		return fmt.Sprintf("%g/s; the tests active now are approved for %g/s together, more than the capacity", capacity, demand)
	}
	return fmt.Sprintf("%g/s; the tests active now are approved for %g/s of it together", capacity, demand)
}

// guardSummary says in one line what the impact guard does to approved
// tests, and why.
func guardSummary(r guard.Report) string {
	if !r.Enabled {
		return "off: approved tests keep their approved rate"
	}
	out := fmt.Sprintf("tests %s at %.0f%% of their rate", r.State, 100*r.Factor)
	if r.State != guard.Full && r.Why != "" {
		out += ": " + r.Why
	}
	if !r.Since.IsZero() {
		out += fmt.Sprintf(" (since %s)", r.Since.UTC().Format(time.RFC3339))
	}
	if r.CalmMS > 0 {
		out += fmt.Sprintf("; others' calm %.0f ms", r.CalmMS)
	}
	return out
}

// auditSummary says in one line what a check of the audit chains found.
func auditSummary(v *audit.Verification) string {
	if v.Error != "" {
		return "NOT CHECKED: " + v.Error
	}
	var parts []string
	for _, r := range v.Chains {
		if !r.OK {
			return fmt.Sprintf("BROKEN: %s chain at seq %d: %s", r.Kind, r.BrokenAt, r.Problem)
		}
		part := fmt.Sprintf("%s seq %d", r.Kind, r.Last.Seq)
		if r.Last.Hash != "" {
			part += " " + shortHash(r.Last.Hash)
		}
		parts = append(parts, part)
	}
	return "intact (" + strings.Join(parts, ", ") + ")"
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// printChains prints one line a chain: how far it verified, or where and
// why it is broken.
func printChains(w io.Writer, reports []audit.ChainReport) error {
	tw := table(w)
	for _, r := range reports {
		switch {
		case !r.OK:
			fmt.Fprintf(tw, "%s chain\tBROKEN at seq %d\t%s\n", r.Kind, r.BrokenAt, r.Problem)
		case r.Events == 0:
			fmt.Fprintf(tw, "%s chain\tempty\t\n", r.Kind)
		default:
			span := fmt.Sprintf("seq %d–%d", r.First, r.Last.Seq)
			if r.First > 1 {
				span += fmt.Sprintf(" (events before %d dropped by the ban audit's cap)", r.First)
			}
			if r.Unchained > 0 {
				span += fmt.Sprintf(", after %d events from before the chain", r.Unchained)
			}
			fmt.Fprintf(tw, "%s chain\tintact\t%d events, %s, last hash %s\n", r.Kind, r.Events, span, r.Last.Hash)
		}
	}
	return tw.Flush()
}

func sources(a *approvals.Approval) string {
	s := make([]string, len(a.Sources))
	for i, p := range a.Sources {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func window(a *approvals.Approval) string {
	return a.NotBefore.UTC().Format(cliTime) + " – " + a.NotAfter.UTC().Format(cliTime)
}

// campaignSummary says in one line which campaigns are refused now.
func campaignSummary(cs []api.Campaign) string {
	if len(cs) == 0 {
		return "none"
	}
	var out []string
	for _, c := range cs {
		if c.Kind == "probes" {
			out = append(out, c.Tenant+" (probe paths)")
		} else {
			out = append(out, c.Tenant+" (requests of shape "+c.Shape+")")
		}
	}
	return fmt.Sprintf("%d refused now: %s", len(cs), strings.Join(out, ", "))
}
