#!/usr/bin/env bash
# kwok (sigs.k8s.io/kwok, built in deploy/dev/kwok) runs fake nodes and their pods on the dev
# kube-apiserver (deploy/dev/kube.sh must be up first).
#   deploy/dev/kwok.sh start|stop|status|build
# Manages the nodes annotated kwok.x-k8s.io/node=fake (tests create them, see internal/cluster),
# with the stages in deploy/dev/kwok/stages.yaml, and renews their Leases (the node-lifecycle
# controller's heartbeat). Health: http://127.0.0.1:16460/healthz.
SVC=kwok
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KWOK_VERSION="$(mod_version "$DEV_DIR/kwok/go.mod" sigs.k8s.io/kwok)"
PORT=16460
DIR="$RUN/kwok"
KUBE="$RUN/kube"
PIDFILE="$DIR/kwok.pid"
LOGFILE="$DIR/kwok.log"
MARKER="--kubeconfig=$DIR/kwok.kubeconfig"

ready() { curl -fsS --max-time 3 "http://127.0.0.1:$PORT/healthz" >/dev/null; }

# build: print the cached binary's path, building it the first time.
build() {
	local dir
	dir="$(go_bins "kwok-$KWOK_VERSION" "$DEV_DIR/kwok" "" .)"
	echo "$dir/kwok"
}


svc_start() {
	local bin kubebin moddir
	bin="$(build)"
	wait_kube_ready 120 kwok
	if pid_alive "$PIDFILE" "$MARKER"; then
		wait_for 30 "kwok" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "already running (pid $(cat "$PIDFILE"))"
		return 0
	fi
	ensure_port_free "$PORT" kwok
	mkdir -p "$DIR"
	gen_client_cert "$KUBE/pki" kwok kwok-controller
	write_kubeconfig "$DIR/kwok.kubeconfig" https://127.0.0.1:16443 "$KUBE/pki/ca.crt" "$KUBE/pki/kwok.crt" "$KUBE/pki/kwok.key"
	kubebin="$("$DEV_DIR/kube.sh" bindir)"
	moddir="$(cd "$DEV_DIR/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
	[[ -n "$moddir" && -f "$moddir/kustomize/rbac/role.yaml" ]] || die "kwok module source not found (go list -m sigs.k8s.io/kwok)"
	"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" \
		"$moddir/kustomize/rbac/role.yaml" "$DEV_DIR/kwok/rbac.yaml" >"$DIR/apply.log" 2>&1 ||
		{
			dump_log "$DIR/apply.log"
			die "applying kwok's RBAC failed"
		}
	: >"$LOGFILE"
	log "starting kwok $KWOK_VERSION"
	# HOME points at an empty directory so a developer's ~/.kwok/kwok.yaml is not loaded too.
	mkdir -p "$DIR/home"
	HOME="$DIR/home" start_bg "$PIDFILE" "$LOGFILE" "$bin" \
		"$MARKER" \
		--config="$DEV_DIR/kwok/stages.yaml" \
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--server-address="127.0.0.1:$PORT" \
		--node-lease-duration-seconds=40 \
		--cidr=10.244.0.0/16 \
		--node-ip=10.0.0.1
	wait_for 60 "kwok" "$LOGFILE" "$PIDFILE" "$MARKER" ready
	log "ready (pid $(cat "$PIDFILE")), managing nodes annotated kwok.x-k8s.io/node=fake"
}

svc_stop() { stop_pid "$PIDFILE" "$MARKER" kwok; }

svc_status() {
	if pid_alive "$PIDFILE" "$MARKER" && ready; then
		echo "kwok: running (pid $(cat "$PIDFILE")) http://127.0.0.1:$PORT/healthz"
	else
		echo "kwok: stopped"
		return 3
	fi
}

if [[ "${1:-}" == build ]]; then
	build >/dev/null
	exit 0
fi
usage_main "$@"
