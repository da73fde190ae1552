package cli

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// execute runs the gatekeeper command with args and returns what it wrote.
func execute(args ...string) (stdout, stderr string, err error) {
	root := Root()
	var o, e bytes.Buffer
	root.SetOut(&o)
	root.SetErr(&e)
	root.SetArgs(args)
	err = root.Execute()
	return o.String(), e.String(), err
}

// Nothing listening where the admin API was sought: the one line says what
// to check and which flags point elsewhere.
func TestRefusedAdminConnectionSaysWhereItLooked(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	out, errOut, err := execute("status", "--address", addr)
	want := "is Gatekeeper running? the admin endpoint is " + addr + "; give --address or --config"
	if err == nil || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "connection refused") || !strings.Contains(errOut, want) {
		t.Fatalf("status against nothing: %v, stdout %q, stderr %q; want one line saying %q", err, out, errOut, want)
	}
}

// The console prints only its URL: it takes no --json.
func TestConsoleRefusesJSON(t *testing.T) {
	_, _, err := execute("console", "--json")
	if err == nil || !strings.Contains(err.Error(), "unknown flag: --json") {
		t.Fatalf("console --json: %v; want it refused", err)
	}
}
