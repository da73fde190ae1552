// Package testredis starts real redis-server processes for tests: a single
// server, a Cluster of three masters (with or without a replica each), or a
// master watched by Sentinels (with a replica to fail over to), each on free
// loopback ports, stopped by pid when the test ends. Nothing here fakes
// Redis.
package testredis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/customernode/gatekeeper/internal/testutil"
)

// Server is one redis-server process started for a test.
type Server struct {
	Addr string
	Dir  string
	args []string
	cmd  *exec.Cmd
	t    testing.TB
}

// Options tune a server.
type Options struct {
	// AppendOnly turns on the AOF with fsync always, for persistence tests.
	AppendOnly bool
	// Cluster starts the server with cluster mode enabled.
	Cluster bool
	// Extra are further redis-server arguments.
	Extra []string
}

// Start starts a redis-server on a free loopback port with nothing saved to
// disk, and stops it when the test ends.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith starts a redis-server with opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; run: apt-get update && apt-get install -y redis-server (or make test, which does it)")
	}
	// A port free a moment ago may be taken by another process before
	// redis-server binds it (other packages' tests run beside these): on
	// "Address already in use" the server starts again on fresh ports.
	for try := 1; ; try++ {
		s := &Server{Dir: t.TempDir(), t: t}
		s.args = append([]string{bin}, s.arguments(opts)...)
		err := s.start()
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
		if !errors.Is(err, errPortTaken) || try == 3 {
			t.Fatal(err)
		}
	}
}

// arguments picks the server's free ports (and, in a Cluster, its bus port:
// Redis would otherwise take the port plus 10000, which nobody checked) and
// returns redis-server's arguments.
func (s *Server) arguments(opts Options) []string {
	s.Addr = testutil.FreeAddr(s.t)
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{
		"--port", port, "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	if opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	if opts.Cluster {
		_, bus, _ := net.SplitHostPort(testutil.FreeAddr(s.t))
		args = append(args, "--cluster-enabled", "yes", "--cluster-port", bus,
			"--cluster-config-file", filepath.Join(s.Dir, "nodes.conf"))
	}
	return append(args, opts.Extra...)
}

// errPortTaken is start's error when a port was taken before the server
// could bind it.
var errPortTaken = errors.New("a port was taken before redis-server bound it")

// start runs the server and waits until it answers.
func (s *Server) start() error {
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") { // up, with a password
			return nil
		}
		log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
		if bytes.Contains(log, []byte("Address already in use")) {
			return fmt.Errorf("redis-server on %s: %w\n%s", s.Addr, errPortTaken, log)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer within 10s: %v\n%s", s.Addr, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop terminates the server by pid and waits for it. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.Resume() // a paused server would not hear SIGTERM
	testutil.Stop(s.cmd, 10*time.Second)
	s.cmd = nil
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Pause stops the server with SIGSTOP, as a stall (a long fork, a swap
// storm, a stuck disk) would: connections stay open, nothing is answered.
// The test's cleanup resumes it before stopping it.
func (s *Server) Pause() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused server with SIGCONT.
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Restart starts the server again on the same port and directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// URL is the redis:// URL of database db on the server.
func (s *Server) URL(db int) string { return fmt.Sprintf("redis://%s/%d", s.Addr, db) }

// Client returns a client of database 0, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// StartCluster starts three cluster-enabled servers and joins them with
// redis-cli --cluster create, each node a master with a third of the slots.
// It returns the nodes' addresses.
func StartCluster(t testing.TB) []string {
	t.Helper()
	var nodes []*Server
	for range 3 {
		nodes = append(nodes, StartWith(t, Options{Cluster: true}))
	}
	joinCluster(t, nodes, 0)
	return (&Cluster{Nodes: nodes}).Addrs()
}

// joinCluster joins nodes into one Cluster with redis-cli --cluster create,
// replicas replicas a master, and waits until every node sees the cluster
// ok and every replica is in sync: one node saying ok is not enough, the
// others may still answer CLUSTERDOWN.
func joinCluster(t testing.TB, nodes []*Server, replicas int) {
	t.Helper()
	args := []string{"--cluster", "create"}
	for _, s := range nodes {
		args = append(args, s.Addr)
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitFor(t, 30*time.Second, "every node to see cluster_state:ok and its replicas in sync", func() bool {
		for _, s := range nodes {
			cl := redis.NewClient(&redis.Options{Addr: s.Addr})
			info, err := cl.ClusterInfo(context.Background()).Result()
			role, _ := cl.Do(context.Background(), "ROLE").Slice()
			cl.Close()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || len(role) == 0 {
				return false
			}
			if role[0] == "slave" && (len(role) < 4 || role[3] != "connected") {
				return false
			}
		}
		return true
	})
}

// StartSentinel starts a master and one Sentinel watching it under
// masterName, and returns the Sentinel's address.
func StartSentinel(t testing.TB, masterName string) string {
	t.Helper()
	master := Start(t)
	dir := t.TempDir()
	addr := testutil.FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(dir, "sentinel.conf")
	host, mport, _ := net.SplitHostPort(master.Addr)
	body := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 1\n", port, dir, masterName, host, mport)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed; run: apt-get update && apt-get install -y redis-server")
	}
	cmd := exec.Command(bin, conf, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis sentinel: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	s := redis.NewSentinelClient(&redis.Options{Addr: addr})
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.GetMasterAddrByName(context.Background(), masterName).Result()
		if err == nil && len(got) == 2 && net.JoinHostPort(got[0], got[1]) == master.Addr {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s did not report master %s within 10s: %v %v", addr, masterName, got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Cluster is a Redis Cluster of three masters, each with one replica, for
// failover tests: nodes notice a dead master after ClusterNodeTimeout and
// promote its replica.
type Cluster struct {
	Nodes []*Server
	t     testing.TB
}

// ClusterNodeTimeout is cluster-node-timeout in the failover cluster: short,
// so that a test sees a promotion within a few seconds.
const ClusterNodeTimeout = 1000 * time.Millisecond

// StartClusterWithReplicas starts six cluster-enabled servers and joins them
// with redis-cli --cluster create --cluster-replicas 1.
func StartClusterWithReplicas(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	for range 6 {
		c.Nodes = append(c.Nodes, StartWith(t, Options{Cluster: true, Extra: []string{
			"--cluster-node-timeout", strconv.Itoa(int(ClusterNodeTimeout.Milliseconds())),
			"--cluster-replica-validity-factor", "0",
			"--repl-diskless-sync-delay", "0",
		}}))
	}
	joinCluster(t, c.Nodes, 1)
	return c
}

// Addrs are the addresses of every node.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		out[i] = s.Addr
	}
	return out
}

// MasterOf returns the node that a live node says serves key as master
// now, or nil while none can say.
func (c *Cluster) MasterOf(key string) *Server {
	for _, n := range c.Nodes {
		if n.cmd == nil {
			continue // killed
		}
		cl := redis.NewClient(&redis.Options{Addr: n.Addr, MaxRetries: -1})
		slot, err1 := cl.ClusterKeySlot(context.Background(), key).Result()
		slots, err2 := cl.ClusterSlots(context.Background()).Result()
		cl.Close()
		if err1 != nil || err2 != nil {
			continue
		}
		for _, r := range slots {
			if int64(r.Start) > slot || slot > int64(r.End) || len(r.Nodes) == 0 {
				continue
			}
			for _, s := range c.Nodes {
				if s.Addr == r.Nodes[0].Addr {
					return s
				}
			}
		}
	}
	return nil
}

// Sentinels is a master, one replica and three Sentinels (quorum 2)
// watching them under one name, for failover tests.
type Sentinels struct {
	Name    string
	Master  *Server
	Replica *Server
	Addrs   []string // the Sentinels
}

// StartSentinels starts a master, a replica of it and three Sentinels that
// call the master down after 500 ms and fail over to the replica.
func StartSentinels(t testing.TB, name string) *Sentinels {
	t.Helper()
	master := StartWith(t, Options{Extra: []string{"--repl-diskless-sync-delay", "0"}})
	host, mport, _ := net.SplitHostPort(master.Addr)
	replica := StartWith(t, Options{Extra: []string{"--replicaof", host, mport, "--repl-diskless-sync-delay", "0"}})
	g := &Sentinels{Name: name, Master: master, Replica: replica}
	for range 3 {
		dir := t.TempDir()
		addr := testutil.FreeAddr(t)
		_, port, _ := net.SplitHostPort(addr)
		conf := filepath.Join(dir, "sentinel.conf")
		body := fmt.Sprintf("port %s\nbind 127.0.0.1\ndir %s\nsentinel monitor %s %s %s 2\n"+
			"sentinel down-after-milliseconds %s 500\nsentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			port, dir, name, host, mport, name, name, name)
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", conf, "--sentinel", "--logfile", filepath.Join(dir, "sentinel.log"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis sentinel: %v", err)
		}
		t.Cleanup(func() { testutil.Stop(cmd, 5*time.Second) })
		g.Addrs = append(g.Addrs, addr)
	}
	waitFor(t, 20*time.Second, "the replica in sync and the Sentinels to know both and each other", func() bool {
		c := redis.NewClient(&redis.Options{Addr: replica.Addr})
		info, _ := c.Info(context.Background(), "replication").Result()
		c.Close()
		if !strings.Contains(info, "master_link_status:up") {
			return false
		}
		for _, a := range g.Addrs {
			s := redis.NewSentinelClient(&redis.Options{Addr: a})
			m, err := s.Master(context.Background(), name).Result()
			s.Close()
			if err != nil || m["num-slaves"] != "1" || m["num-other-sentinels"] != "2" {
				return false
			}
		}
		return true
	})
	return g
}

// MasterAddr is the master's address as the first Sentinel reports it.
func (g *Sentinels) MasterAddr(t testing.TB) string {
	s := redis.NewSentinelClient(&redis.Options{Addr: g.Addrs[0]})
	defer s.Close()
	got, err := s.GetMasterAddrByName(context.Background(), g.Name).Result()
	if err != nil || len(got) != 2 {
		return ""
	}
	return net.JoinHostPort(got[0], got[1])
}

func waitFor(t testing.TB, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
