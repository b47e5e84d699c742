// Package redisconn opens the Redis client of a FLAGFORGE_REDIS_URL, for one node
// (redis://, rediss://, unix://) or a Sentinel-managed primary
// (redis-sentinel://), so the publisher and the evaluators follow a failover
// without a restart.
//
// Sentinel URL: redis-sentinel://[[user]:password@]host:port[,host:port...]/MASTER[?db=N&sentinel_password=P]
// The user and password are the data nodes'; sentinel_password, when the
// sentinels have one.
package redisconn

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// SentinelScheme starts a Sentinel URL.
const SentinelScheme = "redis-sentinel"

// Open returns a client for rawURL. With a Sentinel URL the client asks the
// sentinels for the current primary and reconnects to the new one after a
// failover.
func Open(rawURL string) (*redis.Client, error) {
	if !strings.HasPrefix(rawURL, SentinelScheme+"://") {
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(opts), nil
	}
	fo, err := ParseSentinel(rawURL)
	if err != nil {
		return nil, err
	}
	return redis.NewFailoverClient(fo), nil
}

// Validate checks rawURL without connecting.
func Validate(rawURL string) error {
	if strings.HasPrefix(rawURL, SentinelScheme+"://") {
		_, err := ParseSentinel(rawURL)
		return err
	}
	_, err := redis.ParseURL(rawURL)
	return err
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
