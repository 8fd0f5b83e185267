#!/usr/bin/env bash
# xgboost-lib.sh [PYTHON]: print the path of the libxgboost.so that PYTHON's
# xgboost loads (default $EBBFLOW_TEST_PYTHON, else <repo>/.venv/bin/python),
# for EBBFLOW_XGBOOST_LIB: TestNativeParity (-tags xgbnative) compares the Go
# scorer with it in process.
set -euo pipefail
py="${1:-${EBBFLOW_TEST_PYTHON:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/python}}"
if ! lib=$("$py" -c 'from xgboost.libpath import find_lib_path; print(find_lib_path()[0])' 2>&1); then
	echo "xgboost-lib.sh: $py cannot locate libxgboost (run make venv): $lib" >&2
	exit 1
fi
if [ ! -f "$lib" ]; then
	echo "xgboost-lib.sh: $py names $lib, which does not exist" >&2
	exit 1
fi
echo "$lib"
