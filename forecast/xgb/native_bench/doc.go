// Package nativebench drives XGBoost's own C predictor (libxgboost.so, as
// shipped in the xgboost Python wheel) so that forecast/xgb's benchmarks and
// parity tests can compare against it in the same run.
//
// Everything but this comment is built only with the xgbnative build tag
// (and cgo), so the default build needs neither a C toolchain nor the
// library. The library is opened at run time with dlopen from the path in
// EBBFLOW_XGBOOST_LIB, e.g.
//
//	EBBFLOW_XGBOOST_LIB=.venv/lib/python3.11/site-packages/xgboost/lib/libxgboost.so \
//	  go test -tags xgbnative -bench . ./forecast/xgb/
package nativebench
