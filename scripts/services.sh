#!/usr/bin/env bash
# Installs (when missing) and starts the real services the test suite runs
# against, on 127.0.0.1 with free ports: PostgreSQL (Debian's package) and
# versitygw, an S3-compatible server (built once with `go install`, cached).
#
#   scripts/services.sh start   # prints nothing but errors; writes $STATE/env.
#                               # Services already running under $STATE are
#                               # kept (tests of others may be using them).
#   scripts/services.sh restart # stops them first
#   scripts/services.sh stop
#   scripts/services.sh env     # prints the export lines tests read
#
# Tests find the services through these variables (see $STATE/env):
#   STREAMHOUSE_TEST_DATABASE_URL   admin URL of the PostgreSQL server; each test
#                                   creates and drops its own database
#   STREAMHOUSE_TEST_S3_ENDPOINT    http://127.0.0.1:PORT; each test uses its own bucket
#   STREAMHOUSE_TEST_S3_ACCESS_KEY, STREAMHOUSE_TEST_S3_SECRET_KEY
set -euo pipefail

STATE=${STREAMHOUSE_SERVICES_DIR:-/tmp/streamhouse-services}
BIN=${STREAMHOUSE_TOOLS_BIN:-$HOME/.cache/streamhouse/bin}
VERSITYGW_VERSION=v1.8.0
S3_ACCESS=streamhouse
S3_SECRET=streamhouse-secret

log() { echo "services: $*" >&2; }

free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	log "no free port found"
	return 1
}

wait_tcp() { # port seconds what
	local deadline=$((SECONDS + $2))
	until (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
		if ((SECONDS > deadline)); then
			log "$3 did not listen on 127.0.0.1:$1 within $2 s"
			return 1
		fi
		sleep 0.1
	done
}

pg_bindir() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[ -x "$d/initdb" ] && { echo "$d"; return 0; }
	done
	return 1
}

install_postgres() {
	pg_bindir >/dev/null && return 0
	log "installing PostgreSQL from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	apt-get install -y -qq postgresql >/dev/null
	pg_bindir >/dev/null || { log "PostgreSQL install failed"; return 1; }
}

install_versitygw() {
	[ -x "$BIN/versitygw" ] && return 0
	log "building versitygw $VERSITYGW_VERSION (once per machine)"
	mkdir -p "$BIN"
	GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
}

start_postgres() {
	local bindir port dir
	bindir=$(pg_bindir)
	dir="$STATE/pg"
	rm -rf "$dir"
	mkdir -p "$dir"
	chown postgres:postgres "$dir" 2>/dev/null || true
	port=$(free_port)
	as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
	as_pg "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$STATE/pg-initdb.log" 2>&1 ||
		{ cat "$STATE/pg-initdb.log" >&2; return 1; }
	# Tests need many short-lived databases and connections; durability of the
	# test server itself does not matter, so fsync is off for speed.
	as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
		-o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >/dev/null ||
		{ cat "$dir/server.log" >&2; return 1; }
	echo "export STREAMHOUSE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable" >>"$STATE/env"
	echo "$bindir" >"$STATE/pg-bindir"
}

start_versitygw() {
	local port dir
	dir="$STATE/s3"
	rm -rf "$dir"
	mkdir -p "$dir/root"
	port=$(free_port)
	ROOT_ACCESS_KEY="$S3_ACCESS" ROOT_SECRET_KEY="$S3_SECRET" \
		setsid "$BIN/versitygw" --port "127.0.0.1:$port" --quiet posix "$dir/root" >"$dir/server.log" 2>&1 &
	echo $! >"$STATE/versitygw.pid"
	wait_tcp "$port" 30 versitygw || { cat "$dir/server.log" >&2; return 1; }
	cat >>"$STATE/env" <<EOF
export STREAMHOUSE_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export STREAMHOUSE_TEST_S3_ACCESS_KEY=$S3_ACCESS
export STREAMHOUSE_TEST_S3_SECRET_KEY=$S3_SECRET
EOF
}

stop() {
	if [ -f "$STATE/versitygw.pid" ]; then
		kill "$(cat "$STATE/versitygw.pid")" 2>/dev/null || true
		rm -f "$STATE/versitygw.pid"
	fi
	if [ -f "$STATE/pg-bindir" ] && [ -d "$STATE/pg/data" ]; then
		if [ "$(id -u)" = 0 ]; then
			runuser -u postgres -- "$(cat "$STATE/pg-bindir")/pg_ctl" -D "$STATE/pg/data" -m immediate stop >/dev/null 2>&1 || true
		else
			"$(cat "$STATE/pg-bindir")/pg_ctl" -D "$STATE/pg/data" -m immediate stop >/dev/null 2>&1 || true
		fi
	fi
	rm -f "$STATE/env"
}

# running: the services of $STATE/env both accept connections.
running() {
	local url s3 port
	[ -f "$STATE/env" ] || return 1
	url=$(sed -n 's/^export STREAMHOUSE_TEST_DATABASE_URL=//p' "$STATE/env")
	s3=$(sed -n 's/^export STREAMHOUSE_TEST_S3_ENDPOINT=//p' "$STATE/env")
	[ -n "$url" ] && [ -n "$s3" ] || return 1
	port=${url##*@127.0.0.1:}
	port=${port%%/*}
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || return 1
	port=${s3##*:}
	(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

case "${1:-}" in
start | restart)
	if [ "$1" = start ] && running; then
		exit 0
	fi
	mkdir -p "$STATE"
	chmod 755 "$STATE"
	stop
	install_postgres
	install_versitygw
	: >"$STATE/env"
	start_postgres
	start_versitygw
	;;
stop) stop ;;
env) cat "$STATE/env" ;;
*)
	echo "usage: $0 start|restart|stop|env" >&2
	exit 2
	;;
esac
