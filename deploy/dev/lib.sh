# shellcheck shell=bash
# Shared helpers for the deploy/dev service scripts. Source it; do not run it.
#
#   EBBFLOW_DEV_CACHE  build/download cache (default ~/.cache/ebbflow-dev): jars, Go binaries
#   EBBFLOW_DEV_RUN    runtime state: configs, data, logs, PID files (default <repo>/.dev/run)

set -euo pipefail

DEV_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$DEV_DIR/../.." && pwd)"
CACHE="${EBBFLOW_DEV_CACHE:-$HOME/.cache/ebbflow-dev}"
RUN="${EBBFLOW_DEV_RUN:-$REPO/.dev/run}"
mkdir -p "$CACHE/bin" "$CACHE/jars" "$RUN"

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "${SVC:-dev}" "$*" >&2; }
die() {
	printf '[%s %s] ERROR: %s\n' "$(date +%H:%M:%S)" "${SVC:-dev}" "$*" >&2
	exit 1
}

# dump_log FILE: the tail of a log, for failure messages.
dump_log() {
	local f="$1"
	if [[ -f "$f" ]]; then
		echo "----- last 40 lines of $f -----" >&2
		tail -n 40 "$f" | cut -c1-400 >&2
		echo "-----" >&2
	fi
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE MARKER: the process in PIDFILE runs and its command line contains MARKER
# (guards against a recycled PID).
pid_alive() {
	local pidfile="$1" marker="$2" pid
	[[ -f "$pidfile" ]] || return 1
	pid="$(cat "$pidfile")"
	[[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker"
}

# start_bg PIDFILE LOGFILE CMD...: start CMD detached (own session), record its PID.
start_bg() {
	local pidfile="$1" logfile="$2"
	shift 2
	mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
	setsid nohup "$@" >>"$logfile" 2>&1 </dev/null &
	echo $! >"$pidfile"
}

# stop_pid PIDFILE MARKER NAME: stop exactly the process recorded in PIDFILE.
stop_pid() {
	local pidfile="$1" marker="$2" name="$3" pid i
	if ! pid_alive "$pidfile" "$marker"; then
		rm -f "$pidfile"
		log "$name not running"
		return 0
	fi
	pid="$(cat "$pidfile")"
	log "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do
		[[ -d "/proc/$pid" ]] || break
		sleep 0.2
	done
	if [[ -d "/proc/$pid" ]]; then
		log "$name did not stop in 20s, killing"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
}

# wait_for TIMEOUT_S WHAT LOGFILE PIDFILE MARKER CHECK...: poll CHECK until it succeeds; fail
# with the log's tail when the timeout passes or the process dies.
wait_for() {
	local timeout="$1" what="$2" logfile="$3" pidfile="$4" marker="$5"
	shift 5
	local deadline=$((SECONDS + timeout)) grace=20 pid
	while ! "$@" >/dev/null 2>&1; do
		if ! pid_alive "$pidfile" "$marker"; then
			# Just started, the forked shell may not have exec'd the command
			# yet (its cmdline lacks the marker): allow that for a few seconds
			# while the process exists.
			pid="$(cat "$pidfile" 2>/dev/null || true)"
			if ((grace > 0)) && [[ -n "$pid" && -d "/proc/$pid" ]]; then
				grace=$((grace - 1))
				sleep 0.2
				continue
			fi
			dump_log "$logfile"
			die "$what: process exited before it was ready (log: $logfile)"
		fi
		if ((SECONDS >= deadline)); then
			dump_log "$logfile"
			die "$what: not ready within ${timeout}s (log: $logfile)"
		fi
		sleep 0.5
	done
}

# ensure_port_free PORT WHAT: fail clearly when a foreign process holds a port we need.
ensure_port_free() {
	if port_open "$1"; then
		die "$2: port 127.0.0.1:$1 is already in use by another process (not started by this script): $(ss -ltnpH "sport = :$1" 2>/dev/null | head -1)"
	fi
}

# mvn_jars NAME POMDIR: copy the runtime classpath of POMDIR/pom.xml into the cache (keyed by
# the pom's hash) once; print the directory.
mvn_jars() {
	local name="$1" pomdir="$2" key dest tmp
	key="$(sha256sum "$pomdir/pom.xml" | cut -c1-12)"
	dest="$CACHE/jars/$name-$key"
	if [[ ! -f "$dest/.complete" ]]; then
		(
			flock 9
			if [[ ! -f "$dest/.complete" ]]; then
				log "fetching $name jars from Maven Central (cached in $dest)"
				tmp="$dest.tmp.$$"
				rm -rf "$tmp"
				local rc=0
				timeout "$DOWNLOAD_TIMEOUT" mvn -q -B -f "$pomdir/pom.xml" dependency:copy-dependencies \
					-DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE/jars/$name.mvn.log" 2>&1 || rc=$?
				if ((rc == 124)); then
					dump_log "$CACHE/jars/$name.mvn.log"
					die "fetching the $name jars: 'mvn dependency:copy-dependencies' for $pomdir/pom.xml did not finish within ${DOWNLOAD_TIMEOUT}s (Maven Central or network hung; EBBFLOW_DEV_DOWNLOAD_TIMEOUT raises the bound)"
				elif ((rc != 0)); then
					dump_log "$CACHE/jars/$name.mvn.log"
					die "maven could not fetch the $name jars"
				fi
				rm -rf "$dest"
				mv "$tmp" "$dest"
				touch "$dest/.complete"
			fi
		) 9>"$CACHE/jars/$name.lock"
	fi
	echo "$dest"
}

# mod_version GOMOD MODULE: the version GOMOD requires of MODULE.
mod_version() {
	local v
	v="$(awk -v m="$2" '($1=="require" && $2==m) {print $3; exit} ($1==m && $2 ~ /^v/) {print $2; exit}' "$1")"
	[[ -n "$v" ]] || die "$1 does not require $2"
	echo "$v"
}

# Bounds on the one-time downloads and Go builds (seconds). A step that runs past its bound fails
# and says which step hung: a download (Maven jars, pip, Go modules: network, proxy) or the
# compile/link (machine overloaded).
DOWNLOAD_TIMEOUT="${EBBFLOW_DEV_DOWNLOAD_TIMEOUT:-900}"
BUILD_TIMEOUT="${EBBFLOW_DEV_BUILD_TIMEOUT:-3600}"

# mod_key MODDIR: a short hash of a module's go.mod, go.sum and Go sources (cache key).
mod_key() {
	(cd "$1" && find . \( -name '*.go' -o -name go.mod -o -name go.sum \) -type f | LC_ALL=C sort | xargs sha256sum) |
		sha256sum | cut -c1-12
}

# go_build NAME MODDIR OUT LDFLAGS PKG...: download MODDIR's modules, then build PKG... into OUT
# (a file for one package, a directory for several), each step bounded; fail naming the step.
go_build() {
	local name="$1" moddir="$2" out="$3" ldflags="$4" t0=$SECONDS rc
	shift 4
	mkdir -p "$CACHE/logs"
	local blog="$CACHE/logs/$name-build.log"
	: >"$blog"
	rc=0
	(cd "$moddir" && GOFLAGS="-mod=mod -buildvcs=false" timeout "$DOWNLOAD_TIMEOUT" go mod download) >>"$blog" 2>&1 || rc=$?
	if ((rc == 124)); then
		dump_log "$blog"
		die "building $name: 'go mod download' in $moddir did not finish within ${DOWNLOAD_TIMEOUT}s (module proxy or network hung; EBBFLOW_DEV_DOWNLOAD_TIMEOUT raises the bound)"
	elif ((rc != 0)); then
		dump_log "$blog"
		die "building $name: 'go mod download' in $moddir failed"
	fi
	rc=0
	(cd "$moddir" && GOFLAGS="-mod=mod -buildvcs=false" timeout "$BUILD_TIMEOUT" go build -trimpath -ldflags="$ldflags" -o "$out" "$@") >>"$blog" 2>&1 || rc=$?
	if ((rc == 124)); then
		dump_log "$blog"
		die "building $name: 'go build $*' in $moddir did not finish within ${BUILD_TIMEOUT}s (compile/link hung or the machine is overloaded; EBBFLOW_DEV_BUILD_TIMEOUT raises the bound)"
	elif ((rc != 0)); then
		dump_log "$blog"
		die "building $name: 'go build $*' in $moddir failed"
	fi
	log "built $name in $((SECONDS - t0))s"
}

# go_bin NAME VERSION MODDIR [LDFLAGS]: build MODDIR's main package into $CACHE/bin/NAME-VERSION
# once (GOFLAGS=-mod=mod, go.sum committed); print the path.
go_bin() {
	local name="$1" version="$2" moddir="$3" ldflags="${4:-}" out
	[[ -n "$version" ]] || die "go_bin $name: empty version"
	out="$CACHE/bin/$name-$version"
	if [[ ! -x "$out" ]]; then
		(
			flock 9
			if [[ ! -x "$out" ]]; then
				log "building $name $version from Go modules (first time only)"
				trap 'rm -f "$out.tmp.$$"' EXIT # also when go_build dies
				go_build "$name" "$moddir" "$out.tmp.$$" "$ldflags" .
				mv "$out.tmp.$$" "$out"
			fi
		) 9>"$CACHE/bin/.$name.lock" >&2 || die "building $name failed"
	fi
	echo "$out"
}

# go_bins NAME MODDIR LDFLAGS PKG...: build several main packages of MODDIR in ONE go build
# invocation (they share compiled packages) into $CACHE/bin/NAME-<module hash>/ once; print
# that directory.
go_bins() {
	local name="$1" moddir="$2" ldflags="$3" dir
	shift 3
	dir="$CACHE/bin/$name-$(mod_key "$moddir")"
	if [[ ! -f "$dir/.complete" ]]; then
		(
			flock 9
			if [[ ! -f "$dir/.complete" ]]; then
				log "building $name ($*) from Go modules (first time only)"
				trap 'rm -rf "$dir.tmp.$$"' EXIT # also when go_build dies
				mkdir -p "$dir.tmp.$$"
				go_build "$name" "$moddir" "$dir.tmp.$$" "$ldflags" "$@"
				touch "$dir.tmp.$$/.complete"
				rm -rf "$dir"
				mv "$dir.tmp.$$" "$dir"
			fi
		) 9>"$CACHE/bin/.$name.lock" >&2 || die "building $name failed"
	fi
	echo "$dir"
}

# gen_client_cert PKI NAME CN [ORG]: a client certificate NAME.crt/NAME.key signed by PKI's CA,
# generated once.
gen_client_cert() {
	local pki="$1" name="$2" cn="$3" org="${4:-}" subj
	[[ -f "$pki/$name.crt" && -f "$pki/$name.key" ]] && return 0
	subj="/CN=$cn"
	[[ -n "$org" ]] && subj="/O=$org/CN=$cn"
	(
		cd "$pki"
		openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
		printf 'extendedKeyUsage=clientAuth\n' >"$name.ext"
		openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
			-out "$name.crt" -days 3650 -extfile "$name.ext" 2>/dev/null
		rm -f "$name.csr" "$name.ext"
	) || die "openssl failed for the $name client certificate"
}

# write_kubeconfig FILE SERVER CA CERT KEY: a kubeconfig with a client certificate.
write_kubeconfig() {
	local file="$1" server="$2" ca="$3" cert="$4" key="$5"
	(
		umask 077
		printf '%s\n' \
			"apiVersion: v1" "kind: Config" "clusters:" "- name: ebbflow-dev" "  cluster:" \
			"    server: $server" "    certificate-authority: $ca" "users:" "- name: user" "  user:" \
			"    client-certificate: $cert" "    client-key: $key" "contexts:" "- name: ebbflow-dev" \
			"  context:" "    cluster: ebbflow-dev" "    user: user" "current-context: ebbflow-dev" >"$file.tmp"
		mv "$file.tmp" "$file"
	)
}

# wait_kube_ready TIMEOUT WHAT: wait until the dev kube-apiserver answers /readyz (it is started
# by kube.sh; scripts of services that run on it call this first).
wait_kube_ready() {
	local timeout="$1" what="$2" deadline=$((SECONDS + $1)) kube="$RUN/kube"
	until [[ -f "$kube/pki/admin.crt" ]] && curl -fsS --max-time 3 --cacert "$kube/pki/ca.crt" \
		--cert "$kube/pki/admin.crt" --key "$kube/pki/admin.key" "https://127.0.0.1:16443/readyz" 2>/dev/null | grep -qx ok; do
		((SECONDS < deadline)) || die "$what: kube-apiserver https://127.0.0.1:16443 not ready within ${timeout}s (start it with deploy/dev/kube.sh start)"
		sleep 1
	done
}

# usage_main: dispatch start|stop|status to the sourcing script's functions.
usage_main() {
	case "${1:-}" in
	start) svc_start ;;
	stop) svc_stop ;;
	status) svc_status ;;
	*)
		echo "usage: $0 start|stop|status" >&2
		exit 2
		;;
	esac
}

# gen_server_pki DIR WHAT: a dev CA (DIR/ca.crt, ca.key) and a server certificate for 127.0.0.1 and
# localhost signed by it (DIR/server.crt, server.key), generated once with openssl.
gen_server_pki() {
	local dir="$1" what="$2"
	[[ -f "$dir/ca.crt" && -f "$dir/server.crt" && -f "$dir/server.key" ]] && return 0
	mkdir -p "$dir"
	(
		cd "$dir"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
			-subj "/CN=ebbflow dev $what CA" 2>/dev/null
		openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
			-days 3650 -extfile server.ext 2>/dev/null
		rm -f server.csr server.ext
	) || die "openssl failed generating the $what dev certificates in $dir"
}

# gen_password FILE: a random password in FILE (mode 600), generated once; prints it.
gen_password() {
	if [[ ! -s "$1" ]]; then
		(umask 077 && head -c18 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$1")
	fi
	cat "$1"
}
