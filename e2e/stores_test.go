package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/customernode/gatekeeper/internal/testredis"
	"github.com/customernode/gatekeeper/internal/testutil"
)

// The stores as a running binary sees them: what survives a restart, what
// reaches another instance, and the Redis forms the Caddyfile accepts.

func TestFileStoreSurvivesARestartOfTheBinary(t *testing.T) {
	in := start(t, "\t\tstore file ./data")
	in.mustCLI(addArgs("127.0.0.2")...)
	in.mustCLI("bans", "add", "198.51.100.7")
	in.stop()
	in.run()
	if list := listJSON(t, in); len(list) != 1 {
		t.Fatalf("after restart: %+v", list)
	}
	if st := in.status(); st.Approvals["active"] != 1 || st.BansActive != 1 {
		t.Fatalf("after restart the snapshot holds %+v", st)
	}
	// SIGKILL too: nothing acknowledged may be lost.
	in.mustCLI(addArgs("127.0.0.3")...)
	_ = in.cmd.Process.Signal(syscall.SIGKILL)
	_ = in.cmd.Wait()
	in.cmd = nil
	in.run()
	if list := listJSON(t, in); len(list) != 2 {
		t.Fatalf("after SIGKILL: %d approvals, want 2", len(list))
	}
}

func TestTwoInstancesSharingRedisSeeEachOthersChangesWithinOneSecond(t *testing.T) {
	srv := testredis.Start(t)
	globals := "\t\tstore redis " + srv.URL(0) + "\n\t\tresync_interval 1h"
	a, b := start(t, globals), start(t, globals)

	a.mustCLI(addArgs("127.0.0.2")...)
	took := testutil.WaitFor(t, time.Second, "approval enforced on b", func() bool { return b.status().Approvals["active"] == 1 })
	t.Logf("registration reached instance b in %s", took)

	id := listJSON(t, b)[0].ID
	viaB := from(t, b, "127.0.0.2")
	if r := viaB.get("acme.localhost", "/"); !strings.Contains(r.body, id) {
		t.Fatalf("instance b does not approve the source: %d %q", r.code, r.body)
	}
	a.mustCLI("approvals", "revoke", id, "--reason", "done")
	took = testutil.WaitFor(t, time.Second, "revocation enforced on b", func() bool {
		return !strings.Contains(viaB.get("acme.localhost", "/").body, id)
	})
	t.Logf("revocation reached instance b's requests in %s", took)

	b.mustCLI("bans", "add", "198.51.100.7")
	testutil.WaitFor(t, time.Second, "ban on a", func() bool { return a.status().BansActive == 1 })
	a.mustCLI("bans", "remove", "198.51.100.7")
	testutil.WaitFor(t, time.Second, "lifted ban on b", func() bool { return b.status().BansActive == 0 })
}

func TestRedisStoreSurvivesARestartOfEverything(t *testing.T) {
	srv := testredis.StartWith(t, testredis.Options{AppendOnly: true})
	in := start(t, "\t\tstore redis "+srv.URL(0))
	in.mustCLI(addArgs("127.0.0.2")...)
	in.stop()
	srv.Kill()
	srv.Restart()
	in.run()
	if list := listJSON(t, in); len(list) != 1 {
		t.Fatalf("after restarting Redis and gatekeeper: %+v", list)
	}
}

// The block form of `store redis` reaches a Cluster and a Sentinel-managed
// master through go-redis's UniversalClient.
func TestRedisBlockFormForClusterAndSentinel(t *testing.T) {
	cases := map[string]func(t *testing.T) string{
		"cluster": func(t *testing.T) string {
			return "\t\t\taddrs " + strings.Join(testredis.StartCluster(t), " ")
		},
		"sentinel": func(t *testing.T) string {
			return "\t\t\taddrs " + testredis.StartSentinel(t, "gkmaster") + "\n\t\t\tmaster_name gkmaster"
		},
	}
	for name, block := range cases {
		t.Run(name, func(t *testing.T) {
			globals := "\t\tstore redis {\n" + block(t) + "\n\t\t}"
			a, b := start(t, globals), start(t, globals)
			a.mustCLI(addArgs("127.0.0.2")...)
			testutil.WaitFor(t, time.Second, "approval on the second instance", func() bool { return b.status().Approvals["active"] == 1 })
			if st := a.mustCLI("status"); !strings.Contains(st, "(up)") || !strings.Contains(st, "redis "+name) {
				t.Fatalf("status:\n%s", st)
			}
		})
	}
}

// `gatekeeper validate` provisions the config but never opens the store, so
// it works while a server holds the same file store.
func TestValidateWhileAServerHoldsTheFileStore(t *testing.T) {
	dir := t.TempDir()
	in := start(t, "\t\tstore file "+dir+"/data")
	out, err := runBin(t, "validate", "--config", in.Config, "--adapter", "caddyfile")
	if err != nil || !strings.Contains(out, "Valid configuration") {
		t.Fatalf("validate beside a running server: %v\n%s", err, out)
	}
	in.mustCLI(addArgs("127.0.0.2")...)
}
