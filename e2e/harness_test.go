// Package e2e runs the built gatekeeper binary as users do: real processes,
// real Caddyfiles, the real CLI and a real redis-server.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/customernode/gatekeeper/internal/testutil"
)

var bin string

// TestMain uses the binary `make test` built (GATEKEEPER_BIN), or builds one.
func TestMain(m *testing.M) {
	bin = os.Getenv("GATEKEEPER_BIN")
	if bin == "" {
		dir, err := os.MkdirTemp("", "gatekeeper-e2e")
		if err != nil {
			panic(err)
		}
		bin = filepath.Join(dir, "gatekeeper")
		build := exec.Command("go", "build", "-o", bin, "../cmd/gatekeeper")
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building gatekeeper:", err)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// instance is one running gatekeeper process.
type instance struct {
	t      testing.TB
	Admin  string
	Site   string
	Config string
	cmd    *exec.Cmd
	log    *os.File
}

// echoSite is the default site body: the tenant is the first label of the
// host (acme.localhost is acme), and the "upstream" answers with what
// reached it.
const echoSite = `
	gatekeeper {
		tenant {http.request.host.labels.1}
	}
	respond "tenant={http.gatekeeper.tenant} approval={http.request.header.Gatekeeper-Approval} token={http.request.header.Gatekeeper-Test-Token}"`

// start runs gatekeeper with the global options in globals and the echo site.
func start(t *testing.T, globals string) *instance { return startSite(t, globals, echoSite) }

// startSite runs gatekeeper with the global options in globals and one site,
// for every host, on a free loopback port, with the body site.
func startSite(t testing.TB, globals, site string) *instance {
	t.Helper()
	return startSites(t, globals, site, "")
}

// startSites is startSite with more site blocks (extra) after the first.
func startSites(t testing.TB, globals, site, extra string) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, Admin: testutil.FreeAddr(t), Site: testutil.FreeAddr(t), Config: filepath.Join(dir, "Caddyfile")}
	_, port, _ := net.SplitHostPort(in.Site)
	caddyfile := fmt.Sprintf(`{
	admin %s
	default_bind 127.0.0.1
	metrics
	gatekeeper {
%s
	}
}

http://:%s {
%s
}
%s`, in.Admin, globals, port, site, extra)
	if err := os.WriteFile(in.Config, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	in.run()
	t.Cleanup(in.stop)
	return in
}

func (in *instance) run() {
	in.t.Helper()
	var err error
	in.log, err = os.CreateTemp(in.t.TempDir(), "gatekeeper-*.log")
	if err != nil {
		in.t.Fatal(err)
	}
	in.cmd = exec.Command(bin, "run", "--config", in.Config, "--adapter", "caddyfile")
	if strings.HasSuffix(in.Config, ".json") { // Caddy's own config, such as remote admin needs
		in.cmd = exec.Command(bin, "run", "--config", in.Config)
	}
	in.cmd.Dir = filepath.Dir(in.Config)
	// Keep Caddy's autosave and certificate storage out of the user's home.
	in.cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+in.cmd.Dir, "XDG_DATA_HOME="+in.cmd.Dir)
	in.cmd.Stdout, in.cmd.Stderr = in.log, in.log
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + in.Admin + "/gatekeeper/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			in.stop()
			b, _ := os.ReadFile(in.log.Name())
			in.t.Fatalf("gatekeeper did not come up within 15s:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// logText is what the process wrote to its standard output and error.
func (in *instance) logText() string {
	b, _ := os.ReadFile(in.log.Name())
	return string(b)
}

func (in *instance) stop() {
	if in.cmd == nil || in.cmd.Process == nil {
		return
	}
	testutil.Stop(in.cmd, 10*time.Second)
	in.cmd = nil
	if in.t.Failed() {
		b, _ := os.ReadFile(in.log.Name())
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.Contains(line, `"msg":"received request"`) {
				keep = append(keep, line)
			}
		}
		in.t.Logf("gatekeeper log:\n%s", tail(strings.Join(keep, "\n"), 3000))
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// cli runs the gatekeeper CLI against in's admin API.
func (in *instance) cli(args ...string) (stdout, stderr string, code int) {
	in.t.Helper()
	cmd := exec.Command(bin, append(args, "--address", in.Admin)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		in.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func (in *instance) mustCLI(args ...string) string {
	in.t.Helper()
	out, errOut, code := in.cli(args...)
	if code != 0 {
		in.t.Fatalf("gatekeeper %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// get fetches an admin API path and decodes its JSON into out.
func (in *instance) get(path string, out any) {
	in.t.Helper()
	resp, err := http.Get("http://" + in.Admin + path)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		in.t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		in.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

type status struct {
	Store struct {
		Up   bool   `json:"up"`
		Kind string `json:"kind"`
	} `json:"store"`
	Approvals  map[string]int `json:"approvals"`
	BansActive int            `json:"bans_active"`
}

func (in *instance) status() status {
	var st status
	in.get("/gatekeeper/status", &st)
	return st
}

// addArgs registers an approval for tenant acme, active now, from source.
func addArgs(source string) []string {
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	return []string{"approvals", "add", "--tenant", "acme", "--source", source,
		"--from", from.Format(time.RFC3339), "--until", from.Add(4 * time.Hour).Format(time.RFC3339),
		"--rps", "20", "--burst", "40", "--max-requests", "100000",
		"--requested-by", "ciso@acme.example", "--approved-by", "secops@customernode", "--ref", "SEC-1234"}
}

type approvalJSON struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	Status string `json:"status"`
	Usage  struct {
		Allowed         int `json:"allowed"`
		RateLimited     int `json:"rate_limited"`
		BudgetExhausted int `json:"budget_exhausted"`
		OutOfScope      int `json:"out_of_scope"`
	} `json:"usage"`
}

func listJSON(t *testing.T, in *instance, args ...string) []approvalJSON {
	t.Helper()
	var list []approvalJSON
	out := in.mustCLI(append([]string{"approvals", "list", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("approvals list --json printed %q: %v", out, err)
	}
	return list
}

// runBin runs the binary with args and returns its combined output.
func runBin(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// Clients, requests and sites the tests share.

// client sends requests from one loopback source address, so that one test
// has approved, unapproved and cross-tenant clients side by side.
type client struct {
	t    testing.TB
	http *http.Client
	site string
}

func from(t testing.TB, in *instance, source string) *client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, site: in.Site}
}

type answer struct {
	code   int
	body   string
	header http.Header
}

// do sends method path to host ("acme.localhost") with extra headers.
func (c *client) do(method, host, path string, headers ...string) answer {
	c.t.Helper()
	resp, err := c.http.Do(newRequest(method, c.site, host, path, headers...))
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// newRequest is method path on site, for host, with headers given as
// name, value pairs.
func newRequest(method, site, host, path string, headers ...string) *http.Request {
	req, _ := http.NewRequest(method, "http://"+site+path, nil)
	req.Host = host
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func (c *client) get(host, path string, headers ...string) answer {
	c.t.Helper()
	return c.do("GET", host, path, headers...)
}

// register posts an approval through the admin API and returns its id and
// token.
func (in *instance) register(change func(map[string]any)) (id, token string) {
	in.t.Helper()
	from := time.Now().UTC().Add(-time.Minute)
	body := map[string]any{
		"tenant": "acme", "sources": []string{"127.0.0.2"},
		"not_before": from.Format(time.RFC3339Nano), "not_after": from.Add(4 * time.Hour).Format(time.RFC3339Nano),
		"max_rps": 1000, "burst": 1000, "max_requests": 100000,
		"requested_by": "ciso@acme.example", "approved_by": "secops@customernode", "approval_ref": "SEC-1",
	}
	if change != nil {
		change(body)
	}
	b, _ := json.Marshal(body)
	resp, err := http.Post("http://"+in.Admin+"/gatekeeper/approvals", "application/json", bytes.NewReader(b))
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 201 {
		in.t.Fatalf("register: %d %s", resp.StatusCode, raw)
	}
	var out struct{ ID, Token string }
	_ = json.Unmarshal(raw, &out)
	return out.ID, out.Token
}

// metric reads one series' value from the admin endpoint's /metrics.
func (in *instance) metric(series string) float64 {
	in.t.Helper()
	resp, err := http.Get("http://" + in.Admin + "/metrics")
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	in.t.Fatalf("no series %s in /metrics", series)
	return 0
}

// send is a GET from source through in, on a new connection, that never
// fails the test: a transport error is status 0.
func send(in *instance, source, path string, headers ...string) int {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}, Timeout: 5 * time.Second}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	return get(c, in.Site, path, headers...)
}

// get is a GET of path on site for acme that never fails the test: a
// transport error is status 0.
func get(c *http.Client, site, path string, headers ...string) int {
	resp, err := c.Do(newRequest("GET", site, "acme.localhost", path, headers...))
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// behindProxy is the global options of a gatekeeper whose clients come
// through a trusted proxy at 127.0.0.5 (proxyClient) that names each
// request's source in X-Forwarded-For; gatekeeper holds the lines of the
// gatekeeper option.
func behindProxy(gatekeeper string) string {
	return gatekeeper + "\n\t}\n\tservers {\n\t\ttrusted_proxies static 127.0.0.5/32\n\t\ttrusted_proxies_strict\n\t\tclient_ip_headers X-Forwarded-For\n\t"
}

// ipv4 is the dotted form of the IPv4 address a.
func ipv4(a int) string { return fmt.Sprintf("%d.%d.%d.%d", a>>24, a>>16&255, a>>8&255, a&255) }

// proxyClient sends requests from 127.0.0.5, the trusted proxy of behindProxy.
func proxyClient() *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
}

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

// webSite serves a small static site (missing files are 404s, as
// file_server answers them) and an API under /api/, behind the handler.
func webSite(t testing.TB, mode string) string {
	root := t.TempDir()
	for name, body := range map[string]string{"index.html": "<html>home</html>", "app.css": "body{}", "app.js": "1", "logo.png": "png"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fmt.Sprintf(`
	gatekeeper {
		tenant {http.request.host.labels.1}
		mode %s
	}
	handle /api/* {
		respond "api verdict={http.request.header.Gatekeeper-Verdict} reasons={http.request.header.Gatekeeper-Reasons}"
	}
	handle {
		root * %s
		file_server
	}`, mode, root)
}

func browse(c *client, path string, ua string) answer {
	c.t.Helper()
	return c.get("acme.localhost", path, "User-Agent", ua, "Accept", "text/html,*/*;q=0.8", "Accept-Language", "en")
}

const sqlmapUA = "sqlmap/1.8.2#stable (https://sqlmap.org)"

func port(t *testing.T) string {
	_, p, _ := net.SplitHostPort(testutil.FreeAddr(t))
	return p
}

// readLines reads the lines of a corpus file that are neither blank nor
// comments.
func readLines(t *testing.T, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// syncBuffer is a strings.Builder that a process may write to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// metricValue reads an unlabelled metric from the instance's admin endpoint.
func metricValue(tb testing.TB, in *instance, name string) float64 {
	tb.Helper()
	resp, err := http.Get("http://" + in.Admin + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	tb.Fatalf("no %s in the metrics", name)
	return 0
}

// goroutines reads the process's goroutine count from Caddy's pprof endpoint.
func goroutines(t *testing.T, in *instance) int {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // let closed listeners' goroutines end
	resp, err := http.Get("http://" + in.Admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var n int
	if _, err := fmt.Sscanf(string(b), "goroutine profile: total %d", &n); err != nil {
		t.Fatalf("pprof: %v in %.200s", err, b)
	}
	return n
}

// heapInUse is the process's heap in use after a garbage collection.
func heapInUse(t testing.TB, in *instance) uint64 {
	t.Helper()
	resp, err := http.Get("http://" + in.Admin + "/debug/pprof/heap?gc=1&debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	i := strings.Index(string(b), "# HeapInuse = ")
	if i < 0 {
		t.Fatalf("no HeapInuse in the heap profile")
	}
	var n uint64
	if _, err := fmt.Sscanf(string(b[i:]), "# HeapInuse = %d", &n); err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	return n
}

// browser starts the system Chromium, headless, at 1280×800, and collects
// what the page reports as errors: uncaught exceptions, console.error, and
// the browser's own log entries at error level (a refused CSP, a 404).
func browser(t *testing.T, extra ...chromedp.ExecAllocatorOption) (context.Context, func() []string) {
	t.Helper()
	exe, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed: make test installs it (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 800), chromedp.DisableGPU)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 90*time.Second)
	var mu sync.Mutex
	var problems []string
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s:%d %s", m.URL, m.Line+1, m))
				mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancelTime(); cancelCtx(); cancelAlloc(); <-done })
	return ctx, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), problems...) }
}
