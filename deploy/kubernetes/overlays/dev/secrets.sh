#!/usr/bin/env bash
# Writes ./secrets for the dev overlay (never commit it): a signing key pair, the
# sync token, the bootstrap owner token and the in-cluster database password.
# Idempotent: existing files are kept.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
here=$PWD
root=$(cd ../../../.. && pwd)
random() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }
mkdir -p secrets && chmod 0700 secrets
if [[ ! -f secrets/signing-key.pem ]]; then
  (cd "$root" && go run ./services/controlplane/cmd/controlplane keys generate -dir "$here/secrets")
fi
if [[ ! -f secrets/postgresql.env ]]; then
  umask 077
  pw=$(random 32) sync=$(random 48)
  db="postgres://flagforge:$pw@postgresql:5432/flagforge?sslmode=disable"
  printf 'password=%s\n' "$pw" >secrets/postgresql.env
  printf 'database-url=%s\nmigrate-database-url=%s\nsync-token=%s\nbootstrap-token=ffat_%s\ns3-access-key=\ns3-secret-key=\n' \
    "$db" "$db" "$sync" "$(random 40)" >secrets/controlplane.env
  printf 'sync-token=%s\n' "$sync" >secrets/evaluator.env
  printf 'database-url=%s\n' "$db" >secrets/backup.env
fi
echo "dev secrets in $here/secrets"
