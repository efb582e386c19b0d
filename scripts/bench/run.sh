#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks-results.md on this machine and
# writes that page and its charts (docs/img/bench-*.png).
#
#   scripts/bench/run.sh            # the full matrix, 5 to 10 minutes
#   scripts/bench/run.sh --quick    # fewer records, shorter fixed-rate runs (~2 minutes)
#   scripts/bench/run.sh --runs 5 --records 500000 --rate-seconds 20 --targets local,kfake
#   scripts/bench/run.sh --s3-flush-ms 100   # s3 with the server's default flush spacing
#   scripts/bench/run.sh --idle-wait 0       # do not wait for an idle machine before each run
#   scripts/bench/run.sh --txn               # the transactions matrix instead (see below)
#
# Targets, each measured --runs times (at least 3), with a fresh server
# per run:
#   local   StreamHouse, local folder storage + SQLite (the embedded defaults)
#   s3      StreamHouse, S3 (versitygw) + PostgreSQL, from scripts/services.sh
#   kfake   franz-go's in-memory fake broker (scripts/bench/kfake): no durability
#   nats    NATS JetStream, file storage (Debian's nats-server), measured with
#           its own tool, `nats bench` (natscli)
# Each run: produce --records 1 KiB records with acks=all as fast as the
# server takes them (8 partitions for Kafka targets; one stream for NATS),
# consume them all from the start, then produce for --rate-seconds at 10%
# of that run's full-speed rate and record the latency percentiles.
#
# --txn runs the transactions matrix instead, on the local and s3 targets
# (or --targets): for --rate-seconds each, one producer writes --size records
# in transactions committed every 1, 10 and 100 ms, and without
# transactions, as fast as it can, with a fresh server per run; then a
# read_committed consumer reads them all. It prints a markdown table
# (throughput, transactions/s, and the latency of a commit: EndTransaction
# once the transaction's records are acknowledged) for docs/benchmarks.md.
#
# Kafka targets are driven by `streamctl perf`; NATS by `nats bench js pub
# async` and `nats bench js ordered` (the fixed-rate run with --batch 10: its
# default batch of 500 takes ~40 ms to fill at 10% load, and nats bench
# reports latency per batch). Raw results (JSON, CSV, server logs)
# stay in $BENCH_WORK (default /tmp/streamhouse-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${BENCH_WORK:-/tmp/streamhouse-bench}
TOOLS=${STREAMHOUSE_TOOLS_BIN:-$HOME/.cache/streamhouse/bin}
SERVICES=${STREAMHOUSE_SERVICES_DIR:-/tmp/streamhouse-services}
NATSCLI_VERSION=${NATSCLI_VERSION:-v0.5.1}

RUNS=3
RECORDS=1000000
RATE_SECONDS=10
PARTITIONS=8
SIZE=1024
TARGETS=local,s3,kfake,nats
# The S3 default FLUSH_MIN_INTERVAL_MS is 100 (at most ~10 PUTs/s, the cost
# knob for a real S3); against a local S3 server the bench, like the tests,
# seals whenever no PUT is in flight. --s3-flush-ms 100 measures the default.
S3_FLUSH_MS=0
IDLE_WAIT=60
QUICK=0
TXN=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit "${1:-0}"; }

while (($#)); do
	case $1 in
	--quick) QUICK=1; RECORDS=200000; RATE_SECONDS=3 ;;
	--runs) RUNS=$2; shift ;;
	--records) RECORDS=$2; shift ;;
	--rate-seconds) RATE_SECONDS=$2; shift ;;
	--targets) TARGETS=$2; shift ;;
	--s3-flush-ms) S3_FLUSH_MS=$2; shift ;;
	--idle-wait) IDLE_WAIT=$2; shift ;;
	--txn) TXN=1 ;;
	-h | --help) usage 0 ;;
	*) echo "run.sh: unknown option $1" >&2; usage 2 ;;
	esac
	shift
done
((RUNS >= 3)) || { echo "run.sh: --runs must be at least 3" >&2; exit 2; }
if ((TXN)) && [ "$TARGETS" = local,s3,kfake,nats ]; then
	TARGETS=local,s3
fi

log() { echo "bench: $*" >&2; }
# shellcheck source=scripts/bench/lib.sh
source "$ROOT/scripts/bench/lib.sh"

RES=$WORK/results
BIN=$WORK/bin
rm -rf "$RES"
mkdir -p "$RES" "$BIN" "$TOOLS"
: >"$RES/commands.txt"

# cmd runs a command, and records its command line in commands.txt (with
# paths shortened) on the first run.
CUR_RUN=1
cmd() {
	[ "$CUR_RUN" = 1 ] && echo "$*" | sed "s#$BIN/##g; s#$TOOLS/##g; s#$WORK#\$BENCH_WORK#g" >>"$RES/commands.txt"
	"$@"
}

log "building streamhouse, streamctl, kfake and the report tool"
(cd "$ROOT" && go build -o "$BIN/streamhouse" ./cmd/streamhouse &&
	go build -o "$BIN/streamctl" ./cmd/streamctl &&
	go build -o "$BIN/kfake" ./scripts/bench/kfake)
(cd "$ROOT/scripts/bench/report" && go build -o "$BIN/report" .)

wait_tcp() { # port seconds
	local deadline=$((SECONDS + $2))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		((SECONDS <= deadline)) || return 1
		sleep 0.05
	done
}

# busy_pct: the percentage of CPU time spent busy over the next second.
busy_pct() {
	local a b
	read -ra a < <(grep '^cpu ' /proc/stat)
	sleep 1
	read -ra b < <(grep '^cpu ' /proc/stat)
	awk -v t0="$((a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7] + a[8]))" -v i0="$((a[4] + a[5]))" \
		-v t1="$((b[1] + b[2] + b[3] + b[4] + b[5] + b[6] + b[7] + b[8]))" -v i1="$((b[4] + b[5]))" \
		'BEGIN { t = t1 - t0; printf "%d\n", (t > 0) ? 100 * (t - (i1 - i0)) / t : 0 }'
}

# quiet NAME: before a run, waits (up to --idle-wait seconds) until the
# machine is idle (under 25% busy over a second), so other work on a shared
# machine does not land in the numbers; records how busy it was.
quiet() {
	local busy deadline=$((SECONDS + IDLE_WAIT))
	busy=$(busy_pct)
	while ((busy >= 25 && SECONDS < deadline)); do
		busy=$(busy_pct)
	done
	((busy < 25)) || log "$1: the machine is still $busy% busy with other work"
	echo "$busy" >"$RES/$1.busy"
}

vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }


SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && stop_pid "$SERVER_PID"; return 0; }
trap cleanup EXIT

# --- versions and machine facts ------------------------------------------

NATS_BIN=
if [[ ,$TARGETS, == *,nats,* ]]; then
	if ! command -v nats-server >/dev/null; then
		log "installing Debian's nats-server"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >/dev/null ||
			log "nats-server could not be installed"
	fi
	if [ ! -x "$TOOLS/nats" ]; then
		log "building natscli $NATSCLI_VERSION (once per machine)"
		GOBIN="$TOOLS" GOFLAGS=-buildvcs=false go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" ||
			log "natscli could not be built"
	fi
	if command -v nats-server >/dev/null && [ -x "$TOOLS/nats" ]; then
		NATS_BIN=$TOOLS/nats
	else
		log "skipping NATS: nats-server or natscli missing"
		TARGETS=${TARGETS//nats/}
	fi
fi

if [[ ,$TARGETS, == *,s3,* ]]; then
	if ! [ -f "$SERVICES/env" ] || ! (source "$SERVICES/env" && curl -s -o /dev/null "$STREAMHOUSE_TEST_S3_ENDPOINT"); then
		log "starting scripts/services.sh"
		"$ROOT/scripts/services.sh" start
	fi
	# shellcheck disable=SC1091
	source "$SERVICES/env"
fi

{
	echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "nproc=$(nproc)"
	echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
	echo "memory=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
	echo "go=$(go env GOVERSION)"
	echo "loadavg=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "streamhouse=$(cd "$ROOT" && git describe --always --dirty 2>/dev/null || echo unknown)"
	echo "franz-go=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/twmb/franz-go)"
	echo "kfake=$(cd "$ROOT" && go list -m -f '{{.Version}}' github.com/twmb/franz-go/pkg/kfake)"
	[[ ,$TARGETS, == *,s3,* ]] && echo "versitygw=$(sed -n "s/^VERSITYGW_VERSION=//p" "$ROOT/scripts/services.sh")"
	[[ ,$TARGETS, == *,s3,* ]] && echo "postgresql=$("$(cat "$SERVICES/pg-bindir")/postgres" --version | awk '{print $3}') (fsync=off, as scripts/services.sh starts it)"
	[ -n "$NATS_BIN" ] && echo "nats-server=$(nats-server --version | awk '{print $2}')"
	[ -n "$NATS_BIN" ] && echo "natscli=$("$NATS_BIN" --version 2>&1)"
	echo "runs=$RUNS"
	echo "records=$RECORDS"
	echo "record_size=$SIZE"
	echo "partitions=$PARTITIONS"
	echo "rate_seconds=$RATE_SECONDS"
	[[ ,$TARGETS, == *,s3,* ]] && echo "s3_flush_min_interval_ms=$S3_FLUSH_MS"
	echo "quick=$QUICK"
} >"$RES/facts.txt"

# --- Kafka targets ---------------------------------------------------------

BROKERS=
METRICS_URL=

# start_streamhouse BACKEND RUN: a fresh server; sets SERVER_PID and BROKERS
# and writes the startup time.
start_streamhouse() {
	local backend=$1 run=$2 dir kport hport gport env=()
	dir=$WORK/data/$backend-$run
	rm -rf "$dir"
	mkdir -p "$dir"
	kport=$(free_port)
	hport=$(free_port)
	gport=$(free_port)
	env=(KAFKA_ADDR=127.0.0.1:$kport HTTP_ADDR=127.0.0.1:$hport GRPC_ADDR=127.0.0.1:$gport
		LOG_FORMAT=json STREAMHOUSE_AGENT_ID=bench STREAMHOUSE_CACHE=$dir/cache)
	case $backend in
	local)
		env+=(LOCAL_STORAGE_PATH=$dir/storage STREAMHOUSE_METADATA_PATH=$dir/metadata.db)
		;;
	s3)
		local bucket db
		bucket=bench-$run-$$
		db=bench_${run}_$$
		curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" \
			--user "$STREAMHOUSE_TEST_S3_ACCESS_KEY:$STREAMHOUSE_TEST_S3_SECRET_KEY" \
			-H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "$STREAMHOUSE_TEST_S3_ENDPOINT/$bucket"
		PGOPTIONS='-c client_min_messages=warning' "$(cat "$SERVICES/pg-bindir")/psql" -q "$STREAMHOUSE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
		env+=(S3_ENDPOINT=$STREAMHOUSE_TEST_S3_ENDPOINT STREAMHOUSE_BUCKET=$bucket
			AWS_ACCESS_KEY_ID=$STREAMHOUSE_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$STREAMHOUSE_TEST_S3_SECRET_KEY
			"DATABASE_URL=${STREAMHOUSE_TEST_DATABASE_URL%/postgres*}/$db?sslmode=disable"
			FLUSH_MIN_INTERVAL_MS=$S3_FLUSH_MS)
		echo "$bucket $db" >"$dir/s3-names"
		;;
	esac
	[ "$run" = 1 ] && echo "env ${env[*]} streamhouse" | sed "s#$WORK#\$BENCH_WORK#g" >>"$RES/commands.txt"
	(cd "$dir" && exec env "${env[@]}" "$BIN/streamhouse" 2>"$dir/server.log") &
	SERVER_PID=$!
	local deadline=$((SECONDS + 60))
	until grep -q '"streamhouse ready to serve"' "$dir/server.log" 2>/dev/null; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null || ((SECONDS > deadline)); then
			log "streamhouse ($backend) did not start:"
			cat "$dir/server.log" >&2
			return 1
		fi
		sleep 0.02
	done
	# slog writes a duration as nanoseconds.
	grep '"streamhouse ready to serve"' "$dir/server.log" | sed -E 's/.*"startup":([0-9.]+).*/\1/' >"$RES/$backend-startup-$run.ns"
	BROKERS=127.0.0.1:$kport
	METRICS_URL=http://127.0.0.1:$hport/metrics
}

# drop_s3 removes a run's bucket (versitygw's posix folder), database and
# server folder (its cache).
drop_s3() {
	local dir=$WORK/data/s3-$1 bucket db
	[ -f "$dir/s3-names" ] || return 0
	read -r bucket db <"$dir/s3-names"
	rm -rf "${SERVICES:?}/s3/root/$bucket"
	PGOPTIONS='-c client_min_messages=warning' "$(cat "$SERVICES/pg-bindir")/psql" -q "$STREAMHOUSE_TEST_DATABASE_URL" -c "DROP DATABASE IF EXISTS $db" || true
	rm -rf "$dir"
}

start_kfake() {
	local run=$2 port out=$WORK/data/kfake-$2.out
	mkdir -p "$WORK/data"
	port=$(free_port)
	[ "$run" = 1 ] && echo "kfake -port $port" >>"$RES/commands.txt"
	"$BIN/kfake" -port "$port" >"$out" 2>&1 &
	SERVER_PID=$!
	wait_tcp "$port" 30 || { log "kfake did not start"; cat "$out" >&2; return 1; }
	BROKERS=127.0.0.1:$port
}

# rate_of FILE: 10% of the records/s in a perf summary, at least 1.
rate_of() {
	python3 -c 'import json,sys; print(max(1, int(json.load(open(sys.argv[1]))["records_per_sec"] / 10)))' "$1"
}

run_kafka_target() {
	local target=$1 run topic rate
	for run in $(seq 1 "$RUNS"); do
		log "$target: run $run of $RUNS"
		quiet "$target-$run"
		if [ "$target" = kfake ]; then start_kfake "$target" "$run"; else start_streamhouse "$target" "$run"; fi
		topic=bench-$run
		CUR_RUN=$run
		cmd "$BIN/streamctl" perf produce -o json --brokers "$BROKERS" --topic "$topic" --partitions "$PARTITIONS" \
			--num-records "$RECORDS" --record-size "$SIZE" --acks all >"$RES/$target-produce-$run.json"
		cmd "$BIN/streamctl" perf consume -o json --brokers "$BROKERS" --topic "$topic" \
			--num-records "$RECORDS" >"$RES/$target-consume-$run.json"
		rate=$(rate_of "$RES/$target-produce-$run.json")
		# StreamHouse's own stage histograms around the fixed-rate run.
		[ "$target" = kfake ] || curl -sS -f -o "$RES/$target-metrics-before-rate-$run.txt" "$METRICS_URL"
		cmd "$BIN/streamctl" perf produce -o json --brokers "$BROKERS" --topic "$topic-rate" --partitions "$PARTITIONS" \
			--duration "${RATE_SECONDS}s" --throughput "$rate" --record-size "$SIZE" --acks all >"$RES/$target-rate-$run.json"
		[ "$target" = kfake ] || curl -sS -f -o "$RES/$target-metrics-after-rate-$run.txt" "$METRICS_URL"
		vmhwm_kib "$SERVER_PID" >"$RES/$target-rss-$run.kib"
		stop_pid "$SERVER_PID"
		SERVER_PID=
		case $target in
		s3) drop_s3 "$run" ;;
		local) rm -rf "$WORK/data/local-$run" ;;
		esac
	done
}

# --- NATS JetStream --------------------------------------------------------

run_nats() {
	local run port dir url rate
	for run in $(seq 1 "$RUNS"); do
		log "nats: run $run of $RUNS"
		quiet "nats-$run"
		dir=$WORK/data/nats-$run
		rm -rf "$dir"
		mkdir -p "$dir"
		port=$(free_port)
		[ "$run" = 1 ] && echo "nats-server -js -sd \$BENCH_WORK/data/nats-1 -a 127.0.0.1 -p $port" >>"$RES/commands.txt"
		nats-server -js -sd "$dir" -a 127.0.0.1 -p "$port" >"$dir/server.log" 2>&1 &
		SERVER_PID=$!
		wait_tcp "$port" 30 || { log "nats-server did not start"; cat "$dir/server.log" >&2; return 1; }
		url=nats://127.0.0.1:$port
		CUR_RUN=$run
		cmd "$NATS_BIN" -s "$url" bench js pub async bench --create --purge --storage file --maxbytes 8GB \
			--size "$SIZE" --msgs "$RECORDS" --no-progress --csv "$RES/nats-produce-$run.csv" >"$RES/nats-produce-$run.txt" 2>&1
		cmd "$NATS_BIN" -s "$url" bench js ordered --msgs "$RECORDS" --size "$SIZE" --no-progress \
			--csv "$RES/nats-consume-$run.csv" >"$RES/nats-consume-$run.txt" 2>&1
		rate=$(awk -F, 'NR == 2 {print int($5 / 10)}' "$RES/nats-produce-$run.csv")
		cmd "$NATS_BIN" -s "$url" bench js pub async bench --purge --batch 10 --size "$SIZE" --throughput "$rate" \
			--duration "${RATE_SECONDS}s" --no-progress --csv "$RES/nats-rate-$run.csv" >"$RES/nats-rate-$run.txt" 2>&1
		vmhwm_kib "$SERVER_PID" >"$RES/nats-rss-$run.kib"
		stop_pid "$SERVER_PID"
		SERVER_PID=
		rm -rf "$dir"
	done
}

# --- transactions ------------------------------------------------------------

TXN_DURATIONS=(0 1ms 10ms 100ms)

run_txn_target() {
	local target=$1 run d topic out
	for run in $(seq 1 "$RUNS"); do
		for d in "${TXN_DURATIONS[@]}"; do
			log "$target transactions $d: run $run of $RUNS"
			quiet "$target-txn-$d-$run"
			start_streamhouse "$target" "$run"
			topic=txn-$run
			CUR_RUN=$run
			out=$RES/$target-txn-$d-$run.json
			cmd "$BIN/streamctl" perf produce -o json --brokers "$BROKERS" --topic "$topic" --partitions "$PARTITIONS" \
				--duration "${RATE_SECONDS}s" --record-size "$SIZE" --acks all --transaction-duration "$d" >"$out"
			cmd "$BIN/streamctl" perf consume -o json --brokers "$BROKERS" --topic "$topic" --isolation read_committed \
				--num-records "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$out")" \
				>"$RES/$target-txn-$d-consume-$run.json"
			stop_pid "$SERVER_PID"
			SERVER_PID=
			case $target in
			s3) drop_s3 "$run" ;;
			local) rm -rf "$WORK/data/local-$run" ;;
			esac
		done
	done
}

# txn_table prints the medians of the transactions matrix as markdown.
txn_table() {
	python3 - "$RES" "$RUNS" "$TARGETS" "${TXN_DURATIONS[@]}" <<'PY'
import json, statistics, sys
res, runs, targets, durations = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4:]
print("| target | transaction | produce MB/s | records/s | transactions/s | commit p50 / p99 ms | read_committed consume MB/s |")
print("|---|---|---|---|---|---|---|")
for t in [t for t in targets if t]:
    for d in durations:
        ps = [json.load(open(f"{res}/{t}-txn-{d}-{r}.json")) for r in range(1, runs + 1)]
        cs = [json.load(open(f"{res}/{t}-txn-{d}-consume-{r}.json")) for r in range(1, runs + 1)]
        med = lambda xs: statistics.median(xs)
        lat = lambda s, k, q: (s.get(k) or {}).get(q, 0)
        commit = "-" if d == "0" else f"{med([lat(p, 'commit_latency_ms', 'p50') for p in ps]):.1f} / {med([lat(p, 'commit_latency_ms', 'p99') for p in ps]):.1f}"
        tps = "-" if d == "0" else f"{med([p.get('transactions', 0) / p['elapsed_s'] for p in ps]):.0f}"
        print(f"| {t} | {'none' if d == '0' else d} | {med([p['mb_per_sec'] for p in ps]):.1f} | {med([p['records_per_sec'] for p in ps]):.0f} | {tps} | "
              f"{commit} | {med([c['mb_per_sec'] for c in cs]):.1f} |")
PY
}

start=$SECONDS
IFS=, read -ra targets <<<"$TARGETS"
if ((TXN)); then
	for t in "${targets[@]}"; do
		case $t in
		local | s3) run_txn_target "$t" ;;
		*) ;;
		esac
	done
	txn_table | tee "$RES/txn-table.md"
	log "done in $((SECONDS - start)) s; raw results in $RES"
	exit 0
fi
for t in "${targets[@]}"; do
	case $t in
	local | s3 | kfake) run_kafka_target "$t" ;;
	nats) run_nats ;;
	"") ;;
	*) log "unknown target $t"; exit 2 ;;
	esac
done
{
	echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "total_seconds=$((SECONDS - start))"
} >>"$RES/facts.txt"

log "writing docs/benchmarks-results.md and docs/img/bench-*.png"
"$BIN/report" -results "$RES" -md "$ROOT/docs/benchmarks-results.md" -img "$ROOT/docs/img"
log "done in $((SECONDS - start)) s; raw results in $RES"
