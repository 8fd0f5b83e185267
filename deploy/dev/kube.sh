#!/usr/bin/env bash
# kube-apiserver built from k8s.io/kubernetes (deploy/dev/kube), on etcd (deploy/dev/etcd.sh).
#   deploy/dev/kube.sh start|stop|status
# https://127.0.0.1:16443, RBAC, static tokens (regenerated on every fresh start):
#   $RUN/kube/admin.token     user ebbflow-admin, group system:masters
#   $RUN/kube/actuator.token  system:serviceaccount:ebbflow:ebbflow-actuator
# CA certificate: $RUN/kube/pki/ca.crt
SVC=kube
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION="$(mod_version "$DEV_DIR/kube/go.mod" k8s.io/kubernetes)"
PORT=16443
DIR="$RUN/kube"
PKI="$DIR/pki"
PIDFILE="$DIR/kube-apiserver.pid"
LOGFILE="$DIR/kube-apiserver.log"
MARKER="--token-auth-file=$DIR/tokens.csv"

ready() {
	[[ -f "$DIR/admin.token" ]] || return 1
	curl -fsS --max-time 3 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(cat "$DIR/admin.token")" \
		"https://127.0.0.1:$PORT/readyz" | grep -qx ok
}

build() {
	local v=k8s.io/component-base/version ver="${KUBE_VERSION#v}"
	local major="${ver%%.*}" rest="${ver#*.}"
	go_bin kube-apiserver "$KUBE_VERSION" "$DEV_DIR/kube" \
		"-X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=$major -X $v.gitMinor=${rest%%.*} -X $v.gitTreeState=clean"
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
	# First time: compile kube-apiserver while etcd compiles/starts (the two overlap their
	# module downloads and link steps).
	local build_pid=""
	if [[ ! -x "$CACHE/bin/kube-apiserver-$KUBE_VERSION" ]]; then
		build >/dev/null &
		build_pid=$!
	fi
	"$DEV_DIR/etcd.sh" start
	if [[ -n "$build_pid" ]] && ! wait "$build_pid"; then
		die "building kube-apiserver failed"
	fi
	if pid_alive "$PIDFILE" "$MARKER"; then
		wait_for 60 "kube-apiserver" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "already running (pid $(cat "$PIDFILE")), https://127.0.0.1:$PORT"
		return 0
	fi
	ensure_port_free "$PORT" kube-apiserver
	local bin
	bin="$(build)"
	mkdir -p "$DIR"
	gen_pki
	gen_tokens
	: >"$LOGFILE"
	log "starting kube-apiserver $KUBE_VERSION"
	start_bg "$PIDFILE" "$LOGFILE" "$bin" \
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
	log "ready on https://127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"
}

svc_stop() {
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
	return "$rc"
}

if [[ "${1:-}" == build ]]; then
	build >/dev/null
	"$DEV_DIR/etcd.sh" build
	exit 0
fi
usage_main "$@"
