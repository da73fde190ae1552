package caddymodule

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/customernode/gatekeeper/audit"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "approvals",
		Usage: "add|list|show|revoke|report [flags]",
		Short: "Registers, lists, shows and revokes approved security tests",
		Long: `
Talks to a running Gatekeeper's admin API (default localhost:2019; see
--address) to manage approvals: prior written approvals for a tenant's
security test, scoped to that tenant, scheduled in a window and bounded in
volume. Tables are for people; --json prints the admin API's JSON as it is.`,
		CobraFunc: approvalsCommand,
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "bans",
		Usage:     "list|add|remove [flags]",
		Short:     "Lists, adds and lifts bans of scanning sources",
		Long:      "Talks to a running Gatekeeper's admin API to list, add and lift bans.",
		CobraFunc: bansCommand,
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "audit",
		Usage: "verify [--file F [--key pub.pem]] | export --approval <id> [--output F]",
		Short: "Verifies the audit trail and exports a test's evidence",
		Long: `
verify checks the audit trail's hash chains (approval events, ban events):
through the admin API, the whole trail in the store, or with --file an
audit log (the file store's audit.jsonl; with the store's state.json beside
it, also against the chain heads it recorded) or an evidence export. It
prints what verified, and exits non-zero naming the first broken seq when
something is broken. --key pins the public key an export must be signed
with (PEM, as 'openssl pkey -pubout' writes).

export writes one approval's evidence for an auditor: the approval as
registered, every change to it, its usage report and the chain links that
prove they belong to the trail, signed when the app has audit_signing_key.
The file is confidential: the audit policy forbids passing it on without
the customer's consent.`,
		CobraFunc: auditCommand,
	})
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:      "status",
		Usage:     "[--address <admin>] [--json]",
		Short:     "Shows Gatekeeper's store health and counts",
		Long:      "Asks a running Gatekeeper's admin API for its store health, approval counts and bans.",
		CobraFunc: statusCommand,
	})
}

// adminFlags are the flags every CLI command takes to find the admin API,
// as `caddy reload` does.
func adminFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().String("address", "", "The address of the admin API (default: from --config, else localhost:2019)")
	cmd.PersistentFlags().String("config", "", "A config file to read the admin address from")
	cmd.PersistentFlags().String("adapter", "", "The adapter of --config")
	cmd.PersistentFlags().Bool("json", false, "Print the admin API's JSON instead of a table")
}

// adminAddress is the admin API's address, from --address, else from the
// config named by --config, else Caddy's default, as `caddy reload` finds it.
func adminAddress(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags()
	address, _ := fl.GetString("address")
	cfg, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	return caddycmd.DetermineAdminAPIAddress(address, nil, cfg, adapter)
}

// client is one CLI invocation's view of the admin API.
type client struct {
	cmd  *cobra.Command
	json bool
}

func newClient(cmd *cobra.Command) client {
	j, _ := cmd.Flags().GetBool("json")
	return client{cmd: cmd, json: j}
}

// call sends one request. With --json it copies the answer to stdout and
// returns nil data; otherwise it returns the body for a table.
func (c client) call(method, uri string, body any) ([]byte, error) {
	addr, err := adminAddress(c.cmd)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, r)
	if err != nil {
		return nil, cleanAdminError(addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the admin API's answer: %w", err)
	}
	if c.json {
		_, err := c.cmd.OutOrStdout().Write(b)
		return nil, err
	}
	return b, nil
}

var adminHTTPError = regexp.MustCompile(`(?s)HTTP (\d+): (.*)$`)

// cleanAdminError turns AdminAPIRequest's error into one line that says what
// the admin API said.
func cleanAdminError(addr string, err error) error {
	m := adminHTTPError.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("admin API at %s: %s", addr, oneLine(err.Error()))
	}
	var body struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(m[2])
	if json.Unmarshal([]byte(msg), &body) == nil && body.Error != "" {
		msg = body.Error
	}
	return fmt.Errorf("HTTP %s: %s", m[1], oneLine(msg))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// run wraps a command body so that a failure is one line on stderr and a
// non-zero exit.
func run(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "gatekeeper %s: %s\n", cmd.CommandPath()[strings.Index(cmd.CommandPath(), " ")+1:], oneLine(err.Error()))
			cmd.SilenceErrors = true
		}
		return err
	}
}

func statusCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	cmd.Args = cobra.NoArgs
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		c := newClient(cmd)
		b, err := c.call("GET", "/gatekeeper/status", nil)
		if err != nil || b == nil {
			return err
		}
		var st Status
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		return printStatus(cmd.OutOrStdout(), st)
	})
}

func auditCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	verify := &cobra.Command{Use: "verify", Short: "Checks the audit trail's hash chains", Args: cobra.NoArgs}
	verify.Flags().String("file", "", "Verify this audit log or evidence export instead of asking the admin API")
	verify.Flags().String("key", "", "With --file or --against: the public key (PEM) an evidence export must be signed with")
	verify.Flags().String("against", "", "Also hold the store's trail to this evidence export's chain head (it must verify first)")
	verify.RunE = run(func(cmd *cobra.Command, _ []string) error {
		var reports []audit.ChainReport
		j, _ := cmd.Flags().GetBool("json")
		if file, _ := cmd.Flags().GetString("file"); file != "" {
			keyFile, _ := cmd.Flags().GetString("key")
			var export *audit.EvidenceReport
			var err error
			if reports, export, err = verifyFile(file, keyFile); err != nil {
				return err
			}
			if export != nil {
				return printEvidence(cmd.OutOrStdout(), *export, j)
			}
			if j {
				b, _ := json.MarshalIndent(reports, "", "  ")
				fmt.Fprintf(cmd.OutOrStdout(), "%s\n", b)
			}
		} else {
			var body any
			if against, _ := cmd.Flags().GetString("against"); against != "" {
				keyFile, _ := cmd.Flags().GetString("key")
				known, err := exportHead(against, keyFile)
				if err != nil {
					return err
				}
				body = map[string]any{"known": []audit.KnownHead{known}}
			}
			c := newClient(cmd)
			c.json = false // read the answer for the exit status; printed below
			b, err := c.call("POST", "/gatekeeper/audit/verify", body)
			if err != nil {
				return err
			}
			if j {
				cmd.OutOrStdout().Write(b)
			}
			var v AuditVerification
			if err := json.Unmarshal(b, &v); err != nil {
				return fmt.Errorf("reading the admin API's answer: %w", err)
			}
			reports = v.Chains
		}
		if !j {
			if err := printChains(cmd.OutOrStdout(), reports); err != nil {
				return err
			}
		}
		for _, r := range reports {
			if !r.OK {
				return fmt.Errorf("the %s chain is broken at seq %d: %s", r.Kind, r.BrokenAt, r.Problem)
			}
		}
		return nil
	})
	export := &cobra.Command{Use: "export", Short: "Writes one approval's evidence for an auditor", Args: cobra.NoArgs}
	export.Flags().String("approval", "", "The approval's id (required)")
	export.Flags().String("output", "", "The file to write (default: <id>-evidence.json; - for standard output)")
	export.RunE = run(func(cmd *cobra.Command, _ []string) error {
		id, _ := cmd.Flags().GetString("approval")
		if id == "" {
			return errors.New("--approval: give the id of the approval whose evidence to export")
		}
		out, _ := cmd.Flags().GetString("output")
		if out == "" {
			out = id + "-evidence.json"
		}
		c := newClient(cmd)
		c.json = false
		b, err := c.call("GET", "/gatekeeper/approvals/"+url.PathEscape(id)+"/export", nil)
		if err != nil {
			return err
		}
		if out == "-" {
			_, err := cmd.OutOrStdout().Write(b)
			return err
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return err
		}
		r, err := audit.VerifyEvidence(b, nil)
		if err != nil {
			return err
		}
		signed := "not signed (the app has no audit_signing_key)"
		if r.Signed {
			signed = "signed by " + r.KeyFingerprint
		}
		fmt.Fprintf(cmd.OutOrStdout(), "evidence of %s written to %s: %d events, chain head seq %d, %s\nCONFIDENTIAL: do not pass it on without the customer's consent.\n",
			id, out, r.Events, r.Head.Seq, signed)
		return nil
	})
	cmd.AddCommand(verify, export)
}

// printEvidence prints what verifying an export found; it fails when that
// was not good.
func printEvidence(w io.Writer, r audit.EvidenceReport, asJSON bool) error {
	if asJSON {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Fprintf(w, "%s\n", b)
	} else if r.OK {
		signed := "NOT SIGNED: it shows its events belong to the chain up to its head, not that none were left out; " +
			"nothing vouches for its " + strings.Join(r.Unbound, ", ")
		switch {
		case r.Pinned:
			signed = "signed by the key given (" + r.KeyFingerprint + ")"
		case r.Signed:
			signed = "the signature is valid, but the signer is NOT PINNED: anyone can sign with a key of their own; " +
				"verify with --key and the platform's public key to know who signed (this key is " + r.KeyFingerprint + ")"
		}
		fmt.Fprintf(w, "evidence of %s intact: %d events linked to the approval chain's head at seq %d (%s), %s\n",
			r.ApprovalID, r.Events, r.Head.Seq, shortHash(r.Head.Hash), signed)
	}
	if !r.OK {
		if r.BrokenAt > 0 {
			return fmt.Errorf("the evidence of %s is broken at seq %d: %s", r.ApprovalID, r.BrokenAt, r.Problem)
		}
		return fmt.Errorf("the evidence of %s does not verify: %s", r.ApprovalID, r.Problem)
	}
	return nil
}

// verifyFile verifies file, read once: an audit log (stored events a line,
// as the file store's audit.jsonl holds them; with the store's state.json
// beside it, against the chain heads recorded there), whose chains' reports
// it returns, or an evidence export, checked against the public key in
// keyFile when that is not "", whose report it returns.
func verifyFile(file, keyFile string) ([]audit.ChainReport, *audit.EvidenceReport, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if first, _ := r.Peek(len(`{"id"`)); len(first) > 0 && first[0] == '{' && string(first) != `{"id"` {
		// An export: one JSON document, which does not begin as every
		// stored event does.
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, nil, err
		}
		var trusted ed25519.PublicKey
		if keyFile != "" {
			if trusted, err = loadPublicKey(keyFile); err != nil {
				return nil, nil, fmt.Errorf("--key: %w", err)
			}
		}
		ev, err := audit.VerifyEvidence(b, trusted)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", file, err)
		}
		return nil, &ev, nil
	}
	if keyFile != "" {
		return nil, nil, fmt.Errorf("--key: %s is not an evidence export; only exports are signed", file)
	}
	var state struct {
		Chains map[string]audit.ChainHead `json:"chains"`
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "state.json")); err == nil {
		if err := json.Unmarshal(b, &state); err != nil {
			return nil, nil, fmt.Errorf("state.json beside %s: %w", file, err)
		}
	}
	reports, err := audit.VerifyLog(r, state.Chains)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	return reports, nil, nil
}

func bansCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	list := &cobra.Command{Use: "list", Short: "Lists the bans in force", Args: cobra.NoArgs}
	list.RunE = run(func(cmd *cobra.Command, _ []string) error {
		c := newClient(cmd)
		b, err := c.call("GET", "/gatekeeper/bans", nil)
		if err != nil || b == nil {
			return err
		}
		return printBans(cmd.OutOrStdout(), b)
	})
	add := &cobra.Command{Use: "add <ip|cidr>", Short: "Bans a source by hand", Args: cobra.ExactArgs(1)}
	add.Flags().String("ttl", "", "How long the ban lasts (default: the app's ban_ttl)")
	add.Flags().String("reason", "", "Why, for the audit")
	add.RunE = run(func(cmd *cobra.Command, args []string) error {
		ttl, _ := cmd.Flags().GetString("ttl")
		reason, _ := cmd.Flags().GetString("reason")
		c := newClient(cmd)
		b, err := c.call("POST", "/gatekeeper/bans", banRequest{IP: args[0], TTL: ttl, Reason: reason})
		if err != nil || b == nil {
			return err
		}
		return printBans(cmd.OutOrStdout(), []byte("["+string(b)+"]"))
	})
	remove := &cobra.Command{Use: "remove <ip|cidr>", Short: "Lifts a ban on every instance", Args: cobra.ExactArgs(1)}
	remove.RunE = run(func(cmd *cobra.Command, args []string) error {
		c := newClient(cmd)
		b, err := c.call("DELETE", "/gatekeeper/bans/"+args[0], nil)
		if err != nil || b == nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "ban of %s lifted\n", args[0])
		return nil
	})
	cmd.AddCommand(list, add, remove)
}

func approvalsCommand(cmd *cobra.Command) {
	adminFlags(cmd)

	add := &cobra.Command{Use: "add", Short: "Registers an approved test", Args: cobra.NoArgs}
	f := add.Flags()
	f.String("tenant", "", "The tenant under test (required)")
	f.StringSlice("source", nil, "An IP or CIDR the test comes from; repeat or comma-separate (required)")
	f.StringSlice("host", nil, "Limit the test to these hosts")
	f.StringSlice("path", nil, "Limit the test to these path patterns")
	f.StringSlice("method", nil, "Limit the test to these methods")
	f.String("from", "", "Start of the window, RFC 3339 (required)")
	f.String("until", "", "End of the window, RFC 3339, exclusive (required)")
	f.Float64("rps", 0, "Requests per second allowed (required)")
	f.Int("burst", 0, "Requests allowed at once (default: one second's worth)")
	f.Int64("max-requests", 0, "Requests allowed over the whole test (required)")
	f.String("requested-by", "", "Who asked for the test (required)")
	f.String("approved-by", "", "Who approved it (required)")
	f.String("ref", "", "Reference of the written approval (required)")
	f.String("contact", "", "Who to call during the test")
	f.String("notes", "", "Anything else")
	f.Bool("require-token", false, "Require a test token (sent as Proxy-Authorization: Gatekeeper <token>); it is printed once")
	add.RunE = run(func(cmd *cobra.Command, _ []string) error {
		b, err := newClient(cmd).call("POST", "/gatekeeper/approvals", requestFromFlags(cmd))
		if err != nil || b == nil {
			return err
		}
		var created approvalCreated
		if err := json.Unmarshal(b, &created); err != nil {
			return err
		}
		return printCreated(cmd.OutOrStdout(), created)
	})

	list := &cobra.Command{Use: "list", Short: "Lists approvals", Args: cobra.NoArgs}
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

	show := &cobra.Command{Use: "show <id>", Short: "Shows one approval with its usage", Args: cobra.ExactArgs(1)}
	show.RunE = run(func(cmd *cobra.Command, args []string) error {
		b, err := newClient(cmd).call("GET", "/gatekeeper/approvals/"+url.PathEscape(args[0]), nil)
		if err != nil || b == nil {
			return err
		}
		return printApproval(cmd.OutOrStdout(), b)
	})

	revoke := &cobra.Command{Use: "revoke <id>", Short: "Revokes an approval on every instance", Args: cobra.ExactArgs(1)}
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

	report := &cobra.Command{Use: "report <id>", Short: "Prints the close-out report of a test: totals and per-hour counts", Args: cobra.ExactArgs(1)}
	report.RunE = run(func(cmd *cobra.Command, args []string) error {
		b, err := newClient(cmd).call("GET", "/gatekeeper/approvals/"+url.PathEscape(args[0])+"/report", nil)
		if err != nil || b == nil {
			return err
		}
		return printReport(cmd.OutOrStdout(), b)
	})

	cmd.AddCommand(add, list, show, revoke, report)
}

// requestFromFlags builds the registration body from the add flags, sending
// only what was given so that the admin API names what is missing.
func requestFromFlags(cmd *cobra.Command) map[string]any {
	f := cmd.Flags()
	body := map[string]any{}
	strs := map[string]string{
		"tenant": "tenant", "from": "not_before", "until": "not_after", "requested-by": "requested_by",
		"approved-by": "approved_by", "ref": "approval_ref", "contact": "contact", "notes": "notes",
	}
	for flag, field := range strs {
		if v, _ := f.GetString(flag); v != "" {
			body[field] = v
		}
	}
	lists := map[string]string{"source": "sources", "host": "hosts", "path": "paths", "method": "methods"}
	for flag, field := range lists {
		if v, _ := f.GetStringSlice(flag); len(v) > 0 {
			body[field] = v
		}
	}
	if f.Changed("rps") {
		body["max_rps"], _ = f.GetFloat64("rps")
	}
	if f.Changed("burst") {
		body["burst"], _ = f.GetInt("burst")
	}
	if f.Changed("max-requests") {
		body["max_requests"], _ = f.GetInt64("max-requests")
	}
	if v, _ := f.GetBool("require-token"); v {
		body["require_token"] = true
	}
	return body
}

// exportHead is the chain head an evidence export names, once the export
// itself verifies (against the key in keyFile, when given).
func exportHead(file, keyFile string) (audit.KnownHead, error) {
	_, ev, err := verifyFile(file, keyFile)
	switch {
	case err != nil:
		return audit.KnownHead{}, fmt.Errorf("--against: %w", err)
	case ev == nil:
		return audit.KnownHead{}, fmt.Errorf("--against: %s is not an evidence export", file)
	case !ev.OK:
		return audit.KnownHead{}, fmt.Errorf("--against: the export does not verify: %s", ev.Problem)
	}
	return audit.KnownHead{Kind: "approval", ChainHead: ev.Head}, nil
}
