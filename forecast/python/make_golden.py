#!/usr/bin/env python3
"""Train small XGBoost models and write golden predictions for forecast/xgb.

The Go scorer in forecast/xgb is checked against these files: every model is
written with Booster.save_model("<name>.json") and its test rows, together with
XGBoost's own predict() output (margin and transformed), are written to
<name>.golden.csv at full precision (Python repr, NaN kept as "nan").
manifest.json lists the cases.

Usage:
    python make_golden.py --out testdata/xgboost [--seed 20240917] [--quick]

The script is deterministic for a given seed (XGBoost is run with one thread).
--quick trains fewer/smaller models; the integration test in forecast/xgb uses
it with a different seed to re-prove parity against live XGBoost.
"""

import argparse
import gzip
import json
import os
import sys

import numpy as np
import xgboost as xgb

N_FEATURES = 8


def make_data(rng, n, nan_frac=0.08):
    """Synthetic load-like data: smooth and interacting features, NaNs in X."""
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 3] = rng.integers(0, 24, size=n)  # an hour-of-day-like feature
    X[:, 5] = np.exp(rng.normal(size=n))  # skewed positive feature
    clean = X.copy()
    mask = rng.random(X.shape) < nan_frac
    X[mask] = np.nan
    raw = (
        1.5 * clean[:, 0]
        + np.sin(clean[:, 3] / 24.0 * 2 * np.pi) * 2.0
        + 0.5 * clean[:, 1] * clean[:, 2]
        + np.log1p(clean[:, 5])
        + 0.3 * rng.normal(size=n)
    )
    return X, raw


def labels_for(objective, raw):
    if objective in ("reg:logistic", "binary:logistic"):
        return (raw > np.median(raw)).astype(np.float64)
    if objective == "count:poisson":
        return np.floor(np.exp(raw / 2.0)).astype(np.float64)
    if objective in ("reg:gamma", "reg:tweedie"):
        return np.exp(raw / 3.0)
    if objective == "reg:squaredlogerror":
        return np.abs(raw) * 10.0
    return raw * 10.0 + 50.0


def edge_rows(booster, base_rows, rng):
    """Rows whose values sit exactly on, and one float64 ulp below, split
    thresholds: these prove the float32 conversion and the strict x < t rule."""
    gb = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]
    trees = gb["gbtree"]["model"]["trees"] if gb["name"] == "dart" else gb["model"]["trees"]
    picks = []
    for tree in trees[:8]:
        for i, left in enumerate(tree["left_children"]):
            if left != -1:
                picks.append((tree["split_indices"][i], tree["split_conditions"][i]))
    rows = []
    for j, (f, t) in enumerate(picks[:40]):
        r = base_rows[j % len(base_rows)].copy()
        t32 = float(np.float32(t))
        r[f] = t32 if j % 2 == 0 else float(np.nextafter(t32, -np.inf))
        rows.append(r)
    return np.array(rows) if rows else np.empty((0, base_rows.shape[1]))


def save_model(out, name, booster):
    """Save as <name>.json; a large model is gzipped (mtime 0, so the bytes are
    reproducible) to keep the committed testdata small. The Go tests read both."""
    model_file = name + ".json"
    path = os.path.join(out, model_file)
    booster.save_model(path)
    if os.path.getsize(path) > 300_000:
        with open(path, "rb") as src:
            data = src.read()
        with gzip.GzipFile(path + ".gz", "wb", compresslevel=9, mtime=0) as dst:
            dst.write(data)
        os.remove(path)
        model_file += ".gz"
    return model_file


def write_case(out, name, booster, X_test, iteration_range=(0, 0), extra=None, model_file=None):
    if model_file is None:
        model_file = save_model(out, name, booster)
    d = xgb.DMatrix(X_test, missing=np.nan, feature_names=booster.feature_names)
    pred = booster.predict(d, iteration_range=iteration_range)
    margin = booster.predict(d, output_margin=True, iteration_range=iteration_range)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(X_test), -1)
    margin = np.asarray(margin, dtype=np.float64).reshape(len(X_test), -1)
    k = pred.shape[1]
    golden_file = name + ".golden.csv"
    with open(os.path.join(out, golden_file), "w") as fh:
        header = ["x%d" % i for i in range(X_test.shape[1])]
        header += ["margin%d" % i for i in range(k)] + ["pred%d" % i for i in range(k)]
        fh.write(",".join(header) + "\n")
        for i in range(len(X_test)):
            vals = list(X_test[i]) + list(margin[i]) + list(pred[i])
            fh.write(",".join(repr(float(v)) for v in vals) + "\n")
    case = {
        "name": name,
        "model": model_file,
        "golden": golden_file,
        "outputs": k,
        "iteration_range": list(iteration_range),
    }
    if extra:
        case.update(extra)
    return case


def train(params, X, y, rounds, **kw):
    p = {"nthread": 1, "seed": 7, "tree_method": "hist"}
    p.update(params)
    return xgb.train(p, xgb.DMatrix(X, y, missing=np.nan, **kw), num_boost_round=rounds)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="directory to write models and goldens into")
    ap.add_argument("--seed", type=int, default=20240917)
    ap.add_argument("--quick", action="store_true", help="smaller models (for the live integration test)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    n_train = 1500 if args.quick else 3000
    X, raw = make_data(rng, n_train)
    X_test, _ = make_data(rng, 120 if args.quick else 200, nan_frac=0.15)
    X_test[0, :] = np.nan  # an all-missing row
    cases = []

    def add(name, params, rounds, objective, X_eval=None, **kw):
        p = dict(params)
        p["objective"] = objective
        y = labels_for(objective, raw)
        b = train(p, X, y, rounds, **kw.pop("dmatrix_kw", {}))
        rows = X_test if X_eval is None else X_eval
        rows = np.vstack([rows, edge_rows(b, rows, rng)])
        cases.append(write_case(args.out, name, b, rows, **kw))
        return b

    # The benchmark model: deep and long.
    deep_rounds = 60 if args.quick else 200
    add("deep_squarederror", {"max_depth": 8, "eta": 0.1, "min_child_weight": 4}, deep_rounds,
        "reg:squarederror")

    shallow = {"max_depth": 2, "eta": 0.3}
    rounds = 20 if args.quick else 40
    # base_score set explicitly (no boost_from_average) versus left default.
    add("shallow_squarederror_base", dict(shallow, base_score=12.5), rounds, "reg:squarederror")
    add("shallow_squaredlogerror", shallow, rounds, "reg:squaredlogerror")
    add("shallow_absoluteerror", shallow, rounds, "reg:absoluteerror")
    add("shallow_pseudohubererror", dict(shallow, huber_slope=3.0), rounds, "reg:pseudohubererror")
    add("shallow_poisson", shallow, rounds, "count:poisson")
    add("shallow_poisson_base", dict(shallow, base_score=2.0), rounds, "count:poisson")
    add("shallow_tweedie", dict(shallow, tweedie_variance_power=1.3), rounds, "reg:tweedie")
    add("shallow_gamma", shallow, rounds, "reg:gamma")
    add("shallow_gamma_base", dict(shallow, base_score=0.7), rounds, "reg:gamma")
    add("shallow_logistic", shallow, rounds, "reg:logistic")
    add("shallow_binary_logistic_base", dict(shallow, base_score=0.3), rounds, "binary:logistic")
    add("mid_binary_logistic", {"max_depth": 5, "eta": 0.2}, rounds, "binary:logistic")

    # Feature names (and types) stored in the model, plus user attributes.
    names = ["cpu", "rps", "p99", "hour", "replicas", "queue", "gpu_util", "mem"]
    b = train(dict(shallow, objective="reg:squarederror"), X, labels_for("reg:squarederror", raw),
              rounds, feature_names=names)
    b.set_attr(ebbflow_features=json.dumps(names), ebbflow_horizon_s="180")
    rows = np.vstack([X_test, edge_rows(b, X_test, rng)])
    cases.append(write_case(args.out, "named_features", b, rows,
                            extra={"feature_names": names,
                                   "attributes": {"ebbflow_features": json.dumps(names),
                                                  "ebbflow_horizon_s": "180"}}))

    # DART: tree weights (weight_drop) scale each tree at prediction time.
    add("dart_squarederror", {"booster": "dart", "max_depth": 4, "eta": 0.3, "rate_drop": 0.2,
                              "skip_drop": 0.0, "seed": 11}, rounds, "reg:squarederror")

    # Early stopping: best_iteration attribute; goldens for all trees and best range.
    y = labels_for("reg:squarederror", raw)
    ntr = int(n_train * 0.7)
    dtr = xgb.DMatrix(X[:ntr], y[:ntr], missing=np.nan)
    dva = xgb.DMatrix(X[ntr:], y[ntr:], missing=np.nan)
    b = xgb.train({"nthread": 1, "seed": 7, "max_depth": 6, "eta": 0.5, "objective": "reg:squarederror"},
                  dtr, num_boost_round=300, evals=[(dva, "val")], early_stopping_rounds=5,
                  verbose_eval=False)
    rows = np.vstack([X_test, edge_rows(b, X_test, rng)])
    cases.append(write_case(args.out, "early_stopped_all", b, rows))
    cases.append(write_case(args.out, "early_stopped_best", b, rows,
                            iteration_range=(0, b.best_iteration + 1),
                            model_file=cases[-1]["model"],
                            extra={"best_iteration": b.best_iteration}))

    # Multi-target regression, one output per tree; base_score is a vector.
    Y = np.stack([labels_for("reg:squarederror", raw), raw * -3.0 + 1.0], axis=1)
    b = train({"max_depth": 3, "eta": 0.3, "objective": "reg:squarederror",
               "multi_strategy": "one_output_per_tree"}, X, Y, rounds)
    rows = np.vstack([X_test, edge_rows(b, X_test, rng)])
    cases.append(write_case(args.out, "multi_target", b, rows))

    # Random forest style: several parallel trees per iteration.
    add("forest_squarederror", {"max_depth": 4, "num_parallel_tree": 4, "subsample": 0.8,
                                "colsample_bynode": 0.8, "eta": 1.0}, 5, "reg:squarederror")

    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump({"xgboost_version": xgb.__version__, "seed": args.seed, "cases": cases}, fh,
                  indent=1)
        fh.write("\n")
    print("wrote %d cases to %s (xgboost %s)" % (len(cases), args.out, xgb.__version__),
          file=sys.stderr)


if __name__ == "__main__":
    main()
