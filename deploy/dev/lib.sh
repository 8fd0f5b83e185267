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
	local deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		if ! pid_alive "$pidfile" "$marker"; then
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
				if ! mvn -q -B -f "$pomdir/pom.xml" dependency:copy-dependencies \
					-DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE/jars/$name.mvn.log" 2>&1; then
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
				log "building $name $version from Go modules (first time only; kube-apiserver takes ~6 min on 2 cores)"
				mkdir -p "$CACHE/logs"
				if ! (cd "$moddir" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags="$ldflags" -o "$out.tmp.$$" .) \
					>"$CACHE/logs/$name-build.log" 2>&1; then
					rm -f "$out.tmp.$$"
					dump_log "$CACHE/logs/$name-build.log"
					die "building $name failed"
				fi
				mv "$out.tmp.$$" "$out"
				log "built $out"
			fi
		) 9>"$CACHE/bin/.$name.lock"
	fi
	echo "$out"
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
