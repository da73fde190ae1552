package caddymodule

import (
	"os"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestMain keeps the in-process Caddy's autosaved config and storage out of
// the user's home.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gatekeeper-caddymodule-test")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("XDG_DATA_HOME", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runningApp is the gatekeeper app of the running config.
func runningApp(tb testing.TB) *App {
	tb.Helper()
	app, err := caddy.ActiveContext().App("gatekeeper")
	if err != nil {
		tb.Fatal(err)
	}
	return app.(*App)
}
