#!/usr/bin/env bash
# make bench: every Go benchmark, each with its baseline measured in the same
# run (ratios are what to read; these machines are shared and noisy), then a
# summary of the headline figures under their stable b.ReportMetric names,
# each next to the baselines its benchmark reported in the same run.
# With the dev services up (.dev/services.env, or EBBFLOW_TEST_KAFKA_BROKERS
# set), the real-broker benchmarks (build tag integration) run as well.
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=$(ls .venv/lib/python3*/site-packages/xgboost/lib/libxgboost.so 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  echo "bench: libxgboost.so not found in .venv (run make venv)" >&2; exit 1
fi
export EBBFLOW_XGBOOST_LIB="$(pwd)/$lib"
if [ -z "${EBBFLOW_TEST_KAFKA_BROKERS:-}" ] && [ -f .dev/services.env ]; then
  # shellcheck disable=SC1091
  source .dev/services.env
fi
tags=xgbnative
if [ -n "${EBBFLOW_TEST_KAFKA_BROKERS:-}" ]; then
  tags="xgbnative integration"
  echo "bench: real-broker benchmarks against $EBBFLOW_TEST_KAFKA_BROKERS"
else
  echo "bench: EBBFLOW_TEST_KAFKA_BROKERS not set: real-broker benchmarks (BenchmarkRunOnBroker) not run"
fi
mkdir -p .dev
go test -run '^$' -bench "${BENCH:-.}" -benchmem -tags "$tags" -timeout 30m ./... | tee .dev/bench.txt
bash deploy/dev/bench-summary.sh .dev/bench.txt
