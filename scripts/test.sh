#!/usr/bin/env bash
# Runs the whole test suite on a fresh Debian machine: installs and starts
# PostgreSQL and the S3-compatible server (scripts/services.sh), then vets and
# runs every Go test with the race detector against them. Tests that need a
# service fail (never skip) here, because STREAMHOUSE_REQUIRE_SERVICES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

# Its own services, so a run never disturbs services started by hand.
state=$(mktemp -d /tmp/streamhouse-test.XXXXXX)
export STREAMHOUSE_SERVICES_DIR=$state
trap 'scripts/services.sh stop; rm -rf "$state"' EXIT
scripts/services.sh start
# kcat, confluent-kafka and KafkaJS for tests/compat (the Kafka client
# compatibility tests); prometheus and promtool for tests/observability.
scripts/install-test-tools.sh
# shellcheck disable=SC1091
source "$state/env"
export STREAMHOUSE_REQUIRE_SERVICES=1

echo "== go vet"
go vet ./...
echo "== benchmark report tool (its own module)"
(cd scripts/bench/report && go vet ./... && go test -count=1 ./...)
echo "== deployment files: Dockerfile, docker-compose.yml, Helm chart (their own module)"
(cd tests/deploy && go vet ./... && go test -count=1 -timeout 20m ./...)
echo "== go test -race"
go test -race -count=1 -timeout 30m "$@" ./...
