#!/usr/bin/env bash
# Builds StreamHouse, starts it on local storage (SQLite + a local folder
# under ./data), creates the `demo` topic, produces a few records and
# consumes them. The server keeps running until Ctrl+C.
set -euo pipefail
cd "$(dirname "$0")"

HTTP=${HTTP_ADDR:-127.0.0.1:8080}
API="http://$HTTP"

echo "==> building"
mkdir -p bin
go build -o bin/streamhouse ./cmd/streamhouse

echo "==> starting streamhouse (local storage under ./data; logs in ./data/streamhouse.log)"
mkdir -p data
USE_LOCAL_STORAGE=1 HTTP_ADDR="$HTTP" ./bin/streamhouse >data/streamhouse.log 2>&1 &
pid=$!
trap 'echo; echo "==> stopping"; kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; exit 0' INT TERM
for _ in $(seq 1 100); do
	curl -fsS "$API/ready" >/dev/null 2>&1 && break
	if ! kill -0 $pid 2>/dev/null; then
		echo "streamhouse exited; see data/streamhouse.log" >&2
		exit 1
	fi
	sleep 0.1
done

echo "==> creating topic demo (4 partitions)"
curl -sS -o /dev/null -w '%{http_code}\n' -X POST "$API/api/v1/topics" \
	-H 'Content-Type: application/json' -d '{"name": "demo", "partitions": 4}'

echo "==> producing 5 records to partition 0"
for i in 1 2 3 4 5; do
	curl -sS -X POST "$API/api/v1/produce" -H 'Content-Type: application/json' \
		-d "{\"topic\": \"demo\", \"partition\": 0, \"key\": \"user-$i\", \"value\": \"{\\\"event\\\": \\\"signup\\\", \\\"n\\\": $i}\"}"
	echo
done

echo "==> consuming partition 0 from offset 0"
curl -sS "$API/api/v1/consume?topic=demo&partition=0&offset=0"
echo
echo
echo "StreamHouse is running: REST on $API. Press Ctrl+C to stop it."
wait $pid
