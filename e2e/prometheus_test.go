package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/detect"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// prometheus is a real Prometheus server on loopback scraping targets.
type prometheus struct {
	t    *testing.T
	addr string
}

func startPrometheus(t *testing.T, targets ...string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed; run: apt-get install -y prometheus (or make test, which does it)")
	}
	rules, err := filepath.Abs("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: gatekeeper
    metrics_path: /metrics
    static_configs:
      - targets: [%s]
`, rules, strings.Join(quoted, ", "))
	writeFile(t, filepath.Join(dir, "prometheus.yml"), cfg)
	p := &prometheus{t: t, addr: testutil.FreeAddr(t)}
	log, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		testutil.Stop(cmd, 10*time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("prometheus log:\n%s", tail(string(b), 3000))
		}
	})
	testutil.WaitFor(t, 20*time.Second, "prometheus ready", func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

// api calls Prometheus's HTTP API and decodes its data field into out.
func (p *prometheus) api(path string, params url.Values, out any) error {
	resp, err := http.Get("http://" + p.addr + path + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s: %v in %s", path, err, b)
	}
	if env.Status != "success" {
		return fmt.Errorf("%s: %s", path, env.Error)
	}
	return json.Unmarshal(env.Data, out)
}

// value is the single value of an instant query, or -1 when it has none.
func (p *prometheus) value(query string) float64 {
	p.t.Helper()
	var data struct {
		Result []struct {
			Value [2]any `json:"value"`
		} `json:"result"`
	}
	if err := p.api("/api/v1/query", url.Values{"query": {query}}, &data); err != nil {
		p.t.Fatal(err)
	}
	if len(data.Result) != 1 {
		return -1
	}
	v, _ := strconv.ParseFloat(data.Result[0].Value[1].(string), 64)
	return v
}

// A real Prometheus scrapes a running gatekeeper: the series and values
// arrive, the alert rules load, and every query of the Grafana dashboard
// runs against them.
func TestPrometheusScrapesGatekeeper(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data", webSite(t, "block"))
	in.register(nil)
	approved, browser, scanner := from(t, in, "127.0.0.2"), from(t, in, "127.0.0.3"), from(t, in, "127.0.0.6")
	for range 3 {
		approved.get("acme.localhost", "/")
	}
	approved.get("globex.localhost", "/")
	browse(browser, "/", firefox)
	if a := scanner.get("acme.localhost", "/", "User-Agent", "sqlmap/1.8.2#stable (https://sqlmap.org)"); a.code != 403 {
		t.Fatalf("sqlmap got %d", a.code)
	}

	prom := startPrometheus(t, in.Admin)
	want := map[string]float64{
		`sum(caddy_gatekeeper_requests_total{verdict="approved"})`:                           3,
		`sum(caddy_gatekeeper_requests_total{verdict="blocked"})`:                            2,
		`sum(caddy_gatekeeper_requests_total{verdict="pass"})`:                               1,
		`sum(caddy_gatekeeper_blocked_total{reason="scanner",scanner="sqlmap"})`:             1,
		`sum(caddy_gatekeeper_blocked_total{reason="out_of_scope",scanner="none"})`:          1,
		`sum(caddy_gatekeeper_detections_total{signal="user_agent",mode="block"})`:           1,
		`sum(caddy_gatekeeper_approved_requests_total{tenant="acme",result="allowed"})`:      3,
		`sum(caddy_gatekeeper_approved_requests_total{tenant="acme",result="out_of_scope"})`: 1,
		`sum(caddy_gatekeeper_approvals_active)`:                                             1,
		`sum(caddy_gatekeeper_bans_active)`:                                                  1,
		`sum(caddy_gatekeeper_store_up)`:                                                     1,
		`sum(caddy_gatekeeper_decision_duration_seconds_count)`:                              6,
		`count(caddy_gatekeeper_requests_total)`:                                             6, // every verdict, from the start
		`sum(caddy_gatekeeper_store_errors_total)`:                                           0,
		`count(caddy_gatekeeper_detections_total{mode="monitor"})`:                           float64(detect.NumSignals), // every signal, from the start
	}
	testutil.WaitFor(t, 20*time.Second, "series scraped", func() bool {
		return prom.value(`sum(caddy_gatekeeper_requests_total{verdict="approved"})`) == 3
	})
	for q, v := range want {
		if got := prom.value(q); got != v {
			t.Errorf("%s = %v, want %v", q, got, v)
		}
	}

	var rules struct {
		Groups []struct {
			Rules []struct {
				Name   string `json:"name"`
				Health string `json:"health"`
			} `json:"rules"`
		} `json:"groups"`
	}
	testutil.WaitFor(t, 10*time.Second, "alert rules evaluated", func() bool {
		if err := prom.api("/api/v1/rules", nil, &rules); err != nil || len(rules.Groups) != 1 {
			return false
		}
		for _, r := range rules.Groups[0].Rules {
			if r.Health != "ok" {
				return false
			}
		}
		return true
	})
	rulesFile, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	if n, want := len(rules.Groups[0].Rules), strings.Count(string(rulesFile), "- alert: "); n != want || want < 8 {
		t.Errorf("Prometheus loaded %d alert rules, alerts.yml has %d", n, want)
	}

	checkDashboard(t, prom)
}

// checkDashboard runs every query of the Grafana dashboard, with its
// variables filled in as Grafana would, and checks the dashboard's shape:
// a data source variable, no hard-coded instance.
func checkDashboard(t *testing.T, prom *prometheus) {
	b, err := os.ReadFile("../deploy/grafana/gatekeeper.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name, Type string
				Query      any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana/gatekeeper.json: %v", err)
	}
	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["instance"] != "query" || dash.UID == "" {
		t.Fatalf("dashboard variables %v, uid %q: want a datasource variable and an instance query", vars, dash.UID)
	}
	queries := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q does not use the datasource variable", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Contains(tg.Expr, `instance="`) || !strings.Contains(tg.Expr, `$instance`) {
				t.Errorf("panel %q: %s must filter by $instance and hard-code none", p.Title, tg.Expr)
			}
			q := strings.NewReplacer("$instance", ".*", "$__rate_interval", "1m").Replace(tg.Expr)
			var data json.RawMessage
			if err := prom.api("/api/v1/query", url.Values{"query": {q}}, &data); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			queries++
		}
	}
	var instances []string
	if err := prom.api("/api/v1/label/instance/values", url.Values{"match[]": {"caddy_gatekeeper_store_up"}}, &instances); err != nil || len(instances) != 1 {
		t.Errorf("the instance variable's query finds %v (%v)", instances, err)
	}
	t.Logf("ran %d dashboard queries against Prometheus", queries)
}
