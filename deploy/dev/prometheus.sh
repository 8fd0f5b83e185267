#!/usr/bin/env bash
# Makes sure a prometheus binary exists (Debian's package) for the tests, which start their own
# prometheus process with their own config. The package's own service is not left running.
#   deploy/dev/prometheus.sh [install]   prints the binary's path
SVC=prometheus
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BIN="${EBBFLOW_TEST_PROMETHEUS:-/usr/bin/prometheus}"
if [[ ! -x "$BIN" ]]; then
	[[ "$(id -u)" == 0 ]] || die "$BIN missing; install Debian's prometheus package (apt-get install prometheus) as root"
	log "installing Debian's prometheus package"
	(
		flock 9
		# policy-rc.d answering 101 keeps dpkg from starting the packaged service.
		created_policy=""
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			created_policy=1
		fi
		rc=0
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; } \
			>"$RUN/apt-prometheus.log" 2>&1 || rc=$?
		[[ -n "$created_policy" ]] && rm -f /usr/sbin/policy-rc.d
		if ((rc != 0)); then
			dump_log "$RUN/apt-prometheus.log"
			die "apt-get install prometheus failed"
		fi
	) 9>"$CACHE/.apt.lock"
	# Should the package have started its service anyway, stop it (only the packaged daemon).
	if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
		systemctl stop prometheus || true
		systemctl disable prometheus >/dev/null 2>&1 || true
	elif [[ -x /etc/init.d/prometheus ]] && /etc/init.d/prometheus status >/dev/null 2>&1; then
		/etc/init.d/prometheus stop >/dev/null 2>&1 || true
	fi
	[[ -x "$BIN" ]] || die "$BIN still missing after apt-get install prometheus"
fi
log "ready: $BIN ($("$BIN" --version 2>&1 | head -1))"
echo "$BIN"
