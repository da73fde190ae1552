package approvals

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// FuzzDecodeApproval feeds arbitrary bodies to the decoder and validator.
// Whatever the input, they must not panic; a refusal must be a clear error;
// and an accepted request must build the same approval again from its own
// canonical JSON, so that what is stored is what was validated.
func FuzzDecodeApproval(f *testing.F) {
	valid, _ := json.Marshal(validRequest())
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"sources":["::ffff:1.2.3.4/120"]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequestBytes(body)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		a, err := req.Build(defaultLimits, now)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("validation error %q does not name a field", err)
			}
			return
		}
		again := Request{
			Tenant: a.Tenant, Hosts: a.Hosts, Paths: a.Paths, Methods: a.Methods,
			NotBefore: a.NotBefore.Format("2006-01-02T15:04:05.999999999Z07:00"),
			NotAfter:  a.NotAfter.Format("2006-01-02T15:04:05.999999999Z07:00"),
			MaxRPS:    a.MaxRPS, Burst: &a.Burst, MaxRequests: a.MaxRequests,
			RequestedBy: a.RequestedBy, ApprovedBy: a.ApprovedBy, ApprovalRef: a.ApprovalRef,
			Contact: a.Contact, Notes: a.Notes, RequireToken: a.RequireToken,
		}
		for _, p := range a.Sources {
			again.Sources = append(again.Sources, p.String())
		}
		b, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		req2, err := DecodeRequestBytes(b)
		if err != nil {
			t.Fatalf("canonical form %s does not decode: %v", b, err)
		}
		a2, err := req2.Build(defaultLimits, now)
		if err != nil {
			t.Fatalf("canonical form %s does not validate: %v", b, err)
		}
		if !reflect.DeepEqual(a, a2) {
			t.Fatalf("round trip changed the approval:\n%+v\n%+v", a, a2)
		}
	})
}
