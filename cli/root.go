// Package cli is the gatekeeper command: Gatekeeper's own subcommands
// (approvals, bans, audit, status, console), which are clients of a running
// instance's admin API, and Caddy's, which run and manage the server. One
// file per command group; print.go draws their tables.
package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

const long = `Gatekeeper is Caddy with the platform's restricted-testing policy built in:
customers may security-test their own tenant only with prior written
approval, scoped to that tenant, inside a time window and bounded in volume;
unapproved scanners are refused, and banned once they show themselves.

Run the server with 'gatekeeper run --config Caddyfile'. Gatekeeper's own
commands talk to a running instance's admin API (default localhost:2019;
--address, or --config to read it from the config) to register approved
tests, lift bans, verify the audit trail and open the console.

Documentation: README.md and docs/ in the source tree.`

const examples = `  $ gatekeeper run --config Caddyfile
  $ gatekeeper approvals list --status active
  $ gatekeeper bans list
  $ gatekeeper audit verify
  $ gatekeeper console`

// replacesTheBuild are Caddy's subcommands that download a stock Caddy
// from caddyserver.com over this binary: that Caddy would have no
// Gatekeeper in it, and the sites behind it would be left without their
// policy.
var replacesTheBuild = []string{"upgrade", "add-package", "remove-package"}

// Main runs the gatekeeper command and exits with its status.
func Main() {
	err := Root().Execute()
	var exit *exitError
	switch {
	case errors.As(err, &exit):
		os.Exit(exit.code)
	case err != nil:
		os.Exit(1)
	}
}

// Root is the gatekeeper command with every registered subcommand:
// Gatekeeper's first, then Caddy's.
func Root() *cobra.Command {
	_, version := caddy.Version()
	root := &cobra.Command{
		Use:          "gatekeeper",
		Short:        "Caddy with the platform's restricted-testing policy",
		Long:         long,
		Example:      examples,
		Version:      version,
		SilenceUsage: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddGroup(
		&cobra.Group{ID: "gatekeeper", Title: "Gatekeeper's commands (clients of a running instance's admin API):"},
		&cobra.Group{ID: "caddy", Title: "Caddy's commands (run, configure and inspect the server):"},
	)
	root.SetHelpCommandGroupID("caddy")
	root.SetCompletionCommandGroupID("caddy")
	cmds := caddycmd.Commands()
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if slices.Contains(replacesTheBuild, name) {
			root.AddCommand(refusing(name))
			continue
		}
		c := toCobra(cmds[name])
		c.GroupID = "caddy"
		if slices.Contains(own, name) {
			c.GroupID = "gatekeeper"
		}
		root.AddCommand(c)
	}
	root.AddCommand(manpage(root))
	return root
}

// toCobra turns a registered command into a cobra command, as Caddy does.
func toCobra(c caddycmd.Command) *cobra.Command {
	cmd := &cobra.Command{Use: c.Name + " " + c.Usage, Short: c.Short, Long: strings.TrimSpace(c.Long)}
	if c.CobraFunc != nil {
		c.CobraFunc(cmd)
		return cmd
	}
	cmd.Flags().AddGoFlagSet(c.Flags)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		status, err := c.Func(caddycmd.Flags{FlagSet: cmd.Flags()})
		if err != nil {
			caddy.Log().Error(err.Error())
			cmd.SilenceErrors = true
		}
		if status > 1 {
			return &exitError{code: status, err: err}
		}
		return err
	}
	return cmd
}

// refusing stands in for a Caddy command that would replace this build.
func refusing(name string) *cobra.Command {
	return &cobra.Command{
		Use:                name,
		Short:              "Refused: it would replace Gatekeeper with a stock Caddy",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			err := fmt.Errorf("refused: it would replace this binary with a stock Caddy from caddyserver.com, " +
				"which has no Gatekeeper modules, and leave every site behind it without its policy. " +
				"Build a new gatekeeper instead (make build, or xcaddy build --with github.com/customernode/gatekeeper/caddymodule " +
				"--with github.com/customernode/gatekeeper/cli)")
			fmt.Fprintf(cmd.ErrOrStderr(), "gatekeeper %s: %s\n", name, err)
			cmd.SilenceErrors = true
			return &exitError{code: 2, err: err}
		},
	}
}

// manpage writes the manual pages of every command, as Caddy's does.
func manpage(root *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "manpage --directory <path>",
		Short:   "Writes the manual pages of the gatekeeper commands",
		Example: "  $ gatekeeper manpage --directory /usr/local/share/man/man8",
		GroupID: "caddy",
		Args:    cobra.NoArgs,
	}
	cmd.Flags().StringP("directory", "o", "", "The directory to write the pages to (created if needed)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		dir, _ := cmd.Flags().GetString("directory")
		if strings.TrimSpace(dir) == "" {
			return errors.New("--directory: give the directory to write the pages to")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return doc.GenManTree(root, &doc.GenManHeader{Title: "Gatekeeper", Section: "8"}, dir)
	}
	return cmd
}

// exitError carries a command's exit status to Main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }
