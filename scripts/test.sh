#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs and starts
# PostgreSQL and the S3-compatible server (scripts/services.sh), then vets and
# runs every Go test with the race detector against them. Tests that need a
# service fail (never skip) here, because STREAMHOUSE_REQUIRE_SERVICES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

state=${STREAMHOUSE_SERVICES_DIR:-/tmp/streamhouse-services}
export STREAMHOUSE_SERVICES_DIR=$state
scripts/services.sh start
trap 'scripts/services.sh stop' EXIT
# shellcheck disable=SC1091
source "$state/env"
export STREAMHOUSE_REQUIRE_SERVICES=1

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -count=1 -timeout 30m "$@" ./...
