#!/usr/bin/env bash
# Fails when the committed console assets (dashboard/dist/) are not what `npm ci && npm run build`
# makes from dashboard/src: rebuild and commit dist/ with the sources. Also runs the front end's
# unit tests (npm test: request signing, with and without WebCrypto).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root/dashboard"
npm ci --no-audit --no-fund
npm run build
npm test
cd "$root"
status=0
if ! git diff --exit-code --stat -- dashboard/dist; then
  echo "dashboard/dist is stale: run 'npm ci && npm run build' in dashboard/ and commit dist/" >&2
  status=1
fi
untracked="$(git ls-files --others --exclude-standard -- dashboard/dist)"
if [ -n "$untracked" ]; then
  echo "dashboard/dist has files the commit lacks:" >&2
  echo "$untracked" >&2
  status=1
fi
if [ "$status" = 0 ]; then echo "dashboard/dist is up to date"; fi
exit "$status"
