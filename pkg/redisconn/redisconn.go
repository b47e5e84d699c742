// Package redisconn opens the Redis client of a FLAGFORGE_REDIS_URL, for one node
// (redis://, rediss://, unix://), a Sentinel-managed primary (redis-sentinel://)
// or a Redis Cluster (redis-cluster://, rediss-cluster://), so the publisher and
// the evaluators follow a failover without a restart. Key names live in
// pkg/rediskeys.
//
// Sentinel URL: redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER[?db=N&sentinel_password=P]
// The user and password are the data nodes'; sentinel_password, when the
// sentinels have one.
//
// Cluster URL: redis-cluster://[[user]:password@]host:port[,host:port...][?option=value...]
// The hosts are seed nodes (the client discovers the rest and follows slot moves
// and failovers); rediss-cluster:// uses TLS with the system roots. Options are
// go-redis's cluster URL parameters (dial_timeout, read_timeout, pool_size, ...)
// plus state_reload_interval (default DefaultClusterReload): how often the client
// re-reads the slot map while it is in use. A master that dies answers no MOVED,
// so that re-read is how the client finds the promoted replica. A cluster has no
// databases: no path.
package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelScheme starts a Sentinel URL.
const SentinelScheme = "redis-sentinel"

// ClusterScheme and ClusterTLSScheme start a Redis Cluster URL.
const (
	ClusterScheme    = "redis-cluster"
	ClusterTLSScheme = "rediss-cluster"
)

// DefaultClusterReload is how often a cluster client re-reads the slot map while
// in use (go-redis's own default is a minute, a minute of failed writes after a
// master dies).
const DefaultClusterReload = 2 * time.Second

// Schemes lists every URL scheme Open accepts.
var Schemes = []string{"redis", "rediss", "unix", SentinelScheme, ClusterScheme, ClusterTLSScheme}

// Open returns a client for rawURL. With a Sentinel URL the client asks the
// sentinels for the current primary and reconnects to the new one after a
// failover; with a cluster URL it routes each command to the master of its
// key's slot and follows MOVED/ASK redirections and failovers.
func Open(rawURL string) (redis.UniversalClient, error) {
	switch {
	case strings.HasPrefix(rawURL, SentinelScheme+"://"):
		fo, err := ParseSentinel(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewFailoverClient(fo), nil
	case IsCluster(rawURL):
		co, err := ParseCluster(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClusterClient(co), nil
	default:
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opts), nil
	}
}

// IsCluster reports whether rawURL names a Redis Cluster.
func IsCluster(rawURL string) bool {
	return strings.HasPrefix(rawURL, ClusterScheme+"://") || strings.HasPrefix(rawURL, ClusterTLSScheme+"://")
}

// Validate checks rawURL without connecting.
func Validate(rawURL string) error {
	switch {
	case strings.HasPrefix(rawURL, SentinelScheme+"://"):
		_, err := ParseSentinel(rawURL)
		return err
	case IsCluster(rawURL):
		_, err := ParseCluster(rawURL)
		return err
	}
	_, err := redis.ParseURL(rawURL)
	return err
}

// ParseCluster parses a redis-cluster:// or rediss-cluster:// URL.
func ParseCluster(rawURL string) (*redis.ClusterOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis cluster URL: %w", err)
	}
	scheme := "redis"
	switch u.Scheme {
	case ClusterScheme:
	case ClusterTLSScheme:
		scheme = "rediss"
	default:
		return nil, fmt.Errorf("redis cluster URL: scheme %q, want %s or %s", u.Scheme, ClusterScheme, ClusterTLSScheme)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		return nil, fmt.Errorf("redis cluster URL: path %q: a cluster has no databases", p)
	}
	var addrs []string
	for _, a := range strings.Split(u.Host, ",") {
		if a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			a += ":6379"
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("redis cluster URL: at least one seed host:port is required")
	}
	q := u.Query()
	reload := DefaultClusterReload
	if v := q.Get("state_reload_interval"); v != "" {
		if reload, err = time.ParseDuration(v); err != nil || reload <= 0 {
			return nil, fmt.Errorf("redis cluster URL: state_reload_interval %q is not a positive duration", v)
		}
		q.Del("state_reload_interval")
	}
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	std := url.URL{Scheme: scheme, User: u.User, Host: addrs[0], RawQuery: q.Encode()}
	co, err := redis.ParseClusterURL(std.String())
	if err != nil {
		return nil, fmt.Errorf("redis cluster URL: %w", err)
	}
	co.ClusterStateReloadInterval = reload
	return co, nil
}

// ParseSentinel parses a redis-sentinel:// URL.
func ParseSentinel(rawURL string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis sentinel URL: %w", err)
	}
	if u.Scheme != SentinelScheme {
		return nil, fmt.Errorf("redis sentinel URL: scheme %q, want %s", u.Scheme, SentinelScheme)
	}
	master := strings.Trim(u.Path, "/")
	if master == "" || strings.Contains(master, "/") {
		return nil, errors.New("redis sentinel URL: name the primary as the path: redis-sentinel://host:26379/mymaster")
	}
	var addrs []string
	for _, a := range strings.Split(u.Host, ",") {
		if a == "" {
			continue
		}
		if !strings.Contains(a, ":") {
			a += ":26379"
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, errors.New("redis sentinel URL: at least one sentinel host:port is required")
	}
	fo := &redis.FailoverOptions{MasterName: master, SentinelAddrs: addrs}
	if u.User != nil {
		fo.Username = u.User.Username()
		fo.Password, _ = u.User.Password()
	}
	q := u.Query()
	if v := q.Get("db"); v != "" {
		if fo.DB, err = strconv.Atoi(v); err != nil || fo.DB < 0 {
			return nil, fmt.Errorf("redis sentinel URL: db %q is not a database number", v)
		}
	}
	fo.SentinelPassword = q.Get("sentinel_password")
	for k := range q {
		if k != "db" && k != "sentinel_password" {
			return nil, fmt.Errorf("redis sentinel URL: unknown parameter %q (db, sentinel_password)", k)
		}
	}
	return fo, nil
}

// Redacted returns rawURL with any password replaced by "xxxxx", for logs.
func Redacted(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable redis URL)"
	}
	q := u.Query()
	if q.Has("sentinel_password") {
		q.Set("sentinel_password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}
