package cli

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// The commands Gatekeeper adds to Caddy's. They are registered with Caddy,
// so a build made with xcaddy and this package has them too; Root lists
// them first.
var own = []string{"approvals", "bans", "audit", "status", "console"}

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
		Usage: "verify [--file F [--key pub.pem]] | export --approval <id> [--output F [--force]]",
		Short: "Verifies the audit trail and exports a test's evidence",
		Long: `
verify checks the audit trail's hash chains (approval events, ban events):
through the admin API, the whole trail in the store, or with --file an
audit log (the file store's audit.jsonl; with the store's state.json beside
it, also against the chain heads it recorded) or an evidence export. It
prints what verified, and exits non-zero naming the first broken seq when
something is broken. --key pins the public key an export must be signed
with (PEM, as 'openssl pkey -pubout' writes).

export prints one approval's evidence for an auditor on standard output:
the approval as registered, every change to it, its usage report and the
chain links that prove they belong to the trail, signed when the app has
audit_signing_key. --output writes it to a file instead (mode 0600; an
existing file only with --force). The evidence is confidential: the audit
policy forbids passing it on without the customer's consent.`,
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
