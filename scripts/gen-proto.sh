#!/usr/bin/env bash
# Regenerates the Go code of proto/streamhouse.proto into
# proto/streamhousepb (committed, so building never needs protoc).
#
# protoc comes from Debian's protobuf-compiler (installed when missing); the
# Go plugins are installed with `go install` at the pinned versions below
# into a cache folder, so the output only changes when a pin changes. Run it
# after editing the .proto and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."

# protoc-gen-go lives in the protobuf runtime module: keep it at the
# version go.mod requires, so generated code and runtime match.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

if ! command -v protoc >/dev/null 2>&1; then
	echo "protoc missing: installing Debian's protobuf-compiler" >&2
	if [ "$(id -u)" -eq 0 ]; then sudo=; else sudo=sudo; fi
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/streamhouse/protoc-plugins/go-$PROTOC_GEN_GO_VERSION-grpc-$PROTOC_GEN_GO_GRPC_VERSION
if [ ! -x "$cache/protoc-gen-go" ] || [ ! -x "$cache/protoc-gen-go-grpc" ]; then
	mkdir -p "$cache"
	GOBIN=$cache go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
	GOBIN=$cache go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

out=proto/streamhousepb
rm -f "$out"/*.pb.go
mkdir -p "$out"
PATH=$cache:$PATH protoc \
	--proto_path=proto \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	streamhouse.proto
echo "generated $(protoc --version) $PROTOC_GEN_GO_VERSION grpc $PROTOC_GEN_GO_GRPC_VERSION into $out"
