package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// Who makes a change is taken from authentication, never from what a client
// writes: these tests attack each identity source of the built binary with
// real parts (Caddy's remote admin with certificates made here, Caddy's
// basic_auth, an OpenID provider, the console bridge and its key, Redis).

// whoJSON is an identity as the admin API and the audit show it.
type whoJSON struct {
	ID     string `json:"id"`
	Via    string `json:"via"`
	Issuer string `json:"issuer"`
	Cert   string `json:"cert"`
}

// requestJSON is an approval or request as the admin API shows it.
type requestJSON struct {
	ID          string   `json:"id"`
	Tenant      string   `json:"tenant"`
	Status      string   `json:"status"`
	RequestedBy string   `json:"requested_by"`
	ApprovedBy  string   `json:"approved_by"`
	Requester   *whoJSON `json:"requester"`
	Revoker     *whoJSON `json:"revoker"`
	Digest      string   `json:"digest"`
	MaxRPS      float64  `json:"max_rps"`
	Token       string   `json:"token"`
}

type auditJSON struct {
	Action   string   `json:"action"`
	Actor    string   `json:"actor"`
	By       *whoJSON `json:"by"`
	Approval *struct {
		ID string `json:"id"`
	} `json:"approval"`
}

// call sends method url with body (JSON unless a string or nil) and headers
// as name, value pairs ("Host" sets the request's host); it answers the
// status and body.
func call(t *testing.T, c *http.Client, method, u string, body any, headers ...string) (int, string) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
		} else {
			req.Header.Add(headers[i], headers[i+1])
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// decode unmarshals an answer's body, failing the test with it.
func decode(t *testing.T, body string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%v in %s", err, body)
	}
}

var plain = &http.Client{Timeout: 15 * time.Second}

// testRequest is a request for tenant's test from 127.0.0.2 for the next
// hours, naming no people: under four eyes they come from authentication.
func testRequest(tenant string, rps float64) map[string]any {
	from := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	b := map[string]any{"sources": []string{"127.0.0.2"}, "not_before": from.Format(time.RFC3339),
		"not_after": from.Add(4 * time.Hour).Format(time.RFC3339), "max_rps": rps, "max_requests": 1000}
	if tenant != "" {
		b["tenant"] = tenant
	}
	return b
}

// auditOf is the audit event action of approval id, failing the test when
// there is none.
func auditOf(t *testing.T, in *instance, action, id string) auditJSON {
	t.Helper()
	var evs []auditJSON
	in.get("/gatekeeper/audit?limit=1000", &evs)
	for _, e := range evs {
		if e.Action == action && e.Approval != nil && e.Approval.ID == id {
			return e
		}
	}
	t.Fatalf("no %s event for %s in the audit: %+v", action, id, evs)
	return auditJSON{}
}

// sameWho fails the test unless got is want.
func sameWho(t *testing.T, what string, got *whoJSON, want whoJSON) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s: by %+v, want %+v", what, got, want)
	}
}

// person is a client certificate made for one person, signed by ca.
type person struct {
	tls  tls.Certificate
	der  []byte
	hash string // the SHA-256 fingerprint of der, in hex
}

// newCA makes a certificate authority that signs people's certificates.
func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	return ca, key
}

// newPerson makes a client certificate for cn with email addresses.
func newPerson(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, emails ...string) person {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, EmailAddresses: emails,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return person{tls: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, der: der, hash: hex.EncodeToString(sum[:])}
}

// adminName is the remote admin endpoint's name in its certificate, which
// Caddy's internal CA issues; clients dial 127.0.0.1 and verify this name.
const adminName = "admin.gatekeeper.test"

// startRemoteAdmin runs gatekeeper with globals and site, adapted to
// Caddy's JSON config with its remote admin endpoint on a loopback port:
// mutual TLS, each of listed a person admitted to /gatekeeper/. It answers
// the instance and the remote admin's base URL, once that answers.
func startRemoteAdmin(t *testing.T, globals, site string, listed ...person) (*instance, string) {
	t.Helper()
	dir := t.TempDir()
	in := &instance{t: t, Admin: testutil.FreeAddr(t), Site: testutil.FreeAddr(t), Config: filepath.Join(dir, "caddy.json")}
	remote := testutil.FreeAddr(t)
	_, sitePort, _ := net.SplitHostPort(in.Site)
	caddyfile := filepath.Join(dir, "Caddyfile")
	writeFile(t, caddyfile, fmt.Sprintf("{\n\tadmin %s\n\tdefault_bind 127.0.0.1\n\tgatekeeper {\n%s\n\t}\n}\n\nhttp://:%s {\n%s\n}\n",
		in.Admin, globals, sitePort, site))
	adapted, err := exec.Command(bin, "adapt", "--config", caddyfile, "--adapter", "caddyfile").Output()
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	var cfg map[string]any
	decode(t, string(adapted), &cfg)
	var keys []string
	for _, p := range listed {
		keys = append(keys, base64.StdEncoding.EncodeToString(p.der))
	}
	admin := cfg["admin"].(map[string]any)
	admin["identity"] = map[string]any{"identifiers": []string{adminName}, "issuers": []any{map[string]any{"module": "internal"}}}
	admin["remote"] = map[string]any{"listen": remote, "access_control": []any{map[string]any{
		"public_keys": keys,
		"permissions": []any{map[string]any{"paths": []string{"/gatekeeper/"}, "methods": []string{"GET", "POST", "DELETE"}}},
	}}}
	apps := cfg["apps"].(map[string]any)
	apps["pki"] = map[string]any{"certificate_authorities": map[string]any{"local": map[string]any{"install_trust": false}}}
	b, _ := json.MarshalIndent(cfg, "", "\t")
	writeFile(t, in.Config, string(b))
	in.run()
	t.Cleanup(in.stop)

	// Caddy's internal CA made its root at start; the identity certificate
	// is obtained in the background.
	root := filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt")
	base := "https://" + remote
	var last error
	defer func() {
		if t.Failed() {
			t.Logf("the remote admin endpoint's last answer: %v", last)
		}
	}()
	testutil.WaitFor(t, 20*time.Second, "the remote admin endpoint answering", func() bool {
		pem, err := os.ReadFile(root)
		if err != nil || len(listed) == 0 {
			last = err
			return false
		}
		resp, err := remoteClient(pem, &listed[0]).Get(base + "/gatekeeper/status")
		if err != nil {
			last = err
			return false
		}
		resp.Body.Close()
		last = fmt.Errorf("%s", resp.Status)
		return resp.StatusCode == 200
	})
	return in, base
}

// remoteClient calls the remote admin endpoint with p's certificate (none
// when p is nil), trusting Caddy's root.
func remoteClient(rootPEM []byte, p *person) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: adminName}
	if p != nil {
		// Sent whatever CAs the server says it accepts (as curl --cert
		// does): Caddy names the listed certificates, not their issuer.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &p.tls, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 15 * time.Second}
}

// TestRemoteAdminNamesEachPersonByTheirCertificate runs Caddy's own remote
// admin endpoint with mutual TLS: alice and bob each have a certificate,
// listed in access_control. Whoever calls is the certificate, never the
// body: alice's registration is a pending request in her name (naming
// someone else as requested_by is refused), she cannot approve it, bob can,
// and the audit names each by email, issuer and certificate fingerprint. A
// certificate that is not listed does not get past the TLS handshake.
//
// A certificate that several people share shows as one fingerprint (and
// one name, its first email address) in every event: to four eyes it is
// one person, so a request filed with it can never be approved with it,
// whoever holds it. Each person needs their own certificate.
func TestRemoteAdminNamesEachPersonByTheirCertificate(t *testing.T) {
	ca, caKey := newCA(t, "Example People CA")
	alice := newPerson(t, ca, caKey, "alice", "alice@example.com")
	bob := newPerson(t, ca, caKey, "bob", "bob@example.com")
	carol := newPerson(t, ca, caKey, "carol", "carol@example.com") // same CA, not listed
	in, base := startRemoteAdmin(t, "\t\tstore file ./data\n\t\tapproval_policy {\n\t\t\tapprovers 1\n\t\t\tapprover_group bob@example.com\n\t\t}",
		"\trespond \"ok\"", alice, bob)
	root, err := os.ReadFile(filepath.Join(filepath.Dir(in.Config), "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	asAlice, asBob := remoteClient(root, &alice), remoteClient(root, &bob)

	// Attacks first: not listed, no certificate at all.
	for name, c := range map[string]*http.Client{"carol's unlisted certificate": remoteClient(root, &carol), "no certificate": remoteClient(root, nil)} {
		resp, err := c.Get(base + "/gatekeeper/approvals")
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: %s, want the TLS handshake refused", name, resp.Status)
		}
	}
	forged := testRequest("acme", 10)
	forged["requested_by"] = "bob@example.com"
	if code, body := call(t, asAlice, "POST", base+"/gatekeeper/approvals", forged, "Gatekeeper-On-Behalf-Of", "bob@example.com"); code != 400 || !strings.Contains(body, "requested_by") {
		t.Errorf("alice naming bob as requested_by: %d %s, want 400 naming requested_by", code, body)
	}

	code, body := call(t, asAlice, "POST", base+"/gatekeeper/approvals", testRequest("acme", 10), "Gatekeeper-On-Behalf-Of", "bob@example.com")
	if code != 201 {
		t.Fatalf("alice's registration: %d %s", code, body)
	}
	var req requestJSON
	decode(t, body, &req)
	aliceWho := whoJSON{ID: "alice@example.com", Via: "mtls", Issuer: "Example People CA", Cert: alice.hash}
	bobWho := whoJSON{ID: "bob@example.com", Via: "mtls", Issuer: "Example People CA", Cert: bob.hash}
	if req.Status != "pending" || req.RequestedBy != "alice@example.com" {
		t.Errorf("alice's registration: status %q requested_by %q, want pending by alice@example.com", req.Status, req.RequestedBy)
	}
	sameWho(t, "the requester", req.Requester, aliceWho)

	approve := base + "/gatekeeper/approvals/" + req.ID + "/approve"
	if code, body := call(t, asAlice, "POST", approve, map[string]string{"approval_ref": "SEC-9"}); code != 403 {
		t.Errorf("alice approving her own request: %d %s, want 403", code, body)
	}
	code, body = call(t, asBob, "POST", approve, map[string]string{"approval_ref": "SEC-9"})
	var approved requestJSON
	decode(t, body, &approved)
	if code != 200 || approved.Status != "active" || approved.ApprovedBy != "bob@example.com" {
		t.Fatalf("bob's approval: %d %s, want 200 active approved by bob@example.com", code, body)
	}
	sameWho(t, "approval.requested", auditOf(t, in, "approval.requested", req.ID).By, aliceWho)
	ev := auditOf(t, in, "approval.approved", req.ID)
	sameWho(t, "approval.approved", ev.By, bobWho)
	if ev.Actor != "bob@example.com (mtls, Example People CA)" {
		t.Errorf("approval.approved: actor %q", ev.Actor)
	}
}

// TestLocalEndpointIgnoresOnBehalfOf: on the local admin endpoint a caller
// is the operator, whatever Gatekeeper-On-Behalf-Of it sends, with no
// bridge key or a wrong one. Only `gatekeeper console` run by a user who
// can read the running Caddy's bridge key names that user (via bridge);
// run by a user who cannot, its changes are the operator's.
func TestLocalEndpointIgnoresOnBehalfOf(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	operator := whoJSON{ID: "operator", Via: "local"}
	for name, headers := range map[string][]string{
		"no bridge key":    {"Gatekeeper-On-Behalf-Of", "mallory"},
		"a wrong key":      {"Gatekeeper-On-Behalf-Of", "mallory", "Gatekeeper-Bridge-Key", strings.Repeat("0", 64)},
		"an empty key":     {"Gatekeeper-On-Behalf-Of", "mallory", "Gatekeeper-Bridge-Key", ""},
		"a key of garbage": {"Gatekeeper-On-Behalf-Of", "mallory", "Gatekeeper-Bridge-Key", "mallory"},
	} {
		body := testRequest("acme", 10)
		body["requested_by"], body["approved_by"], body["approval_ref"] = "ciso@acme.example", "secops", "SEC-1"
		code, answer := call(t, plain, "POST", "http://"+in.Admin+"/gatekeeper/approvals", body, headers...)
		if code != 201 {
			t.Fatalf("%s: %d %s", name, code, answer)
		}
		var a requestJSON
		decode(t, answer, &a)
		sameWho(t, name+": the requester", a.Requester, operator)
		ev := auditOf(t, in, "approval.created", a.ID)
		sameWho(t, name+": approval.created", ev.By, operator)
		if ev.Actor != "operator (local)" {
			t.Errorf("%s: actor %q, want operator (local)", name, ev.Actor)
		}
	}

	me, _ := user.Current()
	host, _ := os.Hostname()
	for _, c := range []struct {
		name, dataHome string
		want           whoJSON
	}{
		{"a bridge that cannot read the key", t.TempDir(), operator},
		{"a bridge with Caddy's data directory", filepath.Dir(in.Config), whoJSON{ID: me.Username, Via: "bridge", Issuer: host}},
	} {
		id, _ := in.register(nil)
		bridge, base := startBridge(t, in, c.dataHome)
		code, body := call(t, plain, "DELETE", base+"/gatekeeper/approvals/"+id+"?reason=done", nil,
			"Origin", bridge, "Sec-Fetch-Site", "same-origin", "Gatekeeper-On-Behalf-Of", "mallory")
		var a requestJSON
		decode(t, body, &a)
		if code != 200 || a.Status != "revoked" {
			t.Fatalf("%s: revoking: %d %s", c.name, code, body)
		}
		sameWho(t, c.name+": approval.revoked", auditOf(t, in, "approval.revoked", id).By, c.want)
	}
}

// startBridge runs `gatekeeper console` for in with XDG_DATA_HOME at
// dataHome (where it looks for Caddy's bridge key) and answers the
// bridge's origin and its base URL (with the token).
func startBridge(t *testing.T, in *instance, dataHome string) (origin, base string) {
	t.Helper()
	listen := testutil.FreeAddr(t)
	cmd := exec.Command(bin, "console", "--address", in.Admin, "--listen", listen)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dataHome)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.Stop(cmd, 5*time.Second) })
	urlRE := regexp.MustCompile(`http://` + regexp.QuoteMeta(listen) + `/[A-Za-z0-9_-]{32}/gatekeeper/ui/`)
	var ui string
	testutil.WaitFor(t, 10*time.Second, "gatekeeper console printing its URL", func() bool {
		ui = urlRE.FindString(out.String())
		return ui != ""
	})
	return "http://" + listen, strings.TrimSuffix(ui, "/gatekeeper/ui/")
}

// basicAuthUsers is a basic_auth block for users, each with the password
// "pw-" + name, hashed at bcrypt's least cost to keep the test fast.
func basicAuthUsers(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("\t\tbasic_auth {\n")
	for _, u := range users {
		hash, err := runBin(t, "hash-password", "--plaintext", "pw-"+u, "--bcrypt-cost", "4")
		if err != nil {
			t.Fatalf("hash-password: %v %s", err, hash)
		}
		fmt.Fprintf(&b, "\t\t\t%s %s\n", u, strings.TrimSpace(hash))
	}
	b.WriteString("\t\t}\n")
	return b.String()
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// TestBasicAuthUserCannotBeChangedByTheClient puts gatekeeper_console
// behind Caddy's basic_auth (alice, bob): alice cannot pass for bob with
// Gatekeeper-On-Behalf-Of, X-Remote-User or a second Authorization naming
// him; his name without his password gets basic_auth's 401, as does no
// password at all. The audit names alice (caddy_auth) as the requester and
// bob as the approver; alice cannot approve her own request.
func TestBasicAuthUserCannotBeChangedByTheClient(t *testing.T) {
	in := startSite(t, "\t\tstore file ./data\n\t\tapproval_policy {\n\t\t\tapprovers 1\n\t\t\tapprover_group bob\n\t\t}", `
	route /gatekeeper/* {
`+basicAuthUsers(t, "alice", "bob")+`
		gatekeeper_console
	}
	respond "ok"`)
	site := "http://" + in.Site
	if code, _ := call(t, plain, "POST", site+"/gatekeeper/approvals", testRequest("acme", 10)); code != 401 {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := call(t, plain, "POST", site+"/gatekeeper/approvals", testRequest("acme", 10), "Authorization", basic("bob", "pw-alice")); code != 401 {
		t.Errorf("bob's name with alice's password: %d, want 401", code)
	}
	code, body := call(t, plain, "POST", site+"/gatekeeper/approvals", testRequest("acme", 10),
		"Authorization", basic("alice", "pw-alice"), "Authorization", basic("bob", "guess"),
		"Gatekeeper-On-Behalf-Of", "bob", "X-Remote-User", "bob", "X-Forwarded-User", "bob", "Remote-User", "bob")
	if code != 201 {
		t.Fatalf("alice's request with forged names beside it: %d %s", code, body)
	}
	var req requestJSON
	decode(t, body, &req)
	alice, bob := whoJSON{ID: "alice", Via: "caddy_auth"}, whoJSON{ID: "bob", Via: "caddy_auth"}
	if req.Status != "pending" || req.RequestedBy != "alice" {
		t.Errorf("alice's request: status %q requested_by %q", req.Status, req.RequestedBy)
	}
	sameWho(t, "the requester", req.Requester, alice)
	approve := site + "/gatekeeper/approvals/" + req.ID + "/approve"
	if code, body := call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-2"},
		"Authorization", basic("alice", "pw-alice"), "Gatekeeper-On-Behalf-Of", "bob", "X-Remote-User", "bob"); code != 403 {
		t.Errorf("alice approving her own request as 'bob': %d %s, want 403", code, body)
	}
	code, body = call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-2"}, "Authorization", basic("bob", "pw-bob"))
	var approved requestJSON
	decode(t, body, &approved)
	if code != 200 || approved.Status != "active" || approved.ApprovedBy != "bob" {
		t.Fatalf("bob's approval: %d %s", code, body)
	}
	ev := auditOf(t, in, "approval.requested", req.ID)
	sameWho(t, "approval.requested", ev.By, alice)
	if ev.Actor != "alice (caddy_auth)" {
		t.Errorf("approval.requested: actor %q, want alice (caddy_auth)", ev.Actor)
	}
	sameWho(t, "approval.approved", auditOf(t, in, "approval.approved", req.ID).By, bob)
}

// oidcUser is a person the test's OpenID provider logs in.
type oidcUser = testutil.OIDCUser

// startProvider starts a real OpenID provider on a loopback port.
func startProvider(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	return m
}

// login runs the authorization code flow for u and answers the ID token
// the provider signed.
func login(t *testing.T, m *mockoidc.MockOIDC, u oidcUser) string { return testutil.OIDCLogin(t, m, u) }

func bearer(tok string) string { return "Bearer " + tok }

// TestOpenIDTenantsAskOnlyForTheirOwn runs a real OpenID provider and a
// site with gatekeeper_requests and gatekeeper_console and no basic_auth:
// the bearer token is the only identity. A tenant's user files a request
// for its own tenant (the tenant from the token, never the body); another
// tenant's user sees nothing of it and cannot take its token or approve
// it; tampered and expired tokens get 401; an approver named by the token's
// groups approves through the console's routes; the requester alone is
// handed the test token, once.
func TestOpenIDTenantsAskOnlyForTheirOwn(t *testing.T) {
	m := startProvider(t)
	in := startSite(t, fmt.Sprintf(`		store file ./data
		identity oidc {
			issuer %s
			audience %s
			tenant_claim tenant
			groups_claim groups
		}
		approval_policy {
			approvers 1
			approver_group secops
		}`, m.Issuer(), m.ClientID), `
	handle /security-tests/* {
		gatekeeper_requests
	}
	gatekeeper_console
	respond "ok"`)
	site := "http://" + in.Site
	ann := oidcUser{Sub: "u-ann", Set: map[string]any{"email": "ann@acme.example", "email_verified": true, "tenant": "acme", "groups": []string{"acme-devs"}}}
	gil := oidcUser{Sub: "u-gil", Set: map[string]any{"email": "gil@globex.example", "email_verified": true, "tenant": "globex", "groups": []string{"globex-devs"}}}
	// The approver's token needs a tenant too: with tenant_claim set, a
	// token without one is refused.
	sam := oidcUser{Sub: "u-sam", Set: map[string]any{"email": "sam@customernode.example", "email_verified": true, "tenant": "customernode", "groups": []string{"secops"}}}
	annTok, gilTok, samTok := login(t, m, ann), login(t, m, gil), login(t, m, sam)

	// Tampered: ann's token with globex in its payload and ann's signature;
	// expired: one the provider signed with an exp an hour ago.
	parts := strings.Split(annTok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forgedPayload := strings.Replace(string(payload), `"acme"`, `"globex"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forgedPayload)) + "." + parts[2]
	expiredUser := oidcUser{Sub: ann.Sub, Set: map[string]any{"email": "ann@acme.example", "email_verified": true, "tenant": "acme",
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}}
	expired := login(t, m, expiredUser)
	requests := site + "/security-tests/requests"
	for name, headers := range map[string][]string{
		"no token":         nil,
		"a tampered token": {"Authorization", bearer(tampered)},
		"an expired token": {"Authorization", bearer(expired)},
		"basic credentials where no basic_auth is": {"Authorization", basic("ann", "x")},
		"a forged identity header":                 {"Gatekeeper-On-Behalf-Of", "ann@acme.example", "X-Remote-User", "ann@acme.example"},
	} {
		for _, u := range []string{requests, site + "/gatekeeper/approvals"} {
			if code, body := call(t, plain, "POST", u, testRequest("", 5), headers...); code != 401 {
				t.Errorf("%s, POST %s: %d %s, want 401", name, u, code, body)
			}
		}
	}

	if code, body := call(t, plain, "POST", requests, testRequest("globex", 5), "Authorization", bearer(annTok)); code != 400 || !strings.Contains(body, "tenant") {
		t.Errorf("ann asking for globex: %d %s, want 400 naming tenant", code, body)
	}
	body := testRequest("", 7.25)
	body["require_token"] = true
	code, answer := call(t, plain, "POST", requests, body, "Authorization", bearer(annTok))
	if code != 201 {
		t.Fatalf("ann's request: %d %s", code, answer)
	}
	var req requestJSON
	decode(t, answer, &req)
	annWho := whoJSON{ID: "ann@acme.example", Via: "oidc", Issuer: m.Issuer()}
	if req.Status != "pending" || req.Tenant != "acme" {
		t.Errorf("ann's request: status %q tenant %q, want pending for acme", req.Status, req.Tenant)
	}
	sameWho(t, "the requester", req.Requester, annWho)

	// Another tenant's user: sees none of it, cannot take or approve it.
	code, answer = call(t, plain, "GET", requests, nil, "Authorization", bearer(gilTok))
	if code != 200 || strings.Contains(answer, req.ID) || strings.Contains(answer, "acme") || strings.Contains(answer, "7.25") {
		t.Errorf("gil's list: %d %s; want 200 naming nothing of acme's request", code, answer)
	}
	if code, answer := call(t, plain, "POST", requests+"/"+req.ID+"/token", nil, "Authorization", bearer(gilTok)); code != 404 || strings.Contains(answer, "acme") {
		t.Errorf("gil taking acme's token: %d %s, want 404", code, answer)
	}
	approve := site + "/gatekeeper/approvals/" + req.ID + "/approve"
	t.Run("another tenant's user on the console's routes", func(t *testing.T) {
		// The provider vouches for tenants' people too: the console holds
		// its OpenID callers to the approver group, so gil can neither
		// read another tenant's approvals nor ban or revoke.
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/gatekeeper/approvals", nil},
			{"GET", "/gatekeeper/approvals/" + req.ID, nil},
			{"POST", "/gatekeeper/bans", map[string]string{"ip": "198.51.100.7"}},
			{"DELETE", "/gatekeeper/approvals/" + req.ID + "?reason=mine", nil},
		} {
			if code, answer := call(t, plain, c.method, site+c.path, c.body, "Authorization", bearer(gilTok)); code != 403 || strings.Contains(answer, "acme") {
				t.Errorf("gil: %s %s = %d %.200s, want 403", c.method, c.path, code, answer)
			}
		}
	})
	if code, answer := call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-7"}, "Authorization", bearer(gilTok)); code != 403 {
		t.Errorf("gil approving acme's request: %d %s, want 403", code, answer)
	}
	if code, answer := call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-7"}, "Authorization", bearer(annTok)); code != 403 {
		t.Errorf("ann approving her own request: %d %s, want 403", code, answer)
	}
	code, answer = call(t, plain, "GET", requests, nil, "Authorization", bearer(annTok))
	if code != 200 || !strings.Contains(answer, req.ID) {
		t.Errorf("ann's list: %d %s; want her request", code, answer)
	}

	// The approver approves with the console's routes and their token.
	code, answer = call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-7"}, "Authorization", bearer(samTok))
	var approved requestJSON
	decode(t, answer, &approved)
	if code != 200 || approved.Status != "active" {
		t.Fatalf("sam's approval: %d %s, want 200 active", code, answer)
	}
	samWho := whoJSON{ID: "sam@customernode.example", Via: "oidc", Issuer: m.Issuer()}
	sameWho(t, "approval.requested", auditOf(t, in, "approval.requested", req.ID).By, annWho)
	sameWho(t, "approval.approved", auditOf(t, in, "approval.approved", req.ID).By, samWho)

	// The token: never to the approver, once to the requester.
	if code, answer := call(t, plain, "POST", site+"/gatekeeper/approvals/"+req.ID+"/token", nil, "Authorization", bearer(samTok)); code != 403 || strings.Contains(answer, "gkt_") {
		t.Errorf("the approver taking the token: %d %s, want 403", code, answer)
	}
	code, answer = call(t, plain, "POST", requests+"/"+req.ID+"/token", nil, "Authorization", bearer(annTok))
	var issued requestJSON
	decode(t, answer, &issued)
	if code != 200 || !strings.HasPrefix(issued.Token, "gkt_") {
		t.Fatalf("ann taking her token: %d %s", code, answer)
	}
	if code, answer := call(t, plain, "POST", requests+"/"+req.ID+"/token", nil, "Authorization", bearer(annTok)); code != 409 || strings.Contains(answer, "gkt_") {
		t.Errorf("ann taking her token again: %d %s, want 409", code, answer)
	}
}

// TestApprovalIsNotReplayedOntoAChangedRequest stores requests in a real
// Redis and changes one behind Gatekeeper's back, as anyone who can write
// to Redis could, between its two approvals: the second approver's
// approval of what they were shown is refused (409), and an approval
// without a digest counts for the changed content only, so the request
// stays pending: the first approval was for other content.
func TestApprovalIsNotReplayedOntoAChangedRequest(t *testing.T) {
	srv := testredis.Start(t)
	in := startSite(t, "\t\tstore redis "+srv.URL(0)+"\n\t\tapproval_policy {\n\t\t\tapprovers 2\n\t\t\tapprover_group bob carol\n\t\t}", `
	route /gatekeeper/* {
`+basicAuthUsers(t, "alice", "bob", "carol")+`
		gatekeeper_console
	}
	respond "ok"`)
	site := "http://" + in.Site
	as := func(who string) []string { return []string{"Authorization", basic(who, "pw-"+who)} }
	code, answer := call(t, plain, "POST", site+"/gatekeeper/approvals", testRequest("acme", 10), as("alice")...)
	if code != 201 {
		t.Fatalf("alice's request: %d %s", code, answer)
	}
	var req requestJSON
	decode(t, answer, &req)
	shown := req.Digest
	if shown == "" {
		t.Fatalf("the request shows no digest: %s", answer)
	}
	approve := site + "/gatekeeper/approvals/" + req.ID + "/approve"
	code, answer = call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-5", "digest": shown}, as("bob")...)
	var first requestJSON
	decode(t, answer, &first)
	if code != 200 || first.Status != "pending" {
		t.Fatalf("bob's approval, the first of two: %d %s", code, answer)
	}

	// A Redis writer raises the rate of the stored request.
	rdb := srv.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	key := "gatekeeper:{state}:approvals"
	raw, err := rdb.HGet(ctx, key, req.ID).Result()
	if err != nil {
		t.Fatalf("HGET %s %s: %v", key, req.ID, err)
	}
	var record map[string]any
	decode(t, raw, &record)
	record["max_rps"] = 5000
	changed, _ := json.Marshal(record)
	if err := rdb.HSet(ctx, key, req.ID, changed).Err(); err != nil {
		t.Fatal(err)
	}

	if code, answer := call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-5", "digest": shown}, as("carol")...); code != 409 || !strings.Contains(answer, "changed") {
		t.Errorf("carol approving what she was shown, after the change: %d %s, want 409 changed", code, answer)
	}
	code, answer = call(t, plain, "POST", approve, map[string]string{"approval_ref": "SEC-5"}, as("carol")...)
	var after requestJSON
	decode(t, answer, &after)
	if code != 200 || after.Status != "pending" || after.MaxRPS != 5000 || after.Digest == shown {
		t.Errorf("carol approving without a digest: %d %s; want 200, still pending: bob approved other content", code, answer)
	}
	var status struct {
		Approvals map[string]int `json:"approvals"`
	}
	in.get("/gatekeeper/status", &status)
	if status.Approvals["active"] != 0 {
		t.Errorf("status: %v; the changed request must cover nothing", status.Approvals)
	}

	// The audit's verification: the chain of events is unbroken (nobody
	// removed or rewrote an event), but what the request asks for changed
	// between its events without one that changes it, and verify says so.
	code, answer = call(t, plain, "POST", "http://"+in.Admin+"/gatekeeper/audit/verify", nil)
	var v struct {
		OK      bool   `json:"ok"`
		Records string `json:"records_problem"`
	}
	decode(t, answer, &v)
	if code != 200 || v.OK || !strings.Contains(v.Records, req.ID) || !strings.Contains(v.Records, "changed in the store without an event") {
		t.Errorf("audit verify: %d %s; want not ok, naming %s changed in the store", code, answer, req.ID)
	}
	var trail []struct {
		Action   string `json:"action"`
		Approval struct {
			MaxRPS float64 `json:"max_rps"`
		} `json:"approval"`
	}
	in.get("/gatekeeper/audit?limit=10", &trail)
	rates := map[string][]float64{}
	for _, e := range trail {
		rates[e.Action] = append(rates[e.Action], e.Approval.MaxRPS)
	}
	if fmt.Sprint(rates["approval.requested"]) != "[10]" || !slices.Contains(rates["approval.reviewed"], 5000) {
		t.Errorf("the trail's rates by action: %v; want the request's 10 and the changed 5000 on carol's review", rates)
	}
}
