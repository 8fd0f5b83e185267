#!/usr/bin/env bash
# run-tests.sh LOG CMD...: run the test command CMD, its output shown and
# kept in LOG, then print the summary (ok/FAIL lines and failed tests) and
# exit with CMD's status. test-all.sh runs `go test` through it, so a failing
# run still prints which tests failed (under `set -e` a failing
# `go test | tee` pipeline would exit before the summary).
set -uo pipefail
log="$1"
shift
mkdir -p "$(dirname "$log")"
status=0
"$@" 2>&1 | tee "$log" || status=$?
echo "[run-tests] $* finished with status $status"
echo "[run-tests] summary (from $log):"
grep -E '^(ok|FAIL|---|panic:)' "$log" | grep -v '^--- PASS' | grep -v '^--- SKIP' | tail -n 60 || true
if ((status != 0)); then
	echo "[run-tests] failed:"
	grep -E '^(--- FAIL|FAIL)' "$log" || echo "  (no FAIL line: the command itself failed, see $log)"
fi
exit "$status"
