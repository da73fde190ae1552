package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
)

// adminFlags are the flags every CLI command takes to find the admin API,
// as `caddy reload` does, and --json for those that print the admin API's
// answers.
func adminFlags(cmd *cobra.Command) {
	addressFlags(cmd)
	cmd.PersistentFlags().Bool("json", false, "Print the admin API's JSON instead of a table")
}

// addressFlags are the flags that find the admin API.
func addressFlags(cmd *cobra.Command) {
	cmd.PersistentFlags().String("address", "", "The address of the admin API (default: from --config, else localhost:2019)")
	cmd.PersistentFlags().String("config", "", "A config file to read the admin address from")
	cmd.PersistentFlags().String("adapter", "", "The adapter of --config")
}

// adminAddress is the admin API's address, from --address, else from the
// config named by --config, else Caddy's default, as `caddy reload` finds it.
func adminAddress(cmd *cobra.Command) (string, error) {
	fl := cmd.Flags()
	address, _ := fl.GetString("address")
	cfg, _ := fl.GetString("config")
	adapter, _ := fl.GetString("adapter")
	if cfg != "" {
		silenceCaddyLog()
	}
	return caddycmd.DetermineAdminAPIAddress(address, nil, cfg, adapter)
}

// silenceCaddyLog discards what Caddy's default logger writes from here on:
// loading --config logs "using config from file" and "adapted config to
// JSON" as JSON on stderr, and a CLI command prints only its answer, or one
// line when it fails. (Caddy can replace its default logger only through a
// buffer, which this drops.)
func silenceCaddyLog() {
	caddy.BufferedLog()
	caddy.UnbufferDefaultLogger(zap.NewNop())
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
		msg := oneLine(err.Error())
		if refused(err) {
			msg += fmt.Sprintf(" (is Gatekeeper running? the admin endpoint is %s; give --address or --config)", addr)
		}
		return fmt.Errorf("admin API at %s: %s", addr, msg)
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

// refused reports whether nothing listens where the admin API was sought:
// a refused connection, or a unix socket that is not there.
func refused(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return true
	}
	// AdminAPIRequest wraps with %v, which drops the errno.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connect: no such file or directory")
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
