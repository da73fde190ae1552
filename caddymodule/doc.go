// Package caddymodule is Gatekeeper's Caddy glue: the gatekeeper app, the
// http.handlers.gatekeeper handler, the admin.api.gatekeeper routes and the
// CLI subcommands. The policy itself lives in the approvals and config
// packages; this package only translates between them and Caddy.
package caddymodule
