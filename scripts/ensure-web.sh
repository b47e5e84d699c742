#!/usr/bin/env bash
# Install the web console's npm packages (web/node_modules) from the committed
# lockfile, idempotently: `npm ci` runs only when package-lock.json changed since the
# last install. Never downloads a browser (Playwright uses the Debian Chromium:
# scripts/ensure-browser.sh). Used by make generate (protoc-gen-es), make web and
# make test.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../web"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
command -v npm >/dev/null || { echo "ensure-web.sh: npm (Node >= 20.19) is required" >&2; exit 1; }
stamp=node_modules/.flagforge-lock
if [[ -f $stamp ]] && cmp -s package-lock.json "$stamp"; then exit 0; fi
echo "ensure-web.sh: npm ci in web/" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
cp package-lock.json "$stamp"
