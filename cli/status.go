package cli

import (
	"encoding/json"

	"github.com/customernode/gatekeeper/api"
	"github.com/spf13/cobra"
)

func statusCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	cmd.Example = "  $ gatekeeper status\n  $ gatekeeper status --address localhost:2019 --json"
	cmd.Args = cobra.NoArgs
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		c := newClient(cmd)
		b, err := c.call("GET", "/gatekeeper/status", nil)
		if err != nil || b == nil {
			return err
		}
		var st api.Status
		if err := json.Unmarshal(b, &st); err != nil {
			return err
		}
		return printStatus(cmd.OutOrStdout(), st)
	})
}
