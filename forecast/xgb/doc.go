// Package xgb reads XGBoost models saved in XGBoost's JSON format
// (Booster.save_model("model.json"), XGBoost 1.x–3.x) and scores rows with
// them, giving the same predictions as XGBoost's own CPU predictor.
//
// The forecaster loads a model once with [Load] or [LoadFile] and calls
// [Model.Predict] for single rows on its hot path (no allocations) or
// [Model.PredictMatrix] for batches. A [Model] is immutable after loading and
// safe for concurrent use by any number of goroutines.
//
// What is supported, and why it matches XGBoost exactly:
//
//   - gbtree and dart boosters (dart tree weights are folded into the leaf
//     values at load time); gblinear is rejected.
//   - numeric splits only: a value goes left when float32(x) < threshold, as
//     XGBoost compares in float32; NaN (missing) follows the node's default
//     direction. Models with categorical splits are rejected.
//   - single-output models and multi-target models with one output per tree
//     (multi_strategy "one_output_per_tree", a vector base_score). Vector-leaf
//     trees (multi_strategy "multi_output_tree") are rejected.
//   - objectives reg:squarederror, reg:squaredlogerror, reg:absoluteerror,
//     reg:pseudohubererror (identity output), count:poisson, reg:tweedie,
//     reg:gamma (exp output, base_score turned into a margin with log), and
//     reg:logistic, binary:logistic (sigmoid output, base_score turned into a
//     margin with logit). Any other objective is rejected by name.
//
// Margins are accumulated in float32 in tree order starting from the base
// margin, as XGBoost does, so margins agree bit for bit with XGBoost's
// predict(output_margin=True) for gbtree models; the output transform is then
// applied in float64.
//
// All trees are used by default. [Model.Iterations] narrows a model to a range
// of boosting rounds (XGBoost's iteration_range), and [Model.BestIteration]
// reports the round early stopping chose, if the model records one.
//
// The golden tests in this package compare every supported model kind against
// predictions made by XGBoost itself (testdata/xgboost, written by
// forecast/python/make_golden.py); the integration test (build tag
// integration) re-trains fresh models with live XGBoost and checks them again.
package xgb
