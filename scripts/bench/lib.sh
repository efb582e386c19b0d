# Shell helpers shared by the benchmark scripts (sourced, not run).

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 20000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# stop_pid stops a server a script started and waits for it (10 s, then
# SIGKILL).
stop_pid() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 1 200); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	kill -9 "$1" 2>/dev/null || true
}

# start_streamhouse DIR AGENT_ID BIN [NAME=VALUE...] starts the server BIN
# on its embedded defaults under DIR (local folder storage, SQLite, cache),
# with the settings given, on free loopback ports, and waits (60 s) until
# it is ready. A port found free can be taken by another process before
# the server binds it: then it starts again on other ports, with DIR
# emptied. Sets SERVER_PID, KPORT, HPORT and GPORT; the server's stderr is
# DIR/server.log. Exits the script when the server does not start.
start_streamhouse() {
	local dir=$1 agent=$2 bin=$3 attempt deadline
	shift 3
	for attempt in 1 2 3 4 5; do
		rm -rf "$dir"
		mkdir -p "$dir"
		KPORT=$(free_port)
		HPORT=$(free_port)
		GPORT=$(free_port)
		(cd "$dir" && exec env KAFKA_ADDR="127.0.0.1:$KPORT" HTTP_ADDR="127.0.0.1:$HPORT" GRPC_ADDR="127.0.0.1:$GPORT" \
			LOG_FORMAT=json STREAMHOUSE_AGENT_ID="$agent" LOCAL_STORAGE_PATH="$dir/storage" \
			STREAMHOUSE_METADATA_PATH="$dir/metadata.db" STREAMHOUSE_CACHE="$dir/cache" "$@" \
			"$bin" 2>"$dir/server.log") &
		SERVER_PID=$!
		deadline=$((SECONDS + 60))
		until curl -sf -o /dev/null "http://127.0.0.1:$HPORT/ready"; do
			((SECONDS < deadline)) && kill -0 "$SERVER_PID" 2>/dev/null || break
			sleep 0.05
		done
		curl -sf -o /dev/null "http://127.0.0.1:$HPORT/ready" && return 0
		stop_pid "$SERVER_PID"
		SERVER_PID=
		if ((attempt == 5)) || ! grep -q "address already in use" "$dir/server.log"; then
			echo "bench: the server did not start" >&2
			tail "$dir/server.log" >&2
			exit 1
		fi
		echo "bench: a port was taken meanwhile; starting again" >&2
	done
}
