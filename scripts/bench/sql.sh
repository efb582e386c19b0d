#!/usr/bin/env bash
# The SQL over topics benchmark of docs/benchmarks.md, on one StreamHouse
# server on its embedded defaults (local folder storage, SQLite):
#
#   scripts/bench/sql.sh                       # 1M records, a 10M-record topic, 3 runs
#   scripts/bench/sql.sh --records 200000 --big 1000000 --runs 3   # quicker
#   scripts/bench/sql.sh --threads 2           # SQL engine threads (SQL_THREADS;
#                                              # default 0: the server's, half the CPUs)
#
# 1. kcat produces --records JSON records of about 200 bytes (id, category,
#    price, customer, note, items) over 8 partitions to topic `orders`, and
#    records of a few bytes to `events_big` (--big of them) and
#    `events_small` (10,000), 8 partitions each.
# 2. The server is restarted, so its peak RSS (VmHWM) counts the queries
#    only, not the produce.
# 3. GROUP BY: `SELECT json_extract(value,'$.category'), COUNT(*),
#    AVG(json_extract(value,'$.price')) FROM orders GROUP BY 1` through
#    POST /api/v1/sql (curl), and the same answer from
#    `kcat -C -e | jq`, --runs times each, side by side; the two answers
#    must agree.
# 4. Selective: `WHERE partition = 3 AND offset BETWEEN X AND X+99` on
#    events_big (X = 500000, or the middle of partition 3 when --big is
#    smaller) and on events_small (X = 500), 20 times each; the records the
#    queries scanned (streamhouse_sql_scanned_records_total) must be 100.
#
# It prints a markdown table for docs/benchmarks.md; raw results stay in
# $BENCH_WORK (default /tmp/streamhouse-bench-sql).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/streamhouse-bench-sql}
RECORDS=1000000
BIG=10000000
SMALL=10000
RUNS=3
THREADS=0
PARTITIONS=8
SELECTIVE_RUNS=20

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

while (($#)); do
	case $1 in
	--records) RECORDS=$2; shift ;;
	--big) BIG=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--threads) THREADS=$2; shift ;;
	-h | --help) usage 0 ;;
	*) echo "sql.sh: unknown option $1" >&2; usage 2 ;;
	esac
	shift
done
((RUNS >= 3)) || { echo "sql.sh: --runs must be at least 3" >&2; exit 2; }
((BIG >= 8 * 200)) || { echo "sql.sh: --big must be at least 1600" >&2; exit 2; }

log() { echo "bench-sql: $*" >&2; }
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

for tool in kcat jq bc; do
	command -v "$tool" >/dev/null && continue
	log "installing $tool from Debian's packages"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done

BIN=$WORK/bin
DATA=$WORK/data
RES=$WORK/results
rm -rf "$DATA" "$RES"
mkdir -p "$BIN" "$DATA" "$RES"
log "building streamhouse (with the SQL engine: cgo)"
(cd "$ROOT" && CGO_ENABLED=1 go build -o "$BIN/streamhouse" ./cmd/streamhouse)

KPORT=$(free_port)
HPORT=$(free_port)
GPORT=$(free_port)
BROKERS=127.0.0.1:$KPORT
API=http://127.0.0.1:$HPORT
SERVER_PID=

stop_server() {
	[ -n "$SERVER_PID" ] || return 0
	stop_pid "$SERVER_PID"
	SERVER_PID=
}
trap stop_server EXIT

start_server() {
	(cd "$DATA" && exec env KAFKA_ADDR="$BROKERS" HTTP_ADDR="127.0.0.1:$HPORT" GRPC_ADDR="127.0.0.1:$GPORT" \
		LOG_FORMAT=json STREAMHOUSE_AGENT_ID=bench-sql SQL_THREADS="$THREADS" \
		LOCAL_STORAGE_PATH="$DATA/storage" STREAMHOUSE_METADATA_PATH="$DATA/metadata.db" STREAMHOUSE_CACHE="$DATA/cache" \
		"$BIN/streamhouse" 2>>"$RES/server.log") &
	SERVER_PID=$!
	local deadline=$((SECONDS + 60))
	until curl -sf -o /dev/null "$API/ready"; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null || ((SECONDS > deadline)); then
			log "streamhouse did not start:"
			tail -20 "$RES/server.log" >&2
			exit 1
		fi
		sleep 0.05
	done
}

create_topic() {
	curl -sf -o /dev/null -X POST "$API/api/v1/topics" -H 'content-type: application/json' \
		-d "{\"name\":\"$1\",\"partitions\":$PARTITIONS}"
}

# produce TOPIC FILE: every line of FILE ("key<TAB>value") as one record,
# acks=all, the records spread over the partitions by librdkafka.
produce() {
	kcat -P -b "$BROKERS" -t "$1" -K $'\t' -l -X acks=all -X linger.ms=20 \
		-X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 "$2"
}

# records_in TOPIC: the sum of the partitions' high watermarks.
records_in() {
	curl -sf "$API/api/v1/topics/$1/partitions" | jq '[.[] | (.high_watermark // .highWatermark)] | add'
}

log "generating $RECORDS orders and $BIG + $SMALL small events"
awk -v n="$RECORDS" 'BEGIN {
	split("books games tools food garden music", cats, " ")
	for (i = 0; i < n; i++)
		printf "%d\t{\"id\":%d,\"category\":\"%s\",\"price\":%.1f,\"customer\":\"customer-%06d\",\"note\":\"a note of some length to reach about two hundred bytes per record\",\"items\":[%d,%d]}\n",
			i, i, cats[i % 6 + 1], (i % 1000) / 10, i % 50000, i % 7, i % 11
}' >"$DATA/orders.tsv"
awk -v n="$BIG" 'BEGIN { for (i = 0; i < n; i++) printf "%d\t{\"i\":%d}\n", i, i }' >"$DATA/big.tsv"
awk -v n="$SMALL" 'BEGIN { for (i = 0; i < n; i++) printf "%d\t{\"i\":%d}\n", i, i }' >"$DATA/small.tsv"

start_server
for t in orders events_big events_small; do create_topic "$t"; done
log "producing with kcat"
start=$SECONDS
produce orders "$DATA/orders.tsv"
produce events_big "$DATA/big.tsv"
produce events_small "$DATA/small.tsv"
log "produced in $((SECONDS - start)) s"
for t in orders:$RECORDS events_big:$BIG events_small:$SMALL; do
	got=$(records_in "${t%%:*}")
	[ "$got" = "${t#*:}" ] || { log "${t%%:*} holds $got records, want ${t#*:}"; exit 1; }
done
rm -f "$DATA"/*.tsv

log "restarting the server: its peak RSS from here on is the queries'"
stop_server
start_server

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# sql QUERY: POST /api/v1/sql; the answer in $RES/answer.json, the wall
# time in seconds on stdout.
sql() {
	local body
	body=$(jq -cn --arg q "$1" '{query: $q}')
	curl -sS -o "$RES/answer.json" -w '%{http_code} %{time_total}\n' -X POST "$API/api/v1/sql" \
		-H 'content-type: application/json' -d "$body" >"$RES/curl.out"
	read -r code secs <"$RES/curl.out"
	if [ "$code" != 200 ]; then
		log "POST /api/v1/sql answered $code: $(cat "$RES/answer.json")"
		exit 1
	fi
	echo "$secs"
}

scanned() { curl -sf "$API/metrics" | awk '/^streamhouse_sql_scanned_records_total / { printf "%d\n", $2 }'; }

GROUP_BY="SELECT json_extract(value, '\$.category') AS category, COUNT(*) AS n, AVG(json_extract(value, '\$.price')) AS avg_price FROM orders GROUP BY 1"
: >"$RES/sql.s"
: >"$RES/jq.s"
for run in $(seq 1 "$RUNS"); do
	log "GROUP BY run $run/$RUNS: SQL"
	sql "$GROUP_BY" >>"$RES/sql.s"
	jq -r '.rows[] | "\(.[0]) \(.[1]) \(.[2] * 1000 | round / 1000)"' "$RES/answer.json" | sort >"$RES/sql-answer.txt"
	log "GROUP BY run $run/$RUNS: kcat | jq"
	start=$(date +%s.%N)
	kcat -C -b "$BROKERS" -t orders -e -q -f '%s\n' |
		jq -rn 'reduce inputs as $r ({}; .[$r.category].n += 1 | .[$r.category].s += $r.price)
			| to_entries[] | "\(.key) \(.value.n) \(.value.s / .value.n * 1000 | round / 1000)"' |
		sort >"$RES/jq-answer.txt"
	echo "$(date +%s.%N) - $start" | bc >>"$RES/jq.s"
	if ! cmp -s "$RES/sql-answer.txt" "$RES/jq-answer.txt"; then
		log "the answers differ:"
		diff "$RES/sql-answer.txt" "$RES/jq-answer.txt" >&2 || true
		exit 1
	fi
done
SQL_S=$(median <"$RES/sql.s")
JQ_S=$(median <"$RES/jq.s")
RSS_KIB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$SERVER_PID/status")

# The selective query: 100 records of partition 3, from its middle when
# the big topic is too small to hold offset 500000 there.
P3=$(curl -sf "$API/api/v1/topics/events_big/partitions" | jq '.[] | select((.id // .partition) == 3) | (.high_watermark // .highWatermark)')
BIG_AT=500000
((P3 > BIG_AT + 100)) || BIG_AT=$((P3 / 2))
selective() { # TOPIC FROM: median seconds of SELECTIVE_RUNS queries; checks 100 rows, 100 scanned each
	local before after
	: >"$RES/sel-$1.s"
	for _ in $(seq 1 "$SELECTIVE_RUNS"); do
		before=$(scanned)
		sql "SELECT * FROM $1 WHERE partition = 3 AND offset BETWEEN $2 AND $(($2 + 99))" >>"$RES/sel-$1.s"
		after=$(scanned)
		[ "$(jq .rowCount "$RES/answer.json")" = 100 ] || { log "$1: $(jq .rowCount "$RES/answer.json") rows, want 100"; exit 1; }
		[ $((after - before)) = 100 ] || { log "$1: scanned $((after - before)) records, want 100"; exit 1; }
	done
	median <"$RES/sel-$1.s"
}
log "selective query, $SELECTIVE_RUNS times on each topic"
BIG_S=$(selective events_big "$BIG_AT")
SMALL_S=$(selective events_small 500)

ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
cat <<EOF | tee "$RES/table.md"

$(date -u +%Y-%m-%d), $(nproc) cores, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), SQL_THREADS=$THREADS$( ((THREADS)) || echo " (the default, half the CPUs: $(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 )))"), median of $RUNS runs (selective: of $SELECTIVE_RUNS)

| measurement | result |
|---|---|
| GROUP BY over $RECORDS records, POST /api/v1/sql | $(printf '%.2f' "$SQL_S") s, $(awk -v n="$RECORDS" -v s="$SQL_S" 'BEGIN { printf "%.2f M records/s", n / s / 1e6 }') |
| same answer, \`kcat -C -e \| jq\` | $(printf '%.2f' "$JQ_S") s, $(awk -v n="$RECORDS" -v s="$JQ_S" 'BEGIN { printf "%.0f k records/s", n / s / 1e3 }') |
| SQL speed-up over kcat \| jq | $(awk -v a="$JQ_S" -v b="$SQL_S" 'BEGIN { printf "%.1f×", a / b }') |
| partition = 3 AND offset BETWEEN $BIG_AT AND $((BIG_AT + 99)), $BIG-record topic | $(ms "$BIG_S") ms, 100 records scanned |
| partition = 3 AND offset BETWEEN 500 AND 599, $SMALL-record topic | $(ms "$SMALL_S") ms, 100 records scanned |
| server peak RSS (VmHWM) after the GROUP BY runs | $((RSS_KIB / 1024)) MiB |
EOF
