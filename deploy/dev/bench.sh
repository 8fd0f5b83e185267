#!/usr/bin/env bash
# make bench: every Go benchmark, each with its baseline measured in the same
# run (ratios are what to read; these machines are shared and noisy), then
# a summary of the headline figures (deploy/dev/bench-summary.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=$(ls .venv/lib/python3*/site-packages/xgboost/lib/libxgboost.so 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  echo "bench: libxgboost.so not found in .venv (run make venv)" >&2; exit 1
fi
export EBBFLOW_XGBOOST_LIB="$(pwd)/$lib"
# The real-broker benchmarks (BenchmarkIngestRealKafka, BenchmarkRunOnBroker) need the services.
if [ -f .dev/services.env ]; then
  # shellcheck disable=SC1091
  source .dev/services.env
fi
if [ -z "${EBBFLOW_TEST_KAFKA_BROKERS:-}" ]; then
  echo "bench: EBBFLOW_TEST_KAFKA_BROKERS is not set: BenchmarkIngestRealKafka and BenchmarkRunOnBroker will fail; start deploy/dev/services.sh up first" >&2
fi
mkdir -p .dev
go test -run '^$' -bench . -benchmem -tags xgbnative -timeout 30m ./... | tee .dev/bench.txt
bash deploy/dev/bench-summary.sh .dev/bench.txt
