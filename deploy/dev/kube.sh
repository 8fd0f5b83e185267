#!/usr/bin/env bash
# The Kubernetes control plane built from k8s.io/kubernetes (one module, deploy/dev/kube, one
# `go build` for kube-apiserver, kube-scheduler, kube-controller-manager and kube-apply), on etcd
# (deploy/dev/etcd.sh).
#   deploy/dev/kube.sh start|stop|status|build|bindir
# kube-apiserver https://127.0.0.1:16443, RBAC, static tokens (regenerated on every fresh start):
#   $RUN/kube/admin.token     user ebbflow-admin, group system:masters
#   $RUN/kube/actuator.token  system:serviceaccount:ebbflow:ebbflow-actuator
# and client certificates (stable): $RUN/kube/admin.kubeconfig (system:masters),
# scheduler.kubeconfig, controller-manager.kubeconfig. CA certificate: $RUN/kube/pki/ca.crt
# kube-scheduler https://127.0.0.1:16459/healthz, kube-controller-manager https://127.0.0.1:16457/healthz
# (no leader election; the controllers in KCM_CONTROLLERS below).
SVC=kube
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION="$(mod_version "$DEV_DIR/kube/go.mod" k8s.io/kubernetes)"
PORT=16443
DIR="$RUN/kube"
PKI="$DIR/pki"
PIDFILE="$DIR/kube-apiserver.pid"
LOGFILE="$DIR/kube-apiserver.log"
MARKER="--token-auth-file=$DIR/tokens.csv"
SCHED_PORT=16459
SCHED_PIDFILE="$DIR/kube-scheduler.pid"
SCHED_LOGFILE="$DIR/kube-scheduler.log"
SCHED_MARKER="--kubeconfig=$DIR/scheduler.kubeconfig"
KCM_PORT=16457
KCM_PIDFILE="$DIR/kube-controller-manager.pid"
KCM_LOGFILE="$DIR/kube-controller-manager.log"
KCM_MARKER="--kubeconfig=$DIR/controller-manager.kubeconfig"
# Turn Deployments, ReplicaSets and Jobs into pods, collect garbage (owner references,
# terminated/orphaned pods), finish namespace deletion, keep PodDisruptionBudgets' status for the
# Eviction API, clean finished Jobs with a TTL, and run the node lifecycle: the apiserver taints
# every new node node.kubernetes.io/not-ready:NoSchedule (TaintNodesByCondition) and the
# node-lifecycle controller lifts it once the node reports Ready (kwok does, and renews the node's
# Lease as its heartbeat); a node whose heartbeat stops for NODE_GRACE turns NotReady, is tainted
# NoExecute, and the taint-eviction controller evicts its pods.
KCM_CONTROLLERS=deployment-controller,replicaset-controller,job-controller,garbage-collector-controller,pod-garbage-collector-controller,namespace-controller,disruption-controller,node-lifecycle-controller,taint-eviction-controller,ttl-after-finished-controller
# Generous: a busy test machine must not make kwok's nodes look dead.
NODE_GRACE=2m

ready() {
	[[ -f "$DIR/admin.token" ]] || return 1
	curl -fsS --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		"https://127.0.0.1:$PORT/readyz" | grep -qx ok
}

sched_ready() { curl -fsS --max-time 3 -k "https://127.0.0.1:$SCHED_PORT/healthz" | grep -qx ok; }
kcm_ready() { curl -fsS --max-time 3 -k "https://127.0.0.1:$KCM_PORT/healthz" | grep -qx ok; }

# build: print the directory holding the cached binaries, building them the first time.
build() {
	local v=k8s.io/component-base/version ver="${KUBE_VERSION#v}"
	local major="${ver%%.*}" rest="${ver#*.}"
	go_bins "kube-$KUBE_VERSION" "$DEV_DIR/kube" \
		"-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=${rest%%.*} -X $v.gitTreeState=clean" \
		./cmd/kube-apiserver ./cmd/kube-scheduler ./cmd/kube-controller-manager ./cmd/kube-apply
}

gen_pki() {
	mkdir -p "$PKI"
	[[ -f "$PKI/ca.crt" && -f "$PKI/apiserver.crt" && -f "$PKI/sa.key" ]] && return 0
	log "generating CA, serving certificate and service-account key pair"
	(
		cd "$PKI"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=ebbflow-dev-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
			-subj "/CN=kube-apiserver" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n' >apiserver.ext
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out apiserver.crt -days 3650 -extfile apiserver.ext 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	) || die "openssl failed"
}

# gen_kubeconfigs: client certificates and kubeconfigs for the admin (tests, kube-apply) and the
# control-plane components (their users are bound by the apiserver's bootstrap RBAC policy).
gen_kubeconfigs() {
	local server="https://127.0.0.1:$PORT"
	gen_client_cert "$PKI" admin ebbflow-admin system:masters
	gen_client_cert "$PKI" scheduler system:kube-scheduler
	gen_client_cert "$PKI" controller-manager system:kube-controller-manager
	write_kubeconfig "$DIR/admin.kubeconfig" "$server" "$PKI/ca.crt" "$PKI/admin.crt" "$PKI/admin.key"
	write_kubeconfig "$DIR/scheduler.kubeconfig" "$server" "$PKI/ca.crt" "$PKI/scheduler.crt" "$PKI/scheduler.key"
	write_kubeconfig "$DIR/controller-manager.kubeconfig" "$server" "$PKI/ca.crt" "$PKI/controller-manager.crt" "$PKI/controller-manager.key"
}

start_scheduler() {
	local bin="$1"
	if pid_alive "$SCHED_PIDFILE" "$SCHED_MARKER"; then
		wait_for 60 "kube-scheduler" "$SCHED_LOGFILE" "$SCHED_PIDFILE" "$SCHED_MARKER" sched_ready
		return 0
	fi
	ensure_port_free "$SCHED_PORT" kube-scheduler
	: >"$SCHED_LOGFILE"
	log "starting kube-scheduler $KUBE_VERSION"
	start_bg "$SCHED_PIDFILE" "$SCHED_LOGFILE" "$bin/kube-scheduler" \
		"$SCHED_MARKER" \
		--authentication-kubeconfig="$DIR/scheduler.kubeconfig" \
		--authorization-kubeconfig="$DIR/scheduler.kubeconfig" \
		--client-ca-file="$PKI/ca.crt" --authentication-skip-lookup=true \
		--bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
		--cert-dir="$DIR/scheduler-certs" \
		--leader-elect=false \
		--profiling=false \
		--v=1
}

start_kcm() {
	local bin="$1"
	if pid_alive "$KCM_PIDFILE" "$KCM_MARKER"; then
		wait_for 60 "kube-controller-manager" "$KCM_LOGFILE" "$KCM_PIDFILE" "$KCM_MARKER" kcm_ready
		return 0
	fi
	ensure_port_free "$KCM_PORT" kube-controller-manager
	: >"$KCM_LOGFILE"
	log "starting kube-controller-manager $KUBE_VERSION"
	start_bg "$KCM_PIDFILE" "$KCM_LOGFILE" "$bin/kube-controller-manager" \
		"$KCM_MARKER" \
		--authentication-kubeconfig="$DIR/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$DIR/controller-manager.kubeconfig" \
		--client-ca-file="$PKI/ca.crt" --authentication-skip-lookup=true \
		--bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
		--cert-dir="$DIR/controller-manager-certs" \
		--leader-elect=false \
		--use-service-account-credentials=true \
		--controllers="$KCM_CONTROLLERS" \
		--node-monitor-grace-period="$NODE_GRACE" \
		--root-ca-file="$PKI/ca.crt" \
		--profiling=false \
		--v=1
}

gen_tokens() {
	local admin actuator
	admin="$(head -c24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	actuator="$(head -c24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	umask 077
	printf '%s\n' "$admin" >"$DIR/admin.token"
	printf '%s\n' "$actuator" >"$DIR/actuator.token"
	{
		printf '%s,ebbflow-admin,ebbflow-admin,"system:masters"\n' "$admin"
		printf '%s,system:serviceaccount:ebbflow:ebbflow-actuator,ebbflow-actuator,"system:serviceaccounts,system:serviceaccounts:ebbflow,system:authenticated"\n' "$actuator"
	} >"$DIR/tokens.csv"
}

svc_start() {
	# First time: compile the Kubernetes binaries while etcd compiles/starts (the two overlap
	# their module downloads and link steps).
	local build_pid="" bin
	build >/dev/null &
	build_pid=$!
	"$DEV_DIR/etcd.sh" start
	wait "$build_pid" || die "building the Kubernetes binaries failed"
	bin="$(build)"
	mkdir -p "$DIR"
	gen_pki
	gen_kubeconfigs
	if pid_alive "$PIDFILE" "$MARKER"; then
		wait_for 60 "kube-apiserver" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "kube-apiserver already running (pid $(cat "$PIDFILE")), https://127.0.0.1:$PORT"
	else
		ensure_port_free "$PORT" kube-apiserver
		gen_tokens
		: >"$LOGFILE"
		log "starting kube-apiserver $KUBE_VERSION"
		start_bg "$PIDFILE" "$LOGFILE" "$bin/kube-apiserver" \
			--etcd-servers=http://127.0.0.1:12379 \
			--etcd-prefix=/ebbflow-dev \
			--bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$PORT" \
			--tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
			--client-ca-file="$PKI/ca.crt" \
			--cert-dir="$DIR/certs" \
			--authorization-mode=RBAC \
			"$MARKER" \
			--anonymous-auth=false \
			--service-account-key-file="$PKI/sa.pub" \
			--service-account-signing-key-file="$PKI/sa.key" \
			--service-account-issuer=https://kubernetes.default.svc \
			--service-cluster-ip-range=10.96.0.0/16 \
			--disable-admission-plugins=ServiceAccount \
			--endpoint-reconciler-type=none \
			--allow-privileged=true \
			--profiling=false \
			--v=1
		wait_for 120 "kube-apiserver" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "kube-apiserver ready on https://127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
	fi
	start_scheduler "$bin"
	start_kcm "$bin"
	wait_for 90 "kube-scheduler" "$SCHED_LOGFILE" "$SCHED_PIDFILE" "$SCHED_MARKER" sched_ready
	log "kube-scheduler ready on https://127.0.0.1:$SCHED_PORT (pid $(cat "$SCHED_PIDFILE"))"
	wait_for 90 "kube-controller-manager" "$KCM_LOGFILE" "$KCM_PIDFILE" "$KCM_MARKER" kcm_ready
	log "kube-controller-manager ready on https://127.0.0.1:$KCM_PORT (pid $(cat "$KCM_PIDFILE"))"
}

svc_stop() {
	stop_pid "$KCM_PIDFILE" "$KCM_MARKER" kube-controller-manager
	stop_pid "$SCHED_PIDFILE" "$SCHED_MARKER" kube-scheduler
	stop_pid "$PIDFILE" "$MARKER" kube-apiserver
	"$DEV_DIR/etcd.sh" stop
}

svc_status() {
	local rc=0
	"$DEV_DIR/etcd.sh" status || rc=$?
	if pid_alive "$PIDFILE" "$MARKER" && ready; then
		echo "kube-apiserver: running (pid $(cat "$PIDFILE")) https://127.0.0.1:$PORT"
	else
		echo "kube-apiserver: stopped"
		rc=3
	fi
	if pid_alive "$SCHED_PIDFILE" "$SCHED_MARKER" && sched_ready; then
		echo "kube-scheduler: running (pid $(cat "$SCHED_PIDFILE")) https://127.0.0.1:$SCHED_PORT"
	else
		echo "kube-scheduler: stopped"
		rc=3
	fi
	if pid_alive "$KCM_PIDFILE" "$KCM_MARKER" && kcm_ready; then
		echo "kube-controller-manager: running (pid $(cat "$KCM_PIDFILE")) https://127.0.0.1:$KCM_PORT"
	else
		echo "kube-controller-manager: stopped"
		rc=3
	fi
	return "$rc"
}

# bindir: print the directory of the built binaries (kube-apply is used by kwok.sh and kueue.sh).
if [[ "${1:-}" == bindir ]]; then
	build
	exit 0
fi
if [[ "${1:-}" == build ]]; then
	build >/dev/null
	"$DEV_DIR/etcd.sh" build
	exit 0
fi
usage_main "$@"
