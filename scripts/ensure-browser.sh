#!/usr/bin/env bash
# Make sure a headless-capable Chromium is installed (the Debian package; tests
# drive it with playwright-core and never download a browser). Idempotent: does
# nothing when it is already there. Prints the browser's path on stdout.
#
#   scripts/ensure-browser.sh        (used by make test and the browser tests)
set -euo pipefail

find_browser() {
  local b
  for b in "${FLAGFORGE_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    [[ -n $b && -x $b ]] && { printf '%s\n' "$b"; return 0; }
  done
  return 1
}

if find_browser; then exit 0; fi

if ! command -v apt-get >/dev/null; then
  echo "ensure-browser.sh: no Chromium and no apt-get; install Chromium and set FLAGFORGE_CHROMIUM" >&2
  exit 1
fi
SUDO=
[[ $(id -u) -eq 0 ]] || SUDO=sudo
echo "ensure-browser.sh: installing chromium (Debian package)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || true
$SUDO apt-get install -y -qq chromium >&2
find_browser
