#!/usr/bin/env bash
# Creates <repo>/.venv and installs deploy/dev/requirements.txt into it. Idempotent: the install
# is skipped while a stamp holding the requirements' hash matches.
SVC=venv
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="${EBBFLOW_VENV:-$REPO/.venv}"
REQ="$DEV_DIR/requirements.txt"
STAMP="$VENV/.ebbflow-requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
	log "up to date: $VENV"
	exit 0
fi
if [[ ! -x "$VENV/bin/python" ]]; then
	log "creating $VENV"
	python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
log "installing $REQ"
mkdir -p "$RUN"
rc=0
timeout "$DOWNLOAD_TIMEOUT" "$VENV/bin/python" -m pip install --disable-pip-version-check -q -r "$REQ" >"$RUN/venv-pip.log" 2>&1 || rc=$?
if ((rc == 124)); then
	dump_log "$RUN/venv-pip.log"
	die "pip install -r $REQ did not finish within ${DOWNLOAD_TIMEOUT}s (PyPI or network hung; EBBFLOW_DEV_DOWNLOAD_TIMEOUT raises the bound)"
elif ((rc != 0)); then
	dump_log "$RUN/venv-pip.log"
	die "pip install -r $REQ failed"
fi
printf '%s\n' "$want" >"$STAMP"
log "ready: $VENV/bin/python"
