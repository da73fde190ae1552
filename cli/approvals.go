package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/approvals"
	"github.com/spf13/cobra"
)

func approvalsCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	cmd.Example = "  $ gatekeeper approvals list\n  $ gatekeeper approvals add --help"

	add := &cobra.Command{
		Use:   "add",
		Short: "Registers an approved test",
		Args:  cobra.NoArgs,
		Example: `  $ gatekeeper approvals add --tenant acme --source 203.0.113.0/28 \
      --from 2026-12-10T09:00:00Z --until 2026-12-10T17:00:00Z --rps 20 --max-requests 200000 \
      --requested-by alice@acme.example --approved-by sec-team --ref SEC-1234`,
	}
	addRequestRun(add, true)

	request := &cobra.Command{
		Use:   "request",
		Short: "Asks for a test, for approvers to approve (four eyes)",
		Long: `
Files a request for a security test under the app's approval_policy. It is
pending until enough approvers approve it (gatekeeper approvals approve),
and covers nothing until then. Who asks is who is authenticated: on the
local admin endpoint, the operator.`,
		Args: cobra.NoArgs,
		Example: `  $ gatekeeper approvals request --tenant acme --source 203.0.113.0/28 \
      --from 2026-12-10T09:00:00Z --until 2026-12-10T17:00:00Z --rps 20 --max-requests 200000`,
	}
	addRequestRun(request, false)

	pending := &cobra.Command{Use: "pending", Example: `  $ gatekeeper approvals pending`, Short: "Lists the requests waiting for review (four eyes)", Args: cobra.NoArgs}
	pending.RunE = run(func(cmd *cobra.Command, _ []string) error {
		b, err := newClient(cmd).call("GET", "/gatekeeper/approvals?status=pending", nil)
		if err != nil || b == nil {
			return err
		}
		return printApprovals(cmd.OutOrStdout(), b)
	})

	approve := &cobra.Command{Use: "approve <id>", Example: `  $ gatekeeper approvals show "$id"          # read it, and its digest
  $ gatekeeper approvals approve "$id" --ref SEC-1234 --digest 3f9c…`, Short: "Approves a pending request (four eyes)", Args: cobra.ExactArgs(1)}
	approve.Flags().String("ref", "", "Reference of the written approval (required)")
	approve.Flags().String("note", "", "A note for the audit")
	approve.Flags().String("digest", "", "The digest `approvals show` printed: approve only if the request is still what you read")
	approve.RunE = run(func(cmd *cobra.Command, args []string) error {
		ref, _ := cmd.Flags().GetString("ref")
		note, _ := cmd.Flags().GetString("note")
		digest, _ := cmd.Flags().GetString("digest")
		if strings.TrimSpace(ref) == "" {
			return errors.New("--ref is required: the reference of the written approval")
		}
		return review(cmd, args[0], "approve", api.ReviewRequest{ApprovalRef: ref, Note: note, Digest: digest})
	})

	deny := &cobra.Command{Use: "deny <id>", Example: `  $ gatekeeper approvals deny "$id" --reason "no contract for this tenant"`, Short: "Denies a pending request (four eyes)", Args: cobra.ExactArgs(1)}
	deny.Flags().String("reason", "", "Why, for the requester and the audit (required)")
	deny.RunE = run(func(cmd *cobra.Command, args []string) error {
		reason, _ := cmd.Flags().GetString("reason")
		if strings.TrimSpace(reason) == "" {
			return errors.New("--reason is required: say why, for the requester and the audit")
		}
		return review(cmd, args[0], "deny", api.ReviewRequest{Reason: reason})
	})

	token := &cobra.Command{Use: "token <id>", Example: `  $ gatekeeper approvals token "$id"`, Short: "Hands the requester of an approved request its test token, once", Args: cobra.ExactArgs(1)}
	token.RunE = run(func(cmd *cobra.Command, args []string) error {
		b, err := newClient(cmd).call("POST", "/gatekeeper/approvals/"+url.PathEscape(args[0])+"/token", nil)
		if err != nil || b == nil {
			return err
		}
		var issued api.TokenIssued
		if err := json.Unmarshal(b, &issued); err != nil {
			return err
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "test token of approval %s, tenant %s (%s), shown this once; the tester sends it as "+
			"\"Proxy-Authorization: Gatekeeper <token>\":\n%s\n", issued.ID, issued.Tenant, issued.Status, issued.Token)
		return err
	})

	list := &cobra.Command{Use: "list", Example: `  $ gatekeeper approvals list --tenant acme --status active`, Short: "Lists approvals", Args: cobra.NoArgs}
	list.Flags().String("tenant", "", "Only this tenant's approvals")
	list.Flags().String("status", "", "Only approvals with this status (scheduled, active, expired, revoked, exhausted)")
	list.RunE = run(func(cmd *cobra.Command, _ []string) error {
		q := url.Values{}
		for _, name := range []string{"tenant", "status"} {
			if v, _ := cmd.Flags().GetString(name); v != "" {
				q.Set(name, v)
			}
		}
		uri := "/gatekeeper/approvals"
		if len(q) > 0 {
			uri += "?" + q.Encode()
		}
		b, err := newClient(cmd).call("GET", uri, nil)
		if err != nil || b == nil {
			return err
		}
		return printApprovals(cmd.OutOrStdout(), b)
	})

	show := &cobra.Command{Use: "show <id>", Example: `  $ gatekeeper approvals show "$id"`, Short: "Shows one approval with its usage", Args: cobra.ExactArgs(1)}
	show.RunE = run(func(cmd *cobra.Command, args []string) error {
		b, err := newClient(cmd).call("GET", "/gatekeeper/approvals/"+url.PathEscape(args[0]), nil)
		if err != nil || b == nil {
			return err
		}
		return printApproval(cmd.OutOrStdout(), b)
	})

	revoke := &cobra.Command{Use: "revoke <id>", Example: `  $ gatekeeper approvals revoke "$id" --reason "customer asked to stop"`, Short: "Revokes an approval on every instance", Args: cobra.ExactArgs(1)}
	revoke.Flags().String("reason", "", "Why, for the audit (required)")
	revoke.RunE = run(func(cmd *cobra.Command, args []string) error {
		reason, _ := cmd.Flags().GetString("reason")
		if strings.TrimSpace(reason) == "" {
			return errors.New("--reason is required: say why, for the audit")
		}
		uri := "/gatekeeper/approvals/" + url.PathEscape(args[0]) + "?" + url.Values{"reason": {reason}}.Encode()
		b, err := newClient(cmd).call("DELETE", uri, nil)
		if err != nil || b == nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "approval %s revoked\n", args[0])
		return nil
	})

	report := &cobra.Command{Use: "report <id>", Example: `  $ gatekeeper approvals report "$id"`, Short: "Prints the close-out report of a test: totals and per-hour counts", Args: cobra.ExactArgs(1)}
	report.RunE = run(func(cmd *cobra.Command, args []string) error {
		b, err := newClient(cmd).call("GET", "/gatekeeper/approvals/"+url.PathEscape(args[0])+"/report", nil)
		if err != nil || b == nil {
			return err
		}
		return printReport(cmd.OutOrStdout(), b)
	})

	cmd.AddCommand(add, request, pending, approve, deny, token, list, show, revoke, report)
}

// addRequestRun gives add (direct, with who approved it) or request (for
// approvers to approve) the flags of a test and the command that sends it.
func addRequestRun(c *cobra.Command, direct bool) {
	var req approvals.Request
	var burst int
	f := c.Flags()
	f.StringVar(&req.Tenant, "tenant", "", "The tenant under test (required)")
	f.StringSliceVar(&req.Sources, "source", nil, "An IP or CIDR the test comes from; repeat or comma-separate (required)")
	f.StringSliceVar(&req.Hosts, "host", nil, "Limit the test to these hosts")
	f.StringSliceVar(&req.Paths, "path", nil, "Limit the test to these path patterns")
	f.StringSliceVar(&req.Methods, "method", nil, "Limit the test to these methods")
	f.StringVar(&req.NotBefore, "from", "", "Start of the window, RFC 3339 (required)")
	f.StringVar(&req.NotAfter, "until", "", "End of the window, RFC 3339, exclusive (required)")
	f.Float64Var(&req.MaxRPS, "rps", 0, "Requests per second allowed (required)")
	f.IntVar(&burst, "burst", 0, "Requests allowed at once (default: one second's worth)")
	f.Int64Var(&req.MaxRequests, "max-requests", 0, "Requests allowed over the whole test (required)")
	if direct {
		f.StringVar(&req.RequestedBy, "requested-by", "", "Who asked for the test (required)")
		f.StringVar(&req.ApprovedBy, "approved-by", "", "Who approved it (required)")
		f.StringVar(&req.ApprovalRef, "ref", "", "Reference of the written approval (required)")
	}
	f.StringVar(&req.Contact, "contact", "", "Who to call during the test")
	f.StringVar(&req.Notes, "notes", "", "Anything else")
	f.BoolVar(&req.RequireToken, "require-token", false, "Require a test token (sent as Proxy-Authorization: Gatekeeper <token>); it is printed once")
	c.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("burst") {
			req.Burst = &burst
		}
		// Only what was given is sent (the request's members are
		// omitempty), so that the admin API names what is missing.
		b, err := newClient(cmd).call("POST", "/gatekeeper/approvals", req)
		if err != nil {
			return flagError(err)
		}
		if b == nil {
			return nil
		}
		var created api.ApprovalCreated
		if err := json.Unmarshal(b, &created); err != nil {
			return err
		}
		return printCreated(cmd.OutOrStdout(), created)
	})
}

// requestFlags names the flag of add and request that sets each member of
// approvals.Request, by its JSON name: what the admin API's errors name.
var requestFlags = map[string]string{
	"tenant": "tenant", "sources": "source", "hosts": "host", "paths": "path", "methods": "method",
	"not_before": "from", "not_after": "until", "max_rps": "rps", "burst": "burst", "max_requests": "max-requests",
	"requested_by": "requested-by", "approved_by": "approved-by", "approval_ref": "ref",
	"contact": "contact", "notes": "notes", "require_token": "require-token",
}

var (
	apiField = regexp.MustCompile(`field "([a-z_]+)(?:\[(\d+)\])?"`)
	// apiName is a member's name in a message's text ("must be after
	// not_before"); only names with an underscore, which are not words.
	apiName = regexp.MustCompile(`\b[a-z]+_[a-z_]+\b`)
)

// flagError rewrites the admin API's `field "not_after"` in err as the flag
// the user typed (--until); `field "sources[1]"` becomes "--source (the 2nd
// given)", and "must be after not_before" "must be after --from". Names no
// flag sets are left as they are.
func flagError(err error) error {
	msg := err.Error()
	out := apiField.ReplaceAllStringFunc(msg, func(m string) string {
		sub := apiField.FindStringSubmatch(m)
		flag, ok := requestFlags[sub[1]]
		if !ok {
			return m
		}
		if sub[2] == "" {
			return "--" + flag
		}
		i, _ := strconv.Atoi(sub[2])
		return fmt.Sprintf("--%s (the %s given)", flag, ordinal(i+1))
	})
	out = apiName.ReplaceAllStringFunc(out, func(m string) string {
		if flag, ok := requestFlags[m]; ok {
			return "--" + flag
		}
		return m
	})
	if out == msg {
		return err
	}
	return errors.New(out)
}

// ordinal writes n as 1st, 2nd, 3rd, 4th, 11th, 21st …
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// review sends an approve or deny of request id and prints where it stands.
func review(cmd *cobra.Command, id, decision string, body api.ReviewRequest) error {
	b, err := newClient(cmd).call("POST", "/gatekeeper/approvals/"+url.PathEscape(id)+"/"+decision, body)
	if err != nil || b == nil {
		return err
	}
	var a approvals.Approval
	if err := json.Unmarshal(b, &a); err != nil {
		return err
	}
	switch a.Status {
	case approvals.StatusPending:
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "request %s: %d of %d approvals; still pending\n", a.ID, a.Approvals(), max(a.Approvers, 1))
	case approvals.StatusDenied:
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "request %s denied\n", a.ID)
	default:
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "request %s approved (%s, approved by %s)\n", a.ID, a.Status, a.ApprovedBy)
		if err == nil && a.RequireToken && !a.TokenIssued {
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "the requester gets its test token once with: gatekeeper approvals token %s\n", a.ID)
		}
	}
	return err
}
