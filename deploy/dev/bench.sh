#!/usr/bin/env bash
# make bench: every Go benchmark, each with its baseline measured in the same
# run (ratios are what to read; these machines are shared and noisy).
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=$(ls .venv/lib/python3*/site-packages/xgboost/lib/libxgboost.so 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ]; then
  echo "bench: libxgboost.so not found in .venv (run make venv)" >&2; exit 1
fi
export EBBFLOW_XGBOOST_LIB="$(pwd)/$lib"
mkdir -p .dev
go test -run '^$' -bench . -benchmem -tags xgbnative -timeout 30m ./... | tee .dev/bench.txt
