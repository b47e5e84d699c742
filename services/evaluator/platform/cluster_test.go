package platform

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/rediskeys"
)

// redisCluster is a Redis Cluster of three masters, each with one replica, run by
// the test from redis-server (--cluster-enabled yes) on free ports and created
// with redis-cli --cluster create. Every node stops at the end of the test.
type redisCluster struct {
	t      *testing.T
	dir    string
	addrs  []string // masters first (as created), then replicas
	procs  map[string]*proc
	client *redis.ClusterClient
}

func startRedisCluster(t *testing.T) *redisCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server not found in PATH (scripts/ensure-services.sh installs it): %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		unavailable(t, "redis-cli not found in PATH (scripts/ensure-services.sh installs it): %v", err)
	}
	c := &redisCluster{t: t, dir: t.TempDir(), procs: map[string]*proc{}}
	for range 6 {
		c.startNode(bin)
	}
	args := append([]string{"--cluster", "create"}, c.addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	c.waitHealthy()
	c.client = redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs[:3], ClusterStateReloadInterval: time.Second})
	t.Cleanup(func() { _ = c.client.Close() })
	return c
}

// startNode starts one cluster node on free ports. The cluster bus gets its own
// free port (cluster-port): port+10000, the default, may be taken or beyond
// 65535. A free port can be taken between choosing and binding it (the other
// nodes' connections use ephemeral ports too): a node that exits at start is
// started again on other ports, up to 5 times.
func (c *redisCluster) startNode(bin string) {
	c.t.Helper()
	for attempt := 1; ; attempt++ {
		port, bus := freePort(c.t), freePort(c.t)
		if port == bus {
			continue
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p := start(c.t, "redis-cluster "+addr, bin, nil,
			"--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dir", c.dir, "--cluster-enabled", "yes", "--cluster-port", fmt.Sprint(bus),
			"--cluster-config-file", filepath.Join(c.dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "1500")
		if pingable(addr, p.done) {
			c.procs[addr] = p
			c.addrs = append(c.addrs, addr)
			return
		}
		p.Stop()
		if attempt == 5 {
			c.t.Fatalf("redis node %s does not answer PING (5 attempts):\n%s", addr, tail(p.logs.String(), 20))
		}
	}
}

// pingable waits up to 10 s for a PONG from addr; false at once when the
// process ends (exited is closed).
func pingable(addr string, exited <-chan struct{}) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return false
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			continue
		}
		_, _ = conn.Write([]byte("PING\r\n"))
		buf := make([]byte, 7)
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, _ := conn.Read(buf)
		_ = conn.Close()
		if strings.HasPrefix(string(buf[:n]), "+PONG") {
			return true
		}
	}
	return false
}

// URL is the cluster's FLAGFORGE_REDIS_URL: the three masters as seeds.
func (c *redisCluster) URL() string { return "redis-cluster://" + strings.Join(c.addrs[:3], ",") }

// node is a client of one node.
func (c *redisCluster) node(addr string) *redis.Client {
	n := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	c.t.Cleanup(func() { _ = n.Close() })
	return n
}

// waitHealthy waits until every running node reports cluster_state:ok and sees
// all 16384 slots served, and every replica's link to its master is up.
func (c *redisCluster) waitHealthy() {
	c.t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range c.addrs {
		if c.procs[addr].Exited() {
			continue
		}
		n := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		for {
			info, err := n.ClusterInfo(ctx).Result()
			repl, rerr := n.Info(ctx, "replication").Result()
			if err == nil && rerr == nil && strings.Contains(info, "cluster_state:ok") &&
				strings.Contains(info, "cluster_slots_ok:16384") &&
				(strings.Contains(repl, "role:master") || strings.Contains(repl, "master_link_status:up")) {
				break
			}
			if time.Now().After(deadline) {
				_ = n.Close()
				c.t.Fatalf("redis cluster node %s not healthy after 30s: %v\n%s\n%s", addr, err, info, repl)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = n.Close()
	}
}

// masterOf returns the address of the master serving key's slot and of an
// online replica of it, as the cluster reports them. A replica still loading its
// first full copy from the master (health "loading") is waited for, up to 60 s.
func (c *redisCluster) masterOf(key string) (master, replica string) {
	c.t.Helper()
	ctx := context.Background()
	slot, err := c.client.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	var shards []redis.ClusterShard
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if shards, err = c.client.ClusterShards(ctx).Result(); err != nil {
			c.t.Fatal(err)
		}
		if master, replica = servingSlot(shards, slot); master != "" && replica != "" {
			return master, replica
		}
		if time.Now().After(deadline) {
			break
		}
	}
	c.t.Fatalf("no master with an online replica serves slot %d of %s within 60 s: %+v", slot, key, shards)
	return "", ""
}

// servingSlot is the online master of slot and one online replica of it.
func servingSlot(shards []redis.ClusterShard, slot int64) (master, replica string) {
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if r.Start > slot || slot > r.End {
				continue
			}
			master, replica = "", ""
			for _, n := range sh.Nodes {
				addr := fmt.Sprintf("%s:%d", n.IP, n.Port)
				switch {
				case n.Health != "online":
				case n.Role == "master":
					master = addr
				case replica == "":
					replica = addr
				}
			}
			return master, replica
		}
	}
	return "", ""
}

// kill stops master with SIGKILL (no chance to hand over), waits until its
// replica has been promoted by the other masters' vote.
func (c *redisCluster) kill(master, replica string) {
	c.t.Helper()
	p := c.procs[master]
	p.stop = syscall.SIGKILL
	p.Stop()
	n := c.node(replica)
	deadline := time.Now().Add(30 * time.Second)
	for {
		repl, err := n.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(repl, "role:master") {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("replica %s not promoted within 30s of killing %s: %v %s", replica, master, err, repl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.waitHealthy()
	c.client.ReloadState(context.Background())
}

// TestRedisClusterCarriesManifestsThroughFailovers runs the control plane and an
// evaluator on a real 3-master Redis Cluster (redis-cluster:// URL):
//
//	(a) the environment's hash is hash-tagged (ff:env:{acme/web/production}), so the
//	    publisher's script runs on one slot, and a change reaches the evaluator
//	    through the cluster's pub/sub (the periodic re-read is 1 minute away);
//	(b) the master holding the environment's slot is killed: once its replica is
//	    promoted, the next change is served, and evaluations never fail meanwhile;
//	(c) the same for the master of the channel's slot, where the evaluator's
//	    subscription lives (when that is another master);
//	(d) a forged version field in the hash is repaired by the next publish;
//	(e) the environment's slot is resharded to another master while serving
//	    (redis-cli --cluster reshard's steps): with the keys moved and the slot
//	    still migrating (ASK) and after the hand-over (MOVED), changes are
//	    published and served and evaluations never fail.
func TestRedisClusterCarriesManifestsThroughFailovers(t *testing.T) {
	cluster := startRedisCluster(t)
	pl := newPlatformOn(t, false, cluster)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "cluster", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})
	pl.setFlag(true)

	e := pl.startEvaluatorWith("evaluator", t.TempDir(), "FLAGFORGE_RESYNC_INTERVAL=1m")
	pl.waitValue(true, 20*time.Second, e)

	// (a) One slot per environment.
	ctx := context.Background()
	keys := rediskeys.Keys{}
	target := org + "/" + project + "/" + environment
	hashKey := keys.Env(target)
	if hashKey != "ff:env:{acme/web/production}" {
		t.Fatalf("environment hash named %q", hashKey)
	}
	if n, err := cluster.client.Exists(ctx, hashKey).Result(); err != nil || n != 1 {
		t.Fatalf("%s exists = %d, %v", hashKey, n, err)
	}
	hashSlot, _ := cluster.client.ClusterKeySlot(ctx, hashKey).Result()
	tagSlot, _ := cluster.client.ClusterKeySlot(ctx, target).Result()
	if hashSlot != tagSlot {
		t.Fatalf("%s is in slot %d, its environment's tag in %d", hashKey, hashSlot, tagSlot)
	}
	pl.setFlag(false)
	pl.waitValue(false, 5*time.Second, e) // pub/sub: the re-read is a minute away

	// Evaluations run throughout the failovers; none may fail.
	stop := make(chan struct{})
	done := make(chan struct{})
	var calls, failures int
	var firstErr error
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			calls++
			if _, err := pl.evaluate(e); err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// (b) The environment's master dies.
	envMaster, envReplica := cluster.masterOf(hashKey)
	chanMaster, chanReplica := cluster.masterOf(keys.Channel())
	cluster.kill(envMaster, envReplica)
	pl.setFlag(true)
	pl.waitValue(true, 20*time.Second, e)

	// (c) The channel's master dies (where the evaluator subscribed).
	if chanMaster != envMaster {
		cluster.kill(chanMaster, chanReplica)
		pl.setFlag(false)
		pl.waitValue(false, 20*time.Second, e)
	} else {
		t.Logf("the channel's slot is on the environment's master (%s): (c) was covered by (b)", envMaster)
		pl.setFlag(false)
		pl.waitValue(false, 20*time.Second, e)
	}
	close(stop)
	<-done
	t.Logf("%d evaluations during the failovers, %d failed", calls, failures)
	if failures != 0 {
		t.Errorf("%d of %d evaluations failed during the failovers; first: %v", failures, calls, firstErr)
	}

	// (d) A forged version field far above the truth.
	if err := cluster.client.HSet(ctx, hashKey, "version", "999").Err(); err != nil {
		t.Fatal(err)
	}
	pl.setFlag(true)
	pl.waitValue(true, 10*time.Second, e)
	field, err := cluster.client.HGet(ctx, hashKey, "version").Result()
	if err != nil || field == "999" {
		t.Fatalf("version field after the repair: %q, %v", field, err)
	}

	// (e) Resharding the environment's slot while serving.
	stop, done = make(chan struct{}), make(chan struct{})
	calls, failures, firstErr = 0, 0, nil
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			calls++
			if _, err := pl.evaluate(e); err != nil {
				failures++
				if firstErr == nil {
					firstErr = err
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	from := cluster.ownerOf(hashSlot)
	to := cluster.migrateSlot(hashSlot, from, func() {
		// The keys are on the destination, the slot still the source's: the
		// source answers ASK; the publisher and the evaluator follow it.
		err := cluster.node(from).HGet(ctx, hashKey, "version").Err()
		if err == nil || !strings.HasPrefix(err.Error(), "ASK ") {
			t.Errorf("HGET on the migrating source: %v, want an ASK redirection", err)
		}
		pl.setFlag(false)
		pl.waitValue(false, 20*time.Second, e)
	})
	// The slot is the destination's: the others answer MOVED until the clients
	// reload their slot map.
	if err := cluster.node(from).HGet(ctx, hashKey, "version").Err(); err == nil || !strings.HasPrefix(err.Error(), "MOVED ") {
		t.Errorf("HGET on the former owner: %v, want a MOVED redirection", err)
	}
	pl.setFlag(true)
	pl.waitValue(true, 20*time.Second, e)
	close(stop)
	<-done
	if now := cluster.ownerOf(hashSlot); now != to {
		t.Errorf("slot %d is served by %s after the migration, want %s", hashSlot, now, to)
	}
	t.Logf("slot %d of %s moved from %s to %s: %d evaluations, %d failed", hashSlot, hashKey, from, to, calls, failures)
	if failures != 0 {
		t.Errorf("%d of %d evaluations failed during the resharding; first: %v", failures, calls, firstErr)
	}
}
