// Command gatekeeper is Caddy with Gatekeeper's modules built in: Caddy's
// subcommands work (less those that would replace this build), plus
// `approvals`, `bans`, `status`, `audit` and `console`, which talk to a
// running instance's admin API. `gatekeeper help` lists them.
package main

import (
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/customernode/gatekeeper/caddymodule"
	"github.com/customernode/gatekeeper/cli"
)

func main() { cli.Main() }
