// Command gatekeeper is Caddy with Gatekeeper's modules built in: every stock
// Caddy subcommand works, plus `approvals`, `bans`, `status`, `audit` and
// `console`, which talk to a running instance's admin API.
package main

import (
	"fmt"
	"os"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/customernode/gatekeeper/caddymodule"
)

// replacesTheBuild are Caddy's subcommands that download a stock Caddy from
// caddyserver.com over this binary: that Caddy would have no Gatekeeper in
// it, and the sites behind it would be left without their policy.
var replacesTheBuild = map[string]bool{"upgrade": true, "add-package": true, "remove-package": true}

func main() {
	if len(os.Args) > 1 && replacesTheBuild[os.Args[1]] {
		fmt.Fprintf(os.Stderr, "gatekeeper %s: refused: it would replace this binary with a stock Caddy from caddyserver.com, "+
			"which has no Gatekeeper modules, and leave every site behind it without its policy. "+
			"Build a new gatekeeper instead (make build, or xcaddy build --with github.com/customernode/gatekeeper/caddymodule).\n", os.Args[1])
		os.Exit(2)
	}
	caddycmd.Main()
}
