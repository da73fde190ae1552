package behavior

import (
	"testing"
)

func TestEndsInID(t *testing.T) {
	for p, want := range map[string]bool{
		"/api/items/4711": true, "/orders/2024-05-01": true, "/jobs/8f1c2e4a-77aa-4f0e-9d1d-0a7e5c1b2f33": true,
		"/u/5f2b9c0e1a2b3c4d5e6f7a8b": true, "/admin": false, "/backup2/": false, "/v2": true, "/api": false,
		"/deadbeefcafebabe": false, "/": false,
	} {
		if got := EndsInID(p); got != want {
			t.Errorf("EndsInID(%q) = %v, want %v", p, got, want)
		}
	}
}
