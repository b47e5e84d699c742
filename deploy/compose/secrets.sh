#!/usr/bin/env bash
# Creates what deploy/compose/compose.yaml needs and must never be committed:
#   secrets/signing-key.pem, secrets/signing-key.pub.pem  manifest signing key pair
#   .env   POSTGRES_PASSWORD, MINIO_ROOT_PASSWORD, FLAGFORGE_SYNC_TOKEN,
#          FLAGFORGE_BOOTSTRAP_TOKEN (the first owner's API token)
# Idempotent: existing files are kept. Uses the Go toolchain when present, else the
# control-plane image (make images) to generate the key pair.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
here=$PWD
root=$(cd ../.. && pwd)

random() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }

mkdir -p secrets
chmod 0700 secrets
if [[ ! -f secrets/signing-key.pem ]]; then
  if command -v go >/dev/null; then
    (cd "$root" && go run ./services/controlplane/cmd/controlplane keys generate -dir "$here/secrets")
  else
    docker run --rm --user "$(id -u):$(id -g)" -v "$here/secrets:/out" \
      "${FLAGFORGE_CONTROLPLANE_IMAGE:-flagforge/controlplane:dev}" keys generate -dir /out
  fi
fi
# The containers run as 65532: they must be able to read the mounted key files.
chmod 0644 secrets/signing-key.pem secrets/signing-key.pub.pem

if [[ ! -f .env ]]; then
  umask 077
  cat >.env <<ENV
POSTGRES_PASSWORD=$(random 32)
MINIO_ROOT_PASSWORD=$(random 32)
FLAGFORGE_SYNC_TOKEN=$(random 48)
FLAGFORGE_BOOTSTRAP_TOKEN=ffat_$(random 40)
ENV
fi
echo "secrets in $here/secrets and $here/.env (keep them out of git)"
