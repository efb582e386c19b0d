#!/usr/bin/env bash
# Installs (when missing) the Kafka clients the compatibility tests in
# tests/compat drive besides the Go ones: kcat and confluent-kafka-python
# (both librdkafka) from Debian's packages, and KafkaJS from the npm registry
# (versions pinned in tests/compat/kafkajs/package-lock.json); and
# Prometheus with promtool from Debian's packages for tests/observability.
# Safe to run
# again: it does nothing when all are already in place. Needs root for
# apt-get on Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "install-test-tools: $*" >&2; }

install_kcat() {
	command -v kcat >/dev/null && return 0
	log "installing kcat from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq kcat >/dev/null
	command -v kcat >/dev/null || { log "kcat install failed"; return 1; }
}

# Debian's package installs the module for Debian's /usr/bin/python3, which
# the test uses even when another python3 comes first on PATH.
install_confluent_kafka() {
	/usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null && return 0
	log "installing python3-confluent-kafka from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq python3-confluent-kafka >/dev/null
	/usr/bin/python3 -c 'import confluent_kafka' || { log "python3-confluent-kafka install failed"; return 1; }
}

install_kafkajs() {
	local dir=tests/compat/kafkajs
	local stamp=$dir/node_modules/.install-stamp
	command -v node >/dev/null || { log "node is missing (want v20)"; return 1; }
	command -v npm >/dev/null || { log "npm is missing (it comes with node)"; return 1; }
	# The stamp holds the lock file's checksum, so a changed lock reinstalls.
	local want
	want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	log "npm ci in $dir"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
	echo "$want" >"$stamp"
}

# Debian's prometheus package starts a service on install where systemd
# runs; the tests run their own prometheus on a free port.
install_prometheus() {
	command -v prometheus >/dev/null && command -v promtool >/dev/null && return 0
	log "installing prometheus (and promtool) from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	command -v promtool >/dev/null || { log "prometheus install failed"; return 1; }
}

install_kcat
install_confluent_kafka
install_kafkajs
install_prometheus
