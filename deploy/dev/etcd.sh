#!/usr/bin/env bash
# etcd for the dev kube-apiserver, built from go.etcd.io/etcd/server/v3 (deploy/dev/etcd).
#   deploy/dev/etcd.sh start|stop|status
# Clients http://127.0.0.1:12379, peers http://127.0.0.1:12380.
SVC=etcd
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ETCD_VERSION="$(mod_version "$DEV_DIR/etcd/go.mod" go.etcd.io/etcd/server/v3)"
CLIENT_PORT=12379
PEER_PORT=12380
DIR="$RUN/etcd"
PIDFILE="$DIR/etcd.pid"
LOGFILE="$DIR/etcd.log"
MARKER="--data-dir=$DIR/data"

ready() { curl -fsS --max-time 2 "http://127.0.0.1:$CLIENT_PORT/health" | grep -q '"health":"true"'; }

# build: print the cached binary's path, building it the first time.
build() { go_bin etcd "$ETCD_VERSION" "$DEV_DIR/etcd"; }

svc_start() {
	if pid_alive "$PIDFILE" "$MARKER"; then
		wait_for 30 "etcd" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "already running (pid $(cat "$PIDFILE")), http://127.0.0.1:$CLIENT_PORT"
		return 0
	fi
	ensure_port_free "$CLIENT_PORT" etcd
	ensure_port_free "$PEER_PORT" etcd
	local bin
	bin="$(build)"
	mkdir -p "$DIR"
	: >"$LOGFILE"
	log "starting etcd $ETCD_VERSION"
	start_bg "$PIDFILE" "$LOGFILE" "$bin" --name=ebbflow-dev "$MARKER" \
		--listen-client-urls="http://127.0.0.1:$CLIENT_PORT" \
		--advertise-client-urls="http://127.0.0.1:$CLIENT_PORT" \
		--listen-peer-urls="http://127.0.0.1:$PEER_PORT" \
		--initial-advertise-peer-urls="http://127.0.0.1:$PEER_PORT" \
		--initial-cluster="ebbflow-dev=http://127.0.0.1:$PEER_PORT" \
		--listen-metrics-urls="" \
		--quota-backend-bytes=2147483648 \
		--unsafe-no-fsync \
		--log-level=warn
	wait_for 60 "etcd" "$LOGFILE" "$PIDFILE" "$MARKER" ready
	log "ready on http://127.0.0.1:$CLIENT_PORT (pid $(cat "$PIDFILE"))"
}

svc_stop() { stop_pid "$PIDFILE" "$MARKER" etcd; }

svc_status() {
	if pid_alive "$PIDFILE" "$MARKER" && ready; then
		echo "etcd: running (pid $(cat "$PIDFILE")) http://127.0.0.1:$CLIENT_PORT"
	else
		echo "etcd: stopped"
		return 3
	fi
}

if [[ "${1:-}" == build ]]; then
	build >/dev/null
	exit 0
fi
usage_main "$@"
