#!/usr/bin/env bash
# The object compaction cost benchmark of docs/benchmarks.md: full-speed
# produce with object compaction off (COMPACTION_INTERVAL_SECS=0) against
# on (COMPACTION_INTERVAL_SECS=--interval), on one server on its embedded
# defaults (local folder storage, SQLite), a fresh server per run, runs
# interleaved (off, on, off, on, ...):
#
#   scripts/bench/compaction.sh             # 7 runs of each, 2,000,000 records of 1 KiB
#   scripts/bench/compaction.sh --runs 9 --records 1000000 --warmup-records 1000000
#
# Each run first produces --warmup-records records (not measured), then at
# once the measured produce: --records records of 1 KiB to 8 partitions as
# fast as the server takes them (`streamctl perf produce --acks all -o
# json`). Object compaction leaves runs sealed less than 5 s ago alone: the
# warm-up (several seconds at full speed) makes runs old enough for
# compaction to work from about the start of the measured produce to its
# end. Both sides run with SEGMENT_MAX_AGE_MS=--segment-age-ms, so segments
# close soon after their runs are old enough. The compaction metrics are
# read from /metrics before and right after the measured produce: a run
# "on" where compaction rewrote nothing meanwhile fails the script (the
# comparison would be off against off); the table shows how long
# compaction worked, and waited for appends, during the produce. Disk: a
# run writes (warm-up + records) KiB once, and again for what compaction
# rewrote; its data directory is deleted when it ends. Prints a markdown
# table; the raw JSON stays in $BENCH_WORK (default
# /tmp/streamhouse-bench-compaction).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/streamhouse-bench-compaction}
RUNS=7
RECORDS=2000000
WARMUP=1000000
INTERVAL=1
SEGMENT_AGE_MS=1000

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }
while (($#)); do
	case $1 in
	--runs) RUNS=$2; shift ;;
	--records) RECORDS=$2; shift ;;
	--warmup-records) WARMUP=$2; shift ;;
	--interval) INTERVAL=$2; shift ;;
	--segment-age-ms) SEGMENT_AGE_MS=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "compaction.sh: unknown option $1" >&2; usage 2 ;;
	esac
	shift
done
((RUNS >= 3)) || { echo "compaction.sh: --runs must be at least 3" >&2; exit 2; }
((RECORDS > 0 && WARMUP > 0 && RECORDS + WARMUP <= 10000000)) || { echo "compaction.sh: --records and --warmup-records must be positive, together at most 10000000 (10 GB a run)" >&2; exit 2; }
((INTERVAL >= 1)) || { echo "compaction.sh: --interval must be at least 1 (seconds)" >&2; exit 2; }

log() { echo "bench-compaction: $*" >&2; }
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

BIN=$WORK/bin
RES=$WORK/results
rm -rf "$RES" "$WORK/data"
mkdir -p "$BIN" "$RES"
log "building streamhouse and streamctl"
(cd "$ROOT" && go build -o "$BIN/streamhouse" ./cmd/streamhouse && go build -o "$BIN/streamctl" ./cmd/streamctl)

SERVER_PID=
DIR=
cleanup() {
	[ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"
	[ -n "$DIR" ] && rm -rf "$DIR"
	return 0
}
trap cleanup EXIT

# metric NAME FILE: the sum of a counter's samples in a /metrics dump.
metric() { awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2 } END { printf "%.3f\n", s }' "$2"; }
# delta NAME: the counter's growth during the measured produce.
delta() { awk -v a="$(metric "$1" "$m0")" -v b="$(metric "$1" "$m1")" 'BEGIN { print b - a }'; }
# proc_usage PID: the process's CPU seconds (user + system) and bytes
# written to disk so far.
TICKS=$(getconf CLK_TCK)
proc_usage() {
	awk -v t="$TICKS" '{ sub(/.*\) /, ""); printf "%.2f ", ($12 + $13) / t }' "/proc/$1/stat"
	awk '$1 == "write_bytes:" { print $2 }' "/proc/$1/io"
}

# no_errors FILE: a perf JSON result whose produce failed no record (a
# run with errors measures something else).
no_errors() {
	local e
	e=$(jq '.errors' "$1")
	[ "$e" = 0 ] || { log "$1: $e produce errors"; exit 1; }
}

# run NAME INTERVAL N: one fresh server, a warm-up, one measured full-speed produce.
run() {
	local name=$1 interval=$2 n=$3 kport hport m0 m1 u0 u1
	DIR=$WORK/data/$name-$n
	start_streamhouse "$DIR" bench-compaction "$BIN/streamhouse" COMPACTION_INTERVAL_SECS="$interval" SEGMENT_MAX_AGE_MS="$SEGMENT_AGE_MS"
	kport=$KPORT hport=$HPORT
	"$BIN/streamctl" perf produce --brokers "127.0.0.1:$kport" --topic b --partitions 8 --num-records "$WARMUP" \
		--record-size 1024 --acks all -o json >"$RES/$name-$n.warmup"
	no_errors "$RES/$name-$n.warmup"
	m0=$RES/$name-$n.metrics0
	m1=$RES/$name-$n.metrics1
	curl -sf "http://127.0.0.1:$hport/metrics" >"$m0"
	u0=$(proc_usage "$SERVER_PID")
	"$BIN/streamctl" perf produce --brokers "127.0.0.1:$kport" --topic b --partitions 8 --num-records "$RECORDS" \
		--record-size 1024 --acks all -o json >"$RES/$name-$n.json"
	u1=$(proc_usage "$SERVER_PID")
	no_errors "$RES/$name-$n.json"
	curl -sf "http://127.0.0.1:$hport/metrics" >"$m1"
	jq --arg passes "$(delta streamhouse_log_compaction_runs_total)" \
		--arg bytes "$(delta streamhouse_log_compaction_bytes_rewritten_total)" \
		--arg objects "$(delta streamhouse_log_compaction_objects_written_total)" \
		--arg entries "$(delta streamhouse_log_compaction_entries_replaced_total)" \
		--arg conflicts "$(delta streamhouse_log_compaction_switch_conflicts_total)" \
		--arg seconds "$(delta streamhouse_log_compaction_seconds_total)" \
		--arg yielded "$(delta streamhouse_log_compaction_yield_seconds_total)" \
		--arg u0 "$u0" --arg u1 "$u1" \
		'.compaction = {passes: ($passes | tonumber), bytes_rewritten: ($bytes | tonumber), segments: ($objects | tonumber),
			entries_replaced: ($entries | tonumber), conflicts: ($conflicts | tonumber),
			pass_s: ($seconds | tonumber), yield_s: ($yielded | tonumber)}
		| .server = {cpu_s: (($u1 | split(" ")[0] | tonumber) - ($u0 | split(" ")[0] | tonumber)),
			disk_write_bytes: (($u1 | split(" ")[1] | tonumber) - ($u0 | split(" ")[1] | tonumber))}' \
		"$RES/$name-$n.json" >"$RES/$name-$n.tmp" && mv "$RES/$name-$n.tmp" "$RES/$name-$n.json"
	stop_pid "$SERVER_PID"
	SERVER_PID=
	rm -rf "$DIR"
	DIR=
	if [ "$interval" != 0 ] && (($(jq '.compaction.bytes_rewritten' "$RES/$name-$n.json") == 0)); then
		log "run $name $n: compaction rewrote nothing during the produce ($(jq -c .compaction "$RES/$name-$n.json")): produce longer (--records)"
		exit 1
	fi
}

for n in $(seq 1 "$RUNS"); do
	log "run $n/$RUNS: compaction off ($(cut -d' ' -f1-3 /proc/loadavg))"
	run off 0 "$n"
	log "run $n/$RUNS: compaction on, every ${INTERVAL}s ($(cut -d' ' -f1-3 /proc/loadavg))"
	run on "$INTERVAL" "$n"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
field() { # NAME JQ: the median over runs
	for f in "$RES/$1"-*.json; do jq "$2" "$f"; done | median
}
pairs() { # each pair's slowdown in %
	for n in $(seq 1 "$RUNS"); do
		jq -n --argjson a "$(jq .mb_per_sec "$RES/off-$n.json")" --argjson b "$(jq .mb_per_sec "$RES/on-$n.json")" '(($a - $b) / $a * 1000 | round) / 10'
	done
}
off=$(field off '.mb_per_sec')
on=$(field on '.mb_per_sec')
row() { # NAME LABEL
	printf '| %s | %.1f | %.0f | %.0f | %.1f + %.1f of %.1f | %.1f | %.2f |\n' "$2" \
		"$(field "$1" '.mb_per_sec')" "$(field "$1" '.latency_ms.p99')" \
		"$(field "$1" '.compaction.bytes_rewritten / 1e6')" \
		"$(field "$1" '.compaction.pass_s - .compaction.yield_s')" "$(field "$1" '.compaction.yield_s')" "$(field "$1" '.elapsed_s')" \
		"$(field "$1" '.server.cpu_s / .bytes * 1e9')" "$(field "$1" '.server.disk_write_bytes / .bytes')"
}
cat <<EOF

$(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), medians of $RUNS interleaved runs,
$RECORDS records of 1 KiB to 8 partitions (after $WARMUP not measured), acks=all, SEGMENT_MAX_AGE_MS=$SEGMENT_AGE_MS

| | produce MB/s | p99 ms | MB rewritten | compaction s working + waiting for appends, of the produce s | server CPU s per GB | disk bytes written per byte |
|---|---|---|---|---|---|---|
$(row off "compaction off")
$(row on "compaction on (every ${INTERVAL}s)")

Produce slowdown with compaction on: $(awk -v a="$off" -v b="$on" 'BEGIN { printf "%.1f%%", (a - b) / a * 100 }') of the median MB/s;
median of the $RUNS pairs' slowdowns (each "on" run against the "off" run just before it): $(pairs | median)%
Per pair (MB/s off → on): $(for n in $(seq 1 "$RUNS"); do printf '%.1f → %.1f; ' "$(jq .mb_per_sec "$RES/off-$n.json")" "$(jq .mb_per_sec "$RES/on-$n.json")"; done)
EOF
