package platform

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// migrateSlot moves slot from master from to another master the way
// `redis-cli --cluster reshard` does (CLUSTER SETSLOT IMPORTING / MIGRATING,
// MIGRATE of every key, then SETSLOT NODE on every master), stopping after the
// keys moved and before the slot is handed over: while it is paused, during
// (called then), the source answers ASK for the moved keys. It returns the
// destination's address; afterwards every node answers MOVED until clients
// reload the slot map.
func (c *redisCluster) migrateSlot(slot int64, from string, during func()) string {
	c.t.Helper()
	ctx := context.Background()
	src := c.node(from)
	shards, err := c.client.ClusterShards(ctx).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	var masters []string
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role == "master" && n.Health == "online" && len(sh.Slots) > 0 {
				masters = append(masters, fmt.Sprintf("%s:%d", n.IP, n.Port))
			}
		}
	}
	to := ""
	for _, m := range masters {
		if m != from {
			to = m
			break
		}
	}
	if to == "" {
		c.t.Fatalf("no other master than %s to migrate slot %d to: %v", from, slot, masters)
	}
	dst := c.node(to)
	srcID, err := src.ClusterMyID(ctx).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	dstID, err := dst.ClusterMyID(ctx).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	do := func(n *redis.Client, args ...any) {
		c.t.Helper()
		if err := n.Do(ctx, args...).Err(); err != nil {
			c.t.Fatalf("%v on %s: %v", args, n.Options().Addr, err)
		}
	}
	do(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID)
	do(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID)
	host, port, _ := strings.Cut(to, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		if err != nil {
			c.t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		do(src, args...)
	}
	during()
	for _, m := range append([]string{to, from}, masters...) {
		do(c.node(m), "CLUSTER", "SETSLOT", slot, "NODE", dstID)
	}
	c.waitHealthy()
	return to
}

// ownerOf is the online master serving slot, as the cluster reports it
// (replica or not: after a failover the promoted master may have none).
func (c *redisCluster) ownerOf(slot int64) string {
	c.t.Helper()
	shards, err := c.client.ClusterShards(context.Background()).Result()
	if err != nil {
		c.t.Fatal(err)
	}
	master, _ := servingSlot(shards, slot)
	if master == "" {
		c.t.Fatalf("no online master serves slot %d: %+v", slot, shards)
	}
	return master
}
