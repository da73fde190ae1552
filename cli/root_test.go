package cli

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ownCommands are Gatekeeper's subcommands and theirs, as Root builds them.
func ownCommands(t *testing.T) []*cobra.Command {
	t.Helper()
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		out = append(out, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range Root().Commands() {
		if slices.Contains(own, c.Name()) {
			walk(c)
		}
	}
	if len(out) < len(own)+8 {
		t.Fatalf("only %d of Gatekeeper's commands found; the test would prove little", len(out))
	}
	return out
}

// Every flag of Gatekeeper's own subcommands is named in the docs.
func TestDocsNameEveryFlag(t *testing.T) {
	docs := testutil.Docs(t, "..")
	for _, c := range ownCommands(t) {
		check := func(f *pflag.Flag) {
			if f.Name != "help" && !strings.Contains(docs, "--"+f.Name) {
				t.Errorf("no guide names %s's flag --%s", c.CommandPath(), f.Name)
			}
		}
		c.Flags().VisitAll(check)
		c.PersistentFlags().VisitAll(check)
	}
}

// gatekeeper help introduces Gatekeeper, lists its own commands first, and
// every one of them names itself gatekeeper and gives an example.
func TestHelpIsGatekeepers(t *testing.T) {
	root := Root()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	first, caddys := strings.Index(help, "Gatekeeper's commands"), strings.Index(help, "Caddy's commands")
	if !strings.HasPrefix(help, "Gatekeeper is Caddy") || first < 0 || caddys < first {
		t.Fatalf("gatekeeper help does not open with Gatekeeper and its commands:\n%s", help)
	}
	for _, name := range append(own, "run") {
		if !strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("gatekeeper help does not list %s", name)
		}
	}
	for _, name := range replacesTheBuild {
		if strings.Contains(help, "\n  "+name+" ") {
			t.Errorf("gatekeeper help lists %s, which would replace the build", name)
		}
	}
	for _, c := range ownCommands(t) {
		if !strings.HasPrefix(c.CommandPath(), "gatekeeper ") || !strings.Contains(c.UseLine(), "gatekeeper") {
			t.Errorf("%q does not name gatekeeper", c.UseLine())
		}
		if !strings.Contains(c.Example, "$ gatekeeper "+c.Parent().Name()) && !strings.Contains(c.Example, "$ gatekeeper "+c.Name()) {
			t.Errorf("%s has no example: %q", c.CommandPath(), c.Example)
		}
	}
}
