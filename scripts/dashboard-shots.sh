#!/usr/bin/env bash
# Renders the six Grafana dashboards of deploy/grafana/dashboards into
# docs/img/dashboard-<name>.png from a real run, for docs/operations.md:
#
#   scripts/dashboard-shots.sh                  # about 7 minutes
#   scripts/dashboard-shots.sh --duration 120 --keep
#
# It builds streamhouse, streamctl and scripts/dashboard-shots (the
# renderer), starts its own PostgreSQL and S3 server (scripts/services.sh
# with a services folder of its own), one agent on them (WAL on, GC and
# compaction every 5 s, objects unreferenced for 60 s deleted) and
# Debian's Prometheus scraping it every --scrape-interval seconds (with
# deploy/prometheus/alerts.yml loaded, as the shipped configuration does).
# Then --duration seconds of a workload touching every subsystem the
# dashboards watch, at a bounded rate (about 30 MB in all):
#   - streamctl perf produce: acks=all to `orders` (200 records/s of
#     512 B), acks=1 to `short` (through the WAL; retention.ms 10 s, so
#     retention deletes objects), transactions committed every second to
#     `txn`;
#   - streamctl perf consume: group `billing` reads `orders` as it grows,
#     group `audit` reads 1,000 records once and stops (its lag grows),
#     group `txn-audit` reads `txn` read_committed;
#   - every 2 s a keyed REST produce (ack none) to the compacted topic
#     `compacted`; every 10 s a REST consume, a SQL query and a schema
#     registry read;
#   - every 2 s a gRPC produce and consume (dashboard-shots grpc).
# Last, `dashboard-shots render` resolves each dashboard's variables as
# Grafana does (the scrape interval as the datasource's timeInterval),
# queries Prometheus's HTTP API for every target over the run, writes one
# HTML page per dashboard (inline SVG on Grafana's grid) and has headless
# Chromium (Debian's `chromium`, installed here when missing) take a
# --width pixel wide screenshot of it. A target without data fails the
# script with the list (the images are then left as they were).
#
# Needs: Go, scripts/install-test-tools.sh (prometheus, promtool), root for
# apt-get when chromium is missing. Everything it starts is stopped and its
# temporary folder removed on exit (--keep keeps the folder: logs, HTML).
#
# Options: --duration S (workload seconds, default 240), --scrape-interval
# S (default 5), --width PX (default 1600), --out DIR (default docs/img),
# --keep.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DURATION=240
SCRAPE=5
WIDTH=1600
OUT=$ROOT/docs/img
KEEP=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
while (($#)); do
	case $1 in
	--duration) DURATION=$2; shift ;;
	--scrape-interval) SCRAPE=$2; shift ;;
	--width) WIDTH=$2; shift ;;
	--out) OUT=$2; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) usage 0 ;;
	*) echo "dashboard-shots.sh: unknown option $1" >&2; usage 2 ;;
	esac
	shift
done
((DURATION >= 60 && DURATION <= 1800)) || { echo "dashboard-shots.sh: --duration must be 60..1800 seconds" >&2; exit 2; }
((SCRAPE >= 1 && SCRAPE <= 30)) || { echo "dashboard-shots.sh: --scrape-interval must be 1..30 seconds" >&2; exit 2; }

log() { echo "dashboard-shots: $*" >&2; }
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"
STARTED=$SECONDS

for t in go prometheus promtool; do
	command -v "$t" >/dev/null || { log "$t is missing: run scripts/install-test-tools.sh (prometheus, promtool)"; exit 1; }
done
CHROMIUM=$(command -v chromium || true)
if [ -z "$CHROMIUM" ]; then
	[ "$(id -u)" = 0 ] || { log "chromium is missing: apt-get install chromium (as root)"; exit 1; }
	log "installing chromium from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
	CHROMIUM=$(command -v chromium) || { log "chromium install failed"; exit 1; }
fi

WORK=$(mktemp -d /tmp/streamhouse-shots.XXXXXX)
chmod 755 "$WORK" # PostgreSQL's own user reaches its data folder inside
BIN=$WORK/bin
DATA=$WORK/data
LOGS=$WORK/logs
mkdir -p "$BIN" "$DATA" "$LOGS"
export STREAMHOUSE_SERVICES_DIR=$WORK/services

SERVER_PID=
PROM_PID=
WORKLOAD_PIDS=()
SERVICES=0
cleanup() {
	local rc=$?
	for p in "${WORKLOAD_PIDS[@]}"; do stop_pid "$p"; done
	[ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
	[ -n "$PROM_PID" ] && stop_pid "$PROM_PID"
	((SERVICES)) && "$ROOT/scripts/services.sh" stop
	if ((KEEP)); then
		log "kept $WORK (logs, HTML pages)"
	else
		rm -rf "$WORK"
	fi
	return $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "building streamhouse, streamctl and the renderer"
(cd "$ROOT" && go build -o "$BIN/streamhouse" ./cmd/streamhouse && go build -o "$BIN/streamctl" ./cmd/streamctl &&
	go build -o "$BIN/dashboard-shots" ./scripts/dashboard-shots)

log "starting PostgreSQL and the S3 server (own services in $STREAMHOUSE_SERVICES_DIR)"
SERVICES=1
"$ROOT/scripts/services.sh" start
# shellcheck disable=SC1091
source "$STREAMHOUSE_SERVICES_DIR/env"
BUCKET=streamhouse-shots
"$BIN/dashboard-shots" bucket -endpoint "$STREAMHOUSE_TEST_S3_ENDPOINT" -bucket "$BUCKET" \
	-access-key "$STREAMHOUSE_TEST_S3_ACCESS_KEY" -secret-key "$STREAMHOUSE_TEST_S3_SECRET_KEY"

log "starting streamhouse on S3 and PostgreSQL"
(cd "$DATA" && exec env HTTP_ADDR=127.0.0.1:0 GRPC_ADDR=127.0.0.1:0 KAFKA_ADDR=127.0.0.1:0 LOG_FORMAT=json \
	STREAMHOUSE_AGENT_ID=agent-1 STREAMHOUSE_CACHE="$DATA/cache" \
	S3_ENDPOINT="$STREAMHOUSE_TEST_S3_ENDPOINT" STREAMHOUSE_BUCKET="$BUCKET" AWS_REGION=us-east-1 \
	AWS_ACCESS_KEY_ID="$STREAMHOUSE_TEST_S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$STREAMHOUSE_TEST_S3_SECRET_KEY" \
	DATABASE_URL="$STREAMHOUSE_TEST_DATABASE_URL" WAL_ENABLED=true WAL_DIR="$DATA/wal" \
	GC_INTERVAL_SECS=5 GC_GRACE_SECS=60 COMPACTION_INTERVAL_SECS=5 \
	"$BIN/streamhouse" 2>"$LOGS/server.log") &
SERVER_PID=$!
deadline=$((SECONDS + 60))
until grep -q '"msg":"streamhouse ready to serve"' "$LOGS/server.log" 2>/dev/null; do
	kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)) || { log "streamhouse did not start"; tail -20 "$LOGS/server.log" >&2; exit 1; }
	sleep 0.2
done
ready=$(grep -m1 '"msg":"streamhouse ready to serve"' "$LOGS/server.log")
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$ready"; }
HTTP=$(field http)
KAFKA=$(field kafka)
GRPC=$(field grpc)
[ -n "$HTTP" ] && [ -n "$KAFKA" ] && [ -n "$GRPC" ] || { log "no listener addresses in: $ready"; exit 1; }
API=http://$HTTP
log "streamhouse: REST $HTTP, Kafka $KAFKA, gRPC $GRPC"

log "starting Prometheus (scrape every ${SCRAPE}s)"
PROMDIR=$WORK/prometheus
mkdir -p "$PROMDIR"
cp "$ROOT/deploy/prometheus/alerts.yml" "$PROMDIR/alerts.yml"
cat >"$PROMDIR/prometheus.yml" <<EOF
global:
  scrape_interval: ${SCRAPE}s
  evaluation_interval: ${SCRAPE}s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: streamhouse
    metrics_path: /metrics
    static_configs:
      - targets: ['$HTTP']
EOF
promtool check config "$PROMDIR/prometheus.yml" >/dev/null
for attempt in 1 2 3 4 5; do
	PPORT=$(free_port)
	(exec prometheus --config.file="$PROMDIR/prometheus.yml" --storage.tsdb.path="$PROMDIR/tsdb" \
		--web.listen-address="127.0.0.1:$PPORT" --log.level=warn 2>"$LOGS/prometheus.log") &
	PROM_PID=$!
	deadline=$((SECONDS + 30))
	until curl -sf -o /dev/null "http://127.0.0.1:$PPORT/-/ready"; do
		if ! kill -0 "$PROM_PID" 2>/dev/null; then
			grep -q 'address already in use' "$LOGS/prometheus.log" && ((attempt < 5)) && { PROM_PID=; continue 2; }
			log "prometheus exited"; tail -20 "$LOGS/prometheus.log" >&2; exit 1
		fi
		((SECONDS < deadline)) || { log "prometheus not ready in 30 s"; exit 1; }
		sleep 0.2
	done
	break
done
PROM=http://127.0.0.1:$PPORT
deadline=$((SECONDS + 60))
until curl -sf "$PROM/api/v1/query" --data-urlencode 'query=up{job="streamhouse"} == 1' | grep -q '"value"'; do
	((SECONDS < deadline)) || { log "Prometheus does not scrape streamhouse at $HTTP"; exit 1; }
	sleep 0.5
done

sc() { "$BIN/streamctl" --api-url "$API" "$@"; }

log "creating topics and a schema"
sc topic create orders -p 3 >/dev/null
sc topic create compacted -p 3 -c cleanup.policy=compact -c segment.ms=100 -c min.cleanable.dirty.ratio=0.01 >/dev/null
sc topic create short -p 3 -c retention.ms=10000 >/dev/null
sc topic create txn -p 3 >/dev/null
echo '{"type":"object","properties":{"n":{"type":"integer"}}}' >"$WORK/order.schema.json"
sc schema register orders-value "$WORK/order.schema.json" --schema-type JSON >/dev/null

# rest_loop: keyed REST produce to the compacted topic every 2 s; every
# 10 s a REST consume, a SQL query and a schema registry read.
rest_loop() {
	local end=$((SECONDS + DURATION)) i=0
	while ((SECONDS < end)); do
		sc produce compacted --key "k$((i % 5))" --value "v$i" --ack none >/dev/null
		if ((i % 5 == 0)); then
			sc consume orders --partition 0 --offset earliest --limit 5 >/dev/null
			sc sql query 'SELECT key, COUNT(*) FROM compacted GROUP BY key' >/dev/null
			sc schema get orders-value >/dev/null
		fi
		i=$((i + 1))
		sleep 2
	done
}

log "workload for ${DURATION}s"
T0=$(date +%s)
D=${DURATION}s
# bg NAME COMMAND...: run in the background, output to $LOGS/NAME.log (a
# program is exec'd, so that its pid is the one cleanup stops).
bg() {
	local name=$1
	shift
	if [ "$(type -t "$1")" = function ]; then
		("$@" >"$LOGS/$name.log" 2>&1) &
	else
		(exec "$@" >"$LOGS/$name.log" 2>&1) &
	fi
	WORKLOAD_PIDS+=($!)
	WORKLOAD_NAMES+=("$name")
}
WORKLOAD_NAMES=()
# audit: a group that reads 1,000 records once and stops, so its lag grows.
audit() {
	sleep 20
	"$BIN/streamctl" perf consume --brokers "$KAFKA" --topic orders --group audit --num-records 1000 --fetch-max-bytes 65536
}
bg produce-orders "$BIN/streamctl" perf produce --brokers "$KAFKA" --topic orders --throughput 200 --record-size 512 --acks all --duration "$D"
bg produce-short "$BIN/streamctl" perf produce --brokers "$KAFKA" --topic short --throughput 50 --record-size 256 --acks 1 --duration "$D"
bg produce-txn "$BIN/streamctl" perf produce --brokers "$KAFKA" --topic txn --throughput 20 --record-size 128 --transaction-duration 1s --duration "$D"
bg consume-billing "$BIN/streamctl" perf consume --brokers "$KAFKA" --topic orders --group billing --duration "$D"
bg consume-txn "$BIN/streamctl" perf consume --brokers "$KAFKA" --topic txn --group txn-audit --isolation read_committed --duration "$D"
bg consume-audit audit
bg rest rest_loop
bg grpc "$BIN/dashboard-shots" grpc -addr "$GRPC" -topic orders -every 2s -duration "$D"
failed=0
for i in "${!WORKLOAD_PIDS[@]}"; do
	if ! wait "${WORKLOAD_PIDS[$i]}"; then
		log "workload ${WORKLOAD_NAMES[$i]} failed:"
		tail -20 "$LOGS/${WORKLOAD_NAMES[$i]}.log" >&2
		failed=1
	fi
done
WORKLOAD_PIDS=()
((failed == 0)) || exit 1
T1=$(date +%s)

# The range: from shortly before the workload to a little after it, once
# Prometheus holds the last scrape of it (and the cluster series, which
# refresh every 10 s, have caught up).
FROM=$((T0 - 15))
TO=$((T1 + 15))
while (($(date +%s) < TO + SCRAPE + 1)); do sleep 1; done

log "rendering $(date -u -d "@$FROM" +%H:%M:%S)..$(date -u -d "@$TO" +%H:%M:%S) UTC"
"$BIN/dashboard-shots" render -prom "$PROM" -dashboards "$ROOT/deploy/grafana/dashboards" \
	-from "$FROM" -to "$TO" -scrape "${SCRAPE}s" -width "$WIDTH" -out "$OUT" -work "$WORK/html" -chromium "$CHROMIUM" ||
	{ log "rendering failed (a target without data is listed above; --keep keeps the pages and logs)"; exit 1; }
log "done in $((SECONDS - STARTED)) s"
