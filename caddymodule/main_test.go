package caddymodule

import (
	"os"
	"testing"
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
