package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
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
	var req approvals.Request
	var burst int
	f := add.Flags()
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
	f.StringVar(&req.RequestedBy, "requested-by", "", "Who asked for the test (required)")
	f.StringVar(&req.ApprovedBy, "approved-by", "", "Who approved it (required)")
	f.StringVar(&req.ApprovalRef, "ref", "", "Reference of the written approval (required)")
	f.StringVar(&req.Contact, "contact", "", "Who to call during the test")
	f.StringVar(&req.Notes, "notes", "", "Anything else")
	f.BoolVar(&req.RequireToken, "require-token", false, "Require a test token (sent as Proxy-Authorization: Gatekeeper <token>); it is printed once")
	add.RunE = run(func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("burst") {
			req.Burst = &burst
		}
		// Only what was given is sent (the request's members are
		// omitempty), so that the admin API names what is missing.
		b, err := newClient(cmd).call("POST", "/gatekeeper/approvals", req)
		if err != nil || b == nil {
			return err
		}
		var created api.ApprovalCreated
		if err := json.Unmarshal(b, &created); err != nil {
			return err
		}
		return printCreated(cmd.OutOrStdout(), created)
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

	cmd.AddCommand(add, list, show, revoke, report)
}
