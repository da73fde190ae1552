package campaign

import (
	"fmt"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// Was a way around: the 4 096 keys with recent evidence are shared by every tenant,
// and a new key evicts a random one, campaigns in force included. On a
// platform where strangers' 404s on other tenants make a few thousand keys
// in two minutes (or when a scanner sends failures of random shapes), a
// campaign in force is forgotten and its scan goes on.
func TestOtherTenantsEvidenceDoesNotEndACampaign(t *testing.T) {
	tr := New(Config{})
	at := start
	scan(tr, testutil.WordList(40), 2, &at, 100*time.Millisecond)
	probe := Request{Tenant: "acme", HTTP: toolRequest("/zzz-next", 1), Source: testutil.Spread(999), Fresh: true}
	if !tr.Refuses(&probe, at) {
		t.Fatal("no campaign after 40 paths")
	}
	// Other tenants' ordinary 404s from strangers: one each.
	for i := 0; i < 3*maxRecords; i++ {
		r := toolRequest("/favicon-missing-page", i)
		req := Request{Tenant: fmt.Sprintf("tenant%d", i), HTTP: r, Source: testutil.Spread(2000 + i), Fresh: true}
		tr.Answered(&req, 404, at)
	}
	at = at.Add(time.Second)
	if !tr.Refuses(&probe, at) {
		t.Errorf("acme's campaign ended because %d other tenants' visitors met a 404", 3*maxRecords)
	}
}
