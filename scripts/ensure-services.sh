#!/usr/bin/env bash
# ensure-services.sh makes sure the PostgreSQL and Redis servers the tests use are
# running on their standard local ports. Idempotent: checks first, starts a stopped
# server, installs only what is missing (Debian packages). Tests read their URLs from
# FLAGFORGE_TEST_POSTGRES_URL / FLAGFORGE_TEST_REDIS_URL; this script only looks after
# the local defaults.
set -euo pipefail

log() { echo "ensure-services: $*" >&2; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

apt_install() {
  log "installing $*"
  $SUDO apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

# PostgreSQL (only when the tests use the local default).
if [ -z "${FLAGFORGE_TEST_POSTGRES_URL:-}" ]; then
  if ! pg_up; then
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
    if [ -z "$ver" ]; then apt_install postgresql; ver=$(ls /etc/postgresql | sort -V | tail -1); fi
    log "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  pg_up || { log "PostgreSQL is not reachable on 127.0.0.1:5432"; exit 1; }
fi

# The PostgreSQL client tools (pg_dump, pg_restore, psql): the backup and disaster
# recovery tests run them against whichever server the tests use.
command -v pg_dump >/dev/null && command -v pg_restore >/dev/null && command -v psql >/dev/null || apt_install postgresql-client

# Redis (only when the tests use the local default).
if [ -z "${FLAGFORGE_TEST_REDIS_URL:-}" ]; then
  if ! redis_up; then
    command -v redis-server >/dev/null || apt_install redis-server
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp --logfile /tmp/flagforge-redis.log
    for _ in $(seq 1 30); do redis_up && break; sleep 0.2; done
  fi
  redis_up || { log "Redis is not reachable on 127.0.0.1:6379"; exit 1; }
fi
# redis-server and redis-cli themselves, whichever Redis the tests use: the Sentinel
# and Redis Cluster tests start their own nodes from them.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  apt_install redis-server redis-tools
fi
log "PostgreSQL and Redis are up"
