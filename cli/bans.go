package cli

import (
	"fmt"

	"github.com/customernode/gatekeeper/api"
	"github.com/spf13/cobra"
)

func bansCommand(cmd *cobra.Command) {
	adminFlags(cmd)
	cmd.Example = "  $ gatekeeper bans list\n  $ gatekeeper bans remove 198.51.100.7"
	list := &cobra.Command{Use: "list", Example: `  $ gatekeeper bans list --json`, Short: "Lists the bans in force", Args: cobra.NoArgs}
	list.RunE = run(func(cmd *cobra.Command, _ []string) error {
		c := newClient(cmd)
		b, err := c.call("GET", "/gatekeeper/bans", nil)
		if err != nil || b == nil {
			return err
		}
		return printBans(cmd.OutOrStdout(), b)
	})
	add := &cobra.Command{Use: "add <ip|cidr>", Example: `  $ gatekeeper bans add 198.51.100.7 --ttl 24h --reason "abuse report 4711"`, Short: "Bans a source by hand", Args: cobra.ExactArgs(1)}
	add.Flags().String("ttl", "", "How long the ban lasts (default: the app's ban_ttl)")
	add.Flags().String("reason", "", "Why, for the audit")
	add.RunE = run(func(cmd *cobra.Command, args []string) error {
		ttl, _ := cmd.Flags().GetString("ttl")
		reason, _ := cmd.Flags().GetString("reason")
		c := newClient(cmd)
		b, err := c.call("POST", "/gatekeeper/bans", api.BanRequest{IP: args[0], TTL: ttl, Reason: reason})
		if err != nil || b == nil {
			return err
		}
		return printBans(cmd.OutOrStdout(), []byte("["+string(b)+"]"))
	})
	remove := &cobra.Command{Use: "remove <ip|cidr>", Example: `  $ gatekeeper bans remove 198.51.100.7`, Short: "Lifts a ban on every instance", Args: cobra.ExactArgs(1)}
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
