// Command gatekeeper is Caddy with Gatekeeper's modules built in: every stock
// Caddy subcommand works, plus `approvals`, `bans` and `status`, which talk to
// a running instance's admin API.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/customernode/gatekeeper/caddymodule"
)

func main() {
	caddycmd.Main()
}
