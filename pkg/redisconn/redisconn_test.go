package redisconn_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/redisconn"
)

func TestParseSentinel(t *testing.T) {
	fo, err := redisconn.ParseSentinel("redis-sentinel://:secret@s1:26379,s2,s3:26380/ff-main?db=2&sentinel_password=sp")
	if err != nil {
		t.Fatal(err)
	}
	if fo.MasterName != "ff-main" || strings.Join(fo.SentinelAddrs, ",") != "s1:26379,s2:26379,s3:26380" ||
		fo.Password != "secret" || fo.DB != 2 || fo.SentinelPassword != "sp" {
		t.Fatalf("parsed %+v", fo)
	}
	for name, bad := range map[string]string{
		"no primary name":   "redis-sentinel://s1:26379",
		"no sentinel":       "redis-sentinel:///ff-main",
		"bad db":            "redis-sentinel://s1/ff-main?db=x",
		"unknown parameter": "redis-sentinel://s1/ff-main?dbb=1",
	} {
		if err := redisconn.Validate(bad); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
	if err := redisconn.Validate("redis://127.0.0.1:6379/0"); err != nil {
		t.Errorf("a plain URL: %v", err)
	}
}

func TestParseCluster(t *testing.T) {
	co, err := redisconn.ParseCluster("redis-cluster://u:secret@n1:7000,n2,n3:7002?dial_timeout=3s&state_reload_interval=5s")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(co.Addrs, ",") != "n1:7000,n2:6379,n3:7002" || co.Username != "u" || co.Password != "secret" ||
		co.DialTimeout != 3*time.Second || co.ClusterStateReloadInterval != 5*time.Second || co.TLSConfig != nil {
		t.Fatalf("parsed %+v", co)
	}
	co, err = redisconn.ParseCluster("rediss-cluster://n1:7000")
	if err != nil {
		t.Fatal(err)
	}
	if co.TLSConfig == nil || co.ClusterStateReloadInterval != redisconn.DefaultClusterReload {
		t.Fatalf("rediss-cluster: TLS %v, reload %v", co.TLSConfig, co.ClusterStateReloadInterval)
	}
	for name, bad := range map[string]string{
		"no seed":           "redis-cluster://",
		"a database":        "redis-cluster://n1:7000/2",
		"unknown parameter": "redis-cluster://n1:7000?dbb=1",
		"bad reload":        "redis-cluster://n1:7000?state_reload_interval=soon",
	} {
		if err := redisconn.Validate(bad); err == nil {
			t.Errorf("%s: %q accepted", name, bad)
		}
	}
	c, err := redisconn.Open("redis-cluster://127.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("Open(redis-cluster://) = %T, want a cluster client", c)
	}
	if got := redisconn.Redacted("redis-sentinel://:pw@s1/m?sentinel_password=sp"); strings.Contains(got, "pw") || strings.Contains(got, "sp&") || strings.HasSuffix(got, "=sp") {
		t.Errorf("Redacted left a password: %s", got)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// server starts redis-server with args and stops (and reaps) it at cleanup.
func server(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSentinelClientFollowsAFailover runs a primary, a replica and a sentinel
// (redis-server --sentinel) on free ports: the client from a redis-sentinel://
// URL writes to the primary, and after SENTINEL FAILOVER writes to the promoted
// replica without being rebuilt.
func TestSentinelClientFollowsAFailover(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is required (scripts/ensure-services.sh installs it)")
		}
		t.Skip("SKIPPING: redis-server not installed")
	}
	ctx := context.Background()
	primary, replica, sentinel := freePort(t), freePort(t), freePort(t)
	common := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no"}
	server(t, append([]string{"--port", fmt.Sprint(primary)}, common...)...)
	server(t, append([]string{"--port", fmt.Sprint(replica), "--replicaof", "127.0.0.1", fmt.Sprint(primary)}, common...)...)
	conf := filepath.Join(t.TempDir(), "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %d\nbind 127.0.0.1\n"+
		"sentinel monitor ff-main 127.0.0.1 %d 1\nsentinel down-after-milliseconds ff-main 1000\n"+
		"sentinel failover-timeout ff-main 5000\n", sentinel, primary)), 0o600); err != nil {
		t.Fatal(err)
	}
	server(t, conf, "--sentinel")

	replicaClient := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", replica)})
	defer func() { _ = replicaClient.Close() }()
	waitFor(t, "the replica to sync", 20*time.Second, func() bool {
		info, err := replicaClient.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	sc := redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sentinel)})
	defer func() { _ = sc.Close() }()
	waitFor(t, "the sentinel to see the replica", 20*time.Second, func() bool {
		r, err := sc.Replicas(ctx, "ff-main").Result()
		return err == nil && len(r) == 1
	})

	c, err := redisconn.Open(fmt.Sprintf("redis-sentinel://127.0.0.1:%d/ff-main", sentinel))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Set(ctx, "ff:test", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// The sentinel refuses (NOGOODSLAVE) until it has fresh INFO from the
	// replica: ask again until it starts.
	waitFor(t, "the sentinel to start a failover", 30*time.Second, func() bool {
		return sc.Failover(ctx, "ff-main").Err() == nil
	})
	waitFor(t, "the replica's promotion", 30*time.Second, func() bool {
		info, err := replicaClient.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "role:master")
	})
	// Right after the promotion the old primary may still take a write until the
	// sentinel demotes it; the client must end up writing to the new primary.
	n := 0
	waitFor(t, "writes through the sentinel client to reach the promoted replica", 30*time.Second, func() bool {
		n++
		want := fmt.Sprintf("after-%d", n)
		if c.Set(ctx, "ff:test", want, 0).Err() != nil {
			return false
		}
		v, err := replicaClient.Get(ctx, "ff:test").Result()
		return err == nil && v == want
	})
}
