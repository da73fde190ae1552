package caddymodule

import (
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/engine"
	"github.com/customernode/gatekeeper/internal/testutil"
	"github.com/customernode/gatekeeper/policy"
)

// The docs name every metric the code has: a new one cannot land
// undocumented. (adminapi's tests hold the README to every endpoint, cli's
// the docs to every flag.)
func TestDocsNameEveryMetric(t *testing.T) {
	docs := testutil.Docs(t, "..")
	c := startCaddy(t, fileStore(t))
	resp, err := http.Get(c.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (caddy_gatekeeper_\w+)`).FindAllStringSubmatch(string(body), -1) {
		names[m[1]] = true
	}
	if len(names) < 10 {
		t.Fatalf("only %d gatekeeper metrics scraped; the test would prove little", len(names))
	}
	for name := range names {
		if !strings.Contains(docs, name) {
			t.Errorf("no guide names the metric %s", name)
		}
	}
}

// docs/design.md's table of Redis keys names every key the Redis store
// writes (read from its source: the keys are built in one place, key()).
func TestDesignListsEveryRedisKey(t *testing.T) {
	design, err := os.ReadFile("../docs/design.md")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("../store/redis*.go")
	seen := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`s\.key\("([^"]*)"`).FindAllStringSubmatch(string(src), -1) {
			seen++
			if !strings.Contains(string(design), "{state}:"+m[1]) {
				t.Errorf("docs/design.md's Redis keys lack <prefix>{state}:%s (%s)", m[1], filepath.Base(f))
			}
		}
	}
	if seen < 5 {
		t.Fatalf("only %d keys found in the Redis store's source; the test would prove little", seen)
	}
}

// The values that are listed once in the code (modes, verdicts, refusal
// reasons, behaviour buckets, store operations) are each named in the docs.
func TestDocsNameEveryListedValue(t *testing.T) {
	docs := testutil.Docs(t, "..")
	for kind, values := range map[string][]string{
		"mode": policy.Modes, "verdict": policy.Verdicts, "reason": policy.Reasons,
		"behaviour bucket": detect.BucketNames(), "store operation": engine.StoreOps,
	} {
		for _, v := range values {
			if !strings.Contains(docs, "`"+v+"`") && !strings.Contains(docs, v+"|") && !strings.Contains(docs, "|"+v) {
				t.Errorf("no guide names the %s %s", kind, v)
			}
		}
	}
}

// The repository stands on its own: no code comment or guide cites a
// document that is not in it.
func TestNothingCitesFilesOutsideTheRepository(t *testing.T) {
	outside := regexp.MustCompile(`SPEC\s*§|SPEC\.md|\.\./shared/|audit-policy\.txt|STYLE\.md`)
	seen := 0
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(path); d.IsDir() || (ext != ".go" && ext != ".md" && ext != ".yml" && ext != ".sh" && d.Name() != "Makefile") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		seen++
		if loc := outside.FindIndex(b); loc != nil && !strings.HasSuffix(path, "docs_test.go") {
			t.Errorf("%s cites %q, which is not in the repository", path, b[loc[0]:loc[1]])
		}
		return nil
	})
	if err != nil || seen < 50 {
		t.Fatalf("walked %d files: %v", seen, err)
	}
}
