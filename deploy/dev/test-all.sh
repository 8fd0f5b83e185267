#!/usr/bin/env bash
# make test: install what the tests need, start the real services (Apache
# Kafka, HDFS, etcd + kube-apiserver + kube-scheduler + kube-controller-manager,
# kwok fake nodes, Kueue, the Python venv, Prometheus), run the unit and
# integration tests against them, and stop the services on exit.
# Fails if any service cannot start: integration tests never skip.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
start=$(date +%s)
stamp() { echo "[make test +$(( $(date +%s) - start ))s] $*"; }

stamp "checking formatting and vet"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...
go vet -tags integration ./...
go vet -tags 'integration crashpoints xgbnative' ./...

cleanup() {
  stamp "stopping services"
  bash "$root/deploy/dev/services.sh" down || true
}
trap cleanup EXIT

stamp "starting services (first run downloads jars and builds etcd, the Kubernetes binaries, kwok and Kueue; later runs reuse caches)"
bash deploy/dev/services.sh up
# shellcheck disable=SC1091
source .dev/services.env
stamp "services up"

export EBBFLOW_PYTHON="$EBBFLOW_TEST_PYTHON"
# TestNativeParity (-tags xgbnative) loads the venv's libxgboost in process.
EBBFLOW_XGBOOST_LIB="$(bash deploy/dev/xgboost-lib.sh "$EBBFLOW_TEST_PYTHON")"
export EBBFLOW_XGBOOST_LIB
# The web UI's browser test drives Debian's chromium headless.
EBBFLOW_TEST_CHROMIUM="$(bash deploy/dev/chromium.sh)"
export EBBFLOW_TEST_CHROMIUM
stamp "running unit and integration tests"
# run-tests.sh prints the summary (the FAIL lines) and exits with go test's
# status; the EXIT trap then stops the services.
status=0
bash deploy/dev/run-tests.sh .dev/test.log go test -count=1 -tags 'integration crashpoints xgbnative' -timeout 60m ./... || status=$?
stamp "tests finished with status $status"
exit "$status"
