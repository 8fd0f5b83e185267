#!/usr/bin/env bash
# Builds a Prometheus 3 binary (github.com/prometheus/prometheus, module pinned in
# deploy/dev/prometheus3/go.mod) once into the cache, for the integration test that sends
# remote_write 2.0 (io.prometheus.write.v2.Request) from upstream code to ebbflow ingest. Debian's
# Prometheus 2.42 (deploy/dev/prometheus.sh) speaks only remote_write 1.0. Nothing is started:
# the test runs its own process with its own config.
#   deploy/dev/prometheus3.sh [build]   builds once, prints the binary's path
#   deploy/dev/prometheus3.sh path      prints where the binary is (or will be), builds nothing
# Built with -tags=remove_all_sd (no cloud service discovery, only static/file targets) and
# without the web UI's assets (the test needs the HTTP API only).
SVC=prometheus3
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROM3_VERSION="$(mod_version "$DEV_DIR/prometheus3/go.mod" github.com/prometheus/prometheus)"

NAME="prometheus3-$PROM3_VERSION"

# v0.3MM.P of the module is Prometheus 3.MM.P; --version says so.
v="${PROM3_VERSION#v0.3}"
LDFLAGS="-X github.com/prometheus/common/version.Version=3.$((10#${v%%.*})).${v#*.}"

build() {
	local dir
	dir="$(go_bins "$NAME" "$DEV_DIR/prometheus3" "$LDFLAGS" \
		-tags=remove_all_sd github.com/prometheus/prometheus/cmd/prometheus)"
	echo "$dir/prometheus"
}

if [[ "${1:-}" == path ]]; then
	# go_bins' directory for this module (see lib.sh).
	echo "$CACHE/bin/$NAME-$(mod_key "$DEV_DIR/prometheus3")/prometheus"
	exit 0
fi
bin="$(build)"
[[ -x "$bin" ]] || die "$bin missing after the build"
log "ready: $bin ($("$bin" --version 2>&1 | head -1))"
echo "$bin"
