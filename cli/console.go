package cli

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/customernode/gatekeeper/api"
	"github.com/customernode/gatekeeper/identity"
	"github.com/spf13/cobra"
)

// `gatekeeper console` opens the console in a browser through a bridge on
// loopback. Caddy's admin endpoint turns away every request a browser makes
// on its own (a navigation carries Sec-Fetch-Mode and no Origin, and Caddy
// asks for one), which is what keeps web pages from reaching it; so the
// console on the admin endpoint is reached the way the CLI reaches the API:
// through this command, which forwards the browser's requests as a client
// of its own. The bridge must not widen who can reach the admin API (which
// may sit on a unix socket only its owner can open): every request must
// carry the random token printed at start in its path, it answers only
// requests addressed to it by its loopback address (no DNS rebinding), and
// it takes changes only from its own page (an Origin that is its own).
// Changes are recorded as the local user who started it.

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "console",
		Usage: "[--listen 127.0.0.1:0] [--address <admin>]",
		Short: "Opens the security console through a loopback bridge to the admin API",
		Long: `
Serves the security console on a loopback address and prints its URL. The
browser's requests go to the admin API (default localhost:2019; see
--address) as the CLI's do. It runs until interrupted. To serve the console
to others, mount the gatekeeper_console handler in a site behind
authentication instead.`,
		CobraFunc: consoleCommand,
	})
}

func consoleCommand(cmd *cobra.Command) {
	addressFlags(cmd) // no --json: the console prints only its URL
	cmd.Example = "  $ gatekeeper console\n  $ gatekeeper console --listen 127.0.0.1:8443 --config Caddyfile"
	cmd.Flags().String("listen", "127.0.0.1:0", "The loopback address to serve the console on")
	cmd.Args = cobra.NoArgs
	cmd.RunE = run(func(cmd *cobra.Command, _ []string) error {
		listen, _ := cmd.Flags().GetString("listen")
		admin, err := adminAddress(cmd)
		if err != nil {
			return err
		}
		b, err := newConsoleBridge(admin)
		if err != nil {
			return err
		}
		ln, err := listenLoopback(listen)
		if err != nil {
			return err
		}
		b.host = ln.Addr().String()
		srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
		who := b.actor + " (bridge)"
		if b.key == "" {
			who = "the local operator (this user cannot read the running Caddy's bridge key, so the bridge cannot name you)"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Gatekeeper console: http://%s/%s/gatekeeper/ui/ (admin API %s; changes recorded as %s; Ctrl-C to stop)\n"+
			"Anyone with this URL can use the console as you until you stop this command: do not share it.\n", b.host, b.token, admin, who)
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		go func() { <-ctx.Done(); srv.Close() }()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
}

// listenLoopback listens on addr, which must be a loopback address: the
// bridge asks for no credentials.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen: %s is not a loopback address; the bridge asks for no credentials, so it serves this machine only (mount gatekeeper_console in a site behind authentication to serve others)", host)
	}
	return net.Listen("tcp", addr)
}

// consoleBridge forwards the console's requests to the admin API.
type consoleBridge struct {
	base   string // the admin API's URL, without a path
	client *http.Client
	host   string // the bridge's own host:port: the only Host it answers
	// token is the first segment of every path the bridge answers: only
	// whoever was shown the URL at start can use it.
	token string
	// actor names the local user who started the bridge, for the audit;
	// key is the running Caddy's bridge key, which makes the admin API
	// take the bridge's word for it ("" when this user cannot read it:
	// changes are then the operator's).
	actor, key string
}

func newConsoleBridge(admin string) (*consoleBridge, error) {
	addr, err := caddy.ParseNetworkAddress(admin)
	if err != nil || addr.PortRangeSize() > 1 {
		return nil, fmt.Errorf("invalid admin address %s: %v", admin, err)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	b := &consoleBridge{base: "http://" + addr.JoinHostPort(0), token: base64.RawURLEncoding.EncodeToString(secret),
		actor: localUser()}
	b.key, _ = identity.ReadBridgeKey(identity.BridgeKeyDir(caddy.AppDataDir()))
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, addr.Network, addr.JoinHostPort(0))
	}
	if addr.IsUnixNetwork() {
		b.base = "http://127.0.0.1" // as Caddy's own CLI does for a socket
		dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return new(net.Dialer).DialContext(ctx, "unix", addr.Host)
		}
	}
	b.client = &http.Client{
		Transport: &http.Transport{DialContext: dial},
		Timeout:   time.Minute,
		// The admin API's redirects are the bridge's to pass on.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b, nil
}

// forwardedHeaders are the request headers the admin API is given; the
// browser's Origin, Referer, cookies and Sec-Fetch-* stay behind.
var forwardedHeaders = []string{"Content-Type", "Accept"}

// answeredHeaders are the admin API's response headers the browser is given.
var answeredHeaders = []string{"Content-Type", "Content-Disposition", "Cache-Control", "Allow", "Location", "Retry-After",
	"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"}

func (b *consoleBridge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch {
	case !strings.EqualFold(r.Host, b.host):
		api.WriteError(w, http.StatusForbidden, "host not allowed: "+r.Host)
		return
	case subtle.ConstantTimeCompare([]byte(token), []byte(b.token)) != 1:
		api.WriteError(w, http.StatusForbidden, "open the console with the URL `gatekeeper console` printed: its token is missing or wrong")
		return
	case rest == "":
		http.Redirect(w, r, "/"+b.token+"/gatekeeper/ui/", http.StatusFound)
		return
	case !strings.HasPrefix(rest, "gatekeeper/"):
		api.WriteError(w, http.StatusNotFound, "not found: /"+rest)
		return
	}
	if err := b.ownPage(r); err != nil {
		api.WriteError(w, http.StatusForbidden, err.Error())
		return
	}
	target := b.base + "/" + rest
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, target, http.MaxBytesReader(w, r.Body, api.MaxBodyBytes+1))
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, err.Error())
		return
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	if b.key != "" {
		out.Header.Set(identity.OnBehalfOfHeader, b.actor)
		out.Header.Set(identity.BridgeKeyHeader, b.key)
	}
	resp, err := b.client.Do(out)
	if err != nil {
		api.WriteError(w, http.StatusBadGateway, "the admin API did not answer: "+err.Error())
		return
	}
	defer resp.Body.Close()
	for _, h := range answeredHeaders {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// ownPage refuses a change (anything but GET and HEAD) that does not come
// from the bridge's own page: browsers send Origin with every such fetch,
// so a change without one (curl, another program) or with another is not
// the console's.
func (b *consoleBridge) ownPage(r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return nil
	}
	if o := r.Header.Get("Origin"); o != "http://"+b.host {
		return fmt.Errorf("changes are taken only from the console's own page (Origin %q is not http://%s)", o, b.host)
	}
	return nil
}

// localUser names the user running the bridge.
func localUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid%d", os.Getuid())
}
