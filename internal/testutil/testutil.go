// Package testutil holds the small helpers that the tests of several
// packages share: free loopback ports, polling with a deadline, stopping a
// child process, a clock that moves when told, GeoIP databases, scans'
// word lists and sources, struct filling, and the docs' text.
package testutil

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreeAddr returns a loopback host:port that was free a moment ago and that
// it has not returned before in this process: a test often takes several
// addresses before anything listens on them, and the kernel may hand the
// same free port out twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.m[addr] {
			handedOut.m[addr] = true
			return addr
		}
	}
}

var handedOut = struct {
	sync.Mutex
	m map[string]bool
}{m: map[string]bool{}}

// WaitFor polls cond every 10ms and returns how long it took to hold; it
// fails the test when cond does not hold within limit.
func WaitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// Stop sends SIGTERM to a started command and waits for it, killing it
// after grace.
func Stop(cmd *exec.Cmd, grace time.Duration) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// NoError fails the test at once when err is not nil.
func NoError(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Docs is the README and every guide under docs/ of the repository at
// root, as one text.
func Docs(t testing.TB, root string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	var b strings.Builder
	for _, f := range append(files, filepath.Join(root, "README.md")) {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(text)
	}
	return b.String()
}
