#!/usr/bin/env bash
# The WAL benchmark of docs/benchmarks.md: Kafka acks=1 with the WAL on
# (WAL_SYNC_INTERVAL_MS=0) against acks=all without it, on one server on its
# embedded defaults (local folder storage, SQLite), a fresh server per run,
# runs interleaved:
#
#   scripts/bench/wal.sh              # 3 runs of each, 200,000 records of 1 KiB
#   scripts/bench/wal.sh --runs 5 --records 500000 --rate-seconds 20
#   scripts/bench/wal.sh --baseline main   # also acks=1 + WAL on main's server
#   scripts/bench/wal.sh --server-env FLUSH_MIN_INTERVAL_MS=20   # more server settings
#   scripts/bench/wal.sh --max-inflight 5   # acks=1 producers keep 5 requests in flight
#
# Each run: --records records of 1 KiB to 8 partitions as fast as the server
# takes them, then --rate-seconds at 10% of that run's rate (the latency
# numbers), with `streamctl perf produce -o json`. An acks=1 run without the
# WAL is the reference: what the machine and client cost with no disk in the
# ack path. The server's own p99 of Produce requests during the 10% phase
# (from streamhouse_kafka_request_duration_seconds, interpolated within its
# bucket) is shown beside the client's. --baseline REV adds, in
# the same interleaving, acks=1 + WAL runs of the server built from git
# revision REV (an A/B under the same machine load). Prints a markdown
# table with the load average seen at each run's start; the raw JSON stays
# in $BENCH_WORK (default /tmp/streamhouse-bench-wal), the data directories
# are deleted after each run.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/streamhouse-bench-wal}
RUNS=3
RECORDS=200000
RATE_SECONDS=10
BASELINE=
SERVER_ENV=()
MAX_INFLIGHT=1

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
while (($#)); do
	case $1 in
	--runs) RUNS=$2; shift ;;
	--records) RECORDS=$2; shift ;;
	--rate-seconds) RATE_SECONDS=$2; shift ;;
	--baseline) BASELINE=$2; shift ;;
	--server-env) SERVER_ENV+=("$2"); shift ;;
	--max-inflight) MAX_INFLIGHT=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "wal.sh: unknown option $1" >&2; usage 2 ;;
	esac
	shift
done
((RUNS >= 3)) || { echo "wal.sh: --runs must be at least 3" >&2; exit 2; }

log() { echo "bench-wal: $*" >&2; }
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

BIN=$WORK/bin
RES=$WORK/results
rm -rf "$RES" "$WORK/data"
mkdir -p "$BIN" "$RES"
log "building streamhouse and streamctl"
(cd "$ROOT" && go build -o "$BIN/streamhouse" ./cmd/streamhouse && go build -o "$BIN/streamctl" ./cmd/streamctl)
if [ -n "$BASELINE" ]; then
	log "building streamhouse at $BASELINE"
	rm -rf "$WORK/baseline-src"
	mkdir -p "$WORK/baseline-src"
	git -C "$ROOT" archive "$BASELINE" | tar -x -C "$WORK/baseline-src"
	(cd "$WORK/baseline-src" && go build -o "$BIN/streamhouse-baseline" ./cmd/streamhouse)
	rm -rf "$WORK/baseline-src"
fi

SERVER_PID=
trap '[ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"' EXIT

# run NAME ACKS WAL(true|false) N [SERVER]: one fresh server, full speed then
# 10% load.
run() {
	local name=$1 acks=$2 wal=$3 n=$4 server=${5:-$BIN/streamhouse} dir kport hport rate inflight=()
	[ "$acks" = all ] || inflight=(--max-inflight "$MAX_INFLIGHT")
	awk '{ print $1 }' /proc/loadavg >"$RES/$name-$n-load"
	dir=$WORK/data/$name-$n
	start_streamhouse "$dir" bench-wal "$server" WAL_ENABLED="$wal" WAL_DIR="$dir/wal" WAL_SYNC_INTERVAL_MS=0 "${SERVER_ENV[@]}"
	kport=$KPORT hport=$HPORT
	"$BIN/streamctl" perf produce --brokers "127.0.0.1:$kport" --topic b --partitions 8 --num-records "$RECORDS" \
		--record-size 1024 --acks "$acks" -o json >"$RES/$name-$n-full.json"
	rate=$(jq '.records_per_sec | floor' "$RES/$name-$n-full.json")
	curl -sf "http://127.0.0.1:$hport/metrics" | produce_buckets >"$RES/$name-$n-before"
	"$BIN/streamctl" perf produce --brokers "127.0.0.1:$kport" --topic r --partitions 8 --duration "${RATE_SECONDS}s" \
		--throughput $((rate / 10)) --record-size 1024 --acks "$acks" "${inflight[@]}" -o json >"$RES/$name-$n-rate.json"
	curl -sf "http://127.0.0.1:$hport/metrics" | produce_buckets >"$RES/$name-$n-after"
	server_p99 "$RES/$name-$n-before" "$RES/$name-$n-after" >"$RES/$name-$n-server-p99"
	stop_pid "$SERVER_PID"
	SERVER_PID=
	rm -rf "$dir"
}

# produce_buckets: the Produce request duration histogram's buckets in
# /metrics on stdin, as "le count" lines.
produce_buckets() {
	sed -n 's/^streamhouse_kafka_request_duration_seconds_bucket{api="Produce",le="\([^"]*\)"} \(.*\)$/\1 \2/p'
}
# server_p99 BEFORE AFTER: the p99 in ms of the requests between the two
# snapshots, interpolated linearly within its bucket.
server_p99() {
	join <(sort "$1") <(sort "$2") | awk '$1 != "+Inf" { print $1, $3 - $2 }' | sort -g | awk '
		{ le[NR] = $1; cnt[NR] = $2 }
		END {
			if (NR == 0 || cnt[NR] == 0) { print "nan"; exit }
			want = 0.99 * cnt[NR]; lo = 0; prev = 0
			for (i = 1; i <= NR; i++) {
				if (cnt[i] >= want) { printf "%.3f\n", 1000 * (lo + (le[i] - lo) * (want - prev) / (cnt[i] - prev)); exit }
				lo = le[i]; prev = cnt[i]
			}
		}'
}

for n in $(seq 1 "$RUNS"); do
	log "run $n/$RUNS: acks=1, no WAL (reference)"
	run ref 1 false "$n"
	log "run $n/$RUNS: acks=1 + WAL"
	run wal 1 true "$n"
	if [ -n "$BASELINE" ]; then
		log "run $n/$RUNS: acks=1 + WAL, $BASELINE"
		run base 1 true "$n" "$BIN/streamhouse-baseline"
	fi
	log "run $n/$RUNS: acks=all"
	run durable all false "$n"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { # NAME PHASE JQ: the median over runs
	for f in "$RES/$1"-*-"$2".json; do jq "$3" "$f"; done | median
}
row() {
	printf '| %s | %.0fk | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n' "$2" \
		"$(field "$1" full '.records_per_sec')e-3" \
		"$(field "$1" rate '.latency_ms.p50')" \
		"$(field "$1" rate '.latency_ms.p99')" \
		"$(field "$1" rate '.latency_ms.p99_9')" \
		"$(cat "$RES/$1"-*-server-p99 | median)" \
		"$(cat "$RES/$1"-*-load | sort -g | tr '\n' ' ' | sed 's/ $//')"
}
rows=$(row wal "acks=1 + WAL (sync 0)")
[ -n "$BASELINE" ] && rows+=$'\n'$(row base "acks=1 + WAL (sync 0), $BASELINE")
rows+=$'\n'$(row durable "acks=all, no WAL")
rows+=$'\n'$(row ref "acks=1, no WAL (reference)")
cat <<EOF

$(date -u +%Y-%m-%d), $(nproc) cores, medians of $RUNS interleaved runs, $RECORDS records of 1 KiB, ${RATE_SECONDS} s at 10% load, acks=1 with $MAX_INFLIGHT request(s) in flight${SERVER_ENV[*]:+, ${SERVER_ENV[*]}}

| | full speed, records/s | at 10% load: p50 | p99 | p99.9 | server's Produce p99 | load average at the runs' start |
|---|---|---|---|---|---|---|
$rows
EOF
