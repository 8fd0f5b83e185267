#!/usr/bin/env bash
# Kueue (sigs.k8s.io/kueue/cmd/kueue, built in deploy/dev/kueue) on the dev kube-apiserver
# (deploy/dev/kube.sh must be up first).
#   deploy/dev/kueue.sh start|stop|status|build
# Installs Kueue's CRDs (with their conversion webhooks) and ClusterRoles from the module's
# config/components, runs the controller with deploy/dev/kueue/configuration.yaml (internal
# certificate management off, only batch/v1 Jobs), generates a CA and a serving certificate for
# 127.0.0.1 and registers Kueue's webhooks for kueue.x-k8s.io and batch objects by URL:
#   webhooks https://127.0.0.1:16470, metrics https://127.0.0.1:16471, health http://127.0.0.1:16472
SVC=kueue
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUEUE_VERSION="$(mod_version "$DEV_DIR/kueue/go.mod" sigs.k8s.io/kueue)"
WEBHOOK_PORT=16470
HEALTH_PORT=16472
DIR="$RUN/kueue"
PKI="$DIR/pki"
KUBE="$RUN/kube"
PIDFILE="$DIR/kueue.pid"
LOGFILE="$DIR/kueue.log"
MARKER="--config=$DIR/configuration.yaml"
NAMESPACE=kueue-system

ready() { curl -fsS --max-time 3 "http://127.0.0.1:$HEALTH_PORT/readyz" >/dev/null; }

# build: print the cached binary's path, building it the first time.
build() {
	local dir
	dir="$(go_bins "kueue-$KUEUE_VERSION" "$DEV_DIR/kueue" "-X sigs.k8s.io/kueue/pkg/version.GitVersion=$KUEUE_VERSION" .)"
	echo "$dir/kueue"
}

gen_webhook_pki() {
	mkdir -p "$PKI/serving"
	[[ -f "$PKI/ca.crt" && -f "$PKI/serving/tls.crt" ]] && return 0
	log "generating the webhook CA and Kueue's serving certificate"
	(
		cd "$PKI"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=ebbflow-dev-kueue-webhook-ca" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout serving/tls.key -out serving.csr \
			-subj "/CN=kueue-webhook" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >serving.ext
		openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out serving/tls.crt -days 3650 -extfile serving.ext 2>/dev/null
		rm -f serving.csr serving.ext
	) || die "openssl failed"
}

# install: CRDs (conversion through the controller's /convert), Kueue's ClusterRoles and its
# Role for secrets in kueue-system, and their bindings to the kueue-controller user.
install() {
	local kubebin="$1" moddir="$2" crds conv
	crds=("$moddir"/config/components/crd/bases/*.yaml)
	# The CRDs Kueue's kustomization patches with a conversion webhook (webhook_in_*.yaml).
	conv="$(grep -h '^  name: ' "$moddir"/config/components/crd/patches/webhook_in_*.yaml | awk '{print $2}' | paste -sd, -)"
	[[ -n "$conv" ]] || die "no conversion webhook patches found in $moddir/config/components/crd/patches"
	# webhook_in_resourceflavors.yaml is commented out in Kueue's kustomization: keep it out.
	conv="$(echo "$conv" | tr ',' '\n' | grep -v '^resourceflavors\.' | paste -sd, -)"
	"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" \
		--webhook-url="https://127.0.0.1:$WEBHOOK_PORT" --ca-bundle="$PKI/ca.crt" \
		--conversion-crds="$conv" --wait-established=60s "${crds[@]}" >"$DIR/apply-crds.log" 2>&1 ||
		{
			dump_log "$DIR/apply-crds.log"
			die "installing Kueue's CRDs failed"
		}
	"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" --name-prefix=kueue- \
		"$moddir/config/components/rbac/role.yaml" "$moddir/config/components/rbac/metrics_auth_role.yaml" \
		>"$DIR/apply-rbac.log" 2>&1 &&
		"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" "$DEV_DIR/kueue/rbac.yaml" \
			>>"$DIR/apply-rbac.log" 2>&1 &&
		sed "s/^  namespace: system$/  namespace: $NAMESPACE/" "$moddir/config/components/rbac/manager_secrets_role.yaml" |
		"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" - >>"$DIR/apply-rbac.log" 2>&1 ||
		{
			dump_log "$DIR/apply-rbac.log"
			die "installing Kueue's RBAC failed"
		}
}

# register_webhooks: Kueue's admission webhooks for its own objects and batch/v1 Jobs (the only
# integration enabled; the others would be no-op webhooks), by URL.
register_webhooks() {
	local kubebin="$1" moddir="$2"
	"$kubebin/kube-apply" --kubeconfig="$KUBE/admin.kubeconfig" --name-prefix=kueue- \
		--webhook-url="https://127.0.0.1:$WEBHOOK_PORT" --ca-bundle="$PKI/ca.crt" \
		--webhook-groups=kueue.x-k8s.io,batch \
		"$moddir/config/components/webhook/manifests.yaml" >"$DIR/apply-webhooks.log" 2>&1 ||
		{
			dump_log "$DIR/apply-webhooks.log"
			die "registering Kueue's webhooks failed"
		}
}

svc_start() {
	local bin kubebin moddir
	bin="$(build)"
	wait_kube_ready 120 kueue
	kubebin="$("$DEV_DIR/kube.sh" bindir)"
	moddir="$(cd "$DEV_DIR/kueue" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kueue)"
	[[ -n "$moddir" && -d "$moddir/config/components/crd/bases" ]] || die "Kueue module source not found (go list -m sigs.k8s.io/kueue)"
	mkdir -p "$DIR"
	gen_webhook_pki
	if pid_alive "$PIDFILE" "$MARKER"; then
		wait_for 60 "kueue" "$LOGFILE" "$PIDFILE" "$MARKER" ready
		log "already running (pid $(cat "$PIDFILE"))"
		return 0
	fi
	ensure_port_free "$WEBHOOK_PORT" kueue
	ensure_port_free "$HEALTH_PORT" kueue
	ensure_port_free 16471 kueue
	install "$kubebin" "$moddir"
	gen_client_cert "$KUBE/pki" kueue kueue-controller
	write_kubeconfig "$DIR/kueue.kubeconfig" https://127.0.0.1:16443 "$KUBE/pki/ca.crt" "$KUBE/pki/kueue.crt" "$KUBE/pki/kueue.key"
	sed -e "s|@CERT_DIR@|$PKI/serving|" -e "s|@NAMESPACE@|$NAMESPACE|" \
		"$DEV_DIR/kueue/configuration.yaml" >"$DIR/configuration.yaml"
	: >"$LOGFILE"
	log "starting kueue $KUEUE_VERSION"
	KUBECONFIG="$DIR/kueue.kubeconfig" KUEUE_METRICS_CERT_DIR="$PKI/serving" POD_NAMESPACE="$NAMESPACE" \
		start_bg "$PIDFILE" "$LOGFILE" "$bin" "$MARKER" --zap-log-level=info
	wait_for 120 "kueue" "$LOGFILE" "$PIDFILE" "$MARKER" ready
	register_webhooks "$kubebin" "$moddir"
	log "ready (pid $(cat "$PIDFILE")), webhooks https://127.0.0.1:$WEBHOOK_PORT"
}

svc_stop() { stop_pid "$PIDFILE" "$MARKER" kueue; }

svc_status() {
	if pid_alive "$PIDFILE" "$MARKER" && ready; then
		echo "kueue: running (pid $(cat "$PIDFILE")) webhooks https://127.0.0.1:$WEBHOOK_PORT"
	else
		echo "kueue: stopped"
		return 3
	fi
}

if [[ "${1:-}" == build ]]; then
	build >/dev/null
	exit 0
fi
usage_main "$@"
