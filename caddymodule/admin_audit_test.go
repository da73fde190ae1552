package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/audit"
	"github.com/customernode/gatekeeper/feed"
)

func TestAdminAuditChainIsShownAndVerified(t *testing.T) {
	dir := t.TempDir()
	c := startCaddy(t, map[string]any{"kind": "file", "dir": dir})
	var created apiApproval
	c.do("POST", "/gatekeeper/approvals", validApproval(), &created)
	c.do("POST", "/gatekeeper/approvals", validApproval(), nil)
	c.do("DELETE", "/gatekeeper/approvals/"+created.ID+"?reason=done", nil, nil)
	c.do("POST", "/gatekeeper/bans", map[string]any{"ip": "198.51.100.7"}, nil)

	var events []struct {
		Action, Hash, Prev string
		Seq                int64
	}
	c.do("GET", "/gatekeeper/audit", nil, &events)
	if len(events) != 4 || events[0].Seq != 1 || events[1].Seq != 3 || events[1].Action != "approval.revoked" ||
		len(events[1].Hash) != 64 || events[2].Hash != events[1].Prev {
		t.Fatalf("GET audit = %+v; want seq and linked hashes on each event", events)
	}

	var v audit.Verification
	if code := c.do("POST", "/gatekeeper/audit/verify", nil, &v); code != 200 || !v.OK || len(v.Chains) != 2 ||
		v.Chains[0].Last.Seq != 3 || v.Chains[0].Last.Hash != events[1].Hash || v.Chains[1].Last.Seq != 1 {
		t.Fatalf("POST audit/verify = %d %+v", code, v)
	}
	var st api.Status
	c.do("GET", "/gatekeeper/status", nil, &st)
	if st.Audit == nil || !st.Audit.OK || st.Audit.Chains[0].Last != v.Chains[0].Last {
		t.Fatalf("status audit = %+v; want the last verification", st.Audit)
	}

	// Someone edits the log behind Gatekeeper's back: the next check says
	// where, and the status shows it.
	path := filepath.Join(dir, "audit.jsonl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(b, []byte(`"revoke_reason":"done"`), []byte(`"revoke_reason":"fine"`), 1)
	if bytes.Equal(edited, b) {
		t.Fatal("the revocation's reason is not in the log")
	}
	if err := os.WriteFile(path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := c.do("POST", "/gatekeeper/audit/verify", nil, &v); code != 200 || v.OK || v.Chains[0].BrokenAt != 3 {
		t.Fatalf("POST audit/verify after an edit = %d %+v; want the approval chain broken at 3", code, v)
	}
	c.do("GET", "/gatekeeper/status", nil, &st)
	if st.Audit.OK {
		t.Fatalf("status after a broken check = %+v", st.Audit)
	}
}

func TestAdminEventsFeedShowsRefusedRequests(t *testing.T) {
	c := startCaddy(t, fileStore(t))
	var page struct {
		Events []feed.Event `json:"events"`
		Next   uint64       `json:"next"`
	}
	if code := c.do("GET", "/gatekeeper/events?limit=500", nil, &page); code != 200 {
		t.Fatalf("GET events = %d", code)
	}
	start := page.Next

	req, _ := http.NewRequest("GET", c.site+"/index.php?id=1", nil)
	req.Header.Set("User-Agent", "sqlmap/1.8#stable (https://sqlmap.org)")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sqlmap got %d, want 403", resp.StatusCode)
	}
	c.do("GET", fmt.Sprintf("/gatekeeper/events?since=%d", start), nil, &page)
	if len(page.Events) != 1 || page.Next != page.Events[0].ID {
		t.Fatalf("events after %d = %+v; want the one refusal", start, page)
	}
	ev := page.Events[0]
	if ev.Verdict != "blocked" || ev.Reason != "scanner" || ev.Scanner != "sqlmap" || ev.Source != "127.0.0.1" ||
		ev.Tenant != "acme" || ev.Path != "/index.php" || ev.Method != "GET" || len(ev.Signals) == 0 {
		t.Fatalf("feed event = %+v", ev)
	}
	if c.do("GET", fmt.Sprintf("/gatekeeper/events?since=%d", page.Next), nil, &page); len(page.Events) != 0 {
		t.Fatalf("events after the last = %+v", page.Events)
	}
	var e struct{ Error string }
	for _, q := range []string{"?since=-1", "?limit=0", "?limit=501"} {
		if code := c.do("GET", "/gatekeeper/events"+q, nil, &e); code != 400 {
			t.Errorf("GET events%s = %d, want 400", q, code)
		}
	}
}
