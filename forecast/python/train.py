#!/usr/bin/env python3
"""Fit one ebbflow forecast model with real XGBoost, and report it honestly.

ebbflow's Go trainer (`ebbflow forecast train`) builds the feature matrix
with the forecaster's own feature builder and writes it as Parquet; this
script only fits and measures. Time is split three ways by origin:

    train | validation | test          (newest origins last)

- train fits the trees;
- validation chooses: early stopping, and the best of --candidates;
- test is only reported: it never chooses anything.

Between spans the horizon steps are purged, so no label of an earlier span
reads a value of a later one. On the test span the model is compared, row
for row, with last value, seasonal naive (yesterday) and a plain lag-only
XGBoost (30 raw past values, absolute-error objective, XGBoost's default
parameters, 100 rounds, no early stopping) trained here on the same
training rows: the floor a serious forecaster must clear.

The model keeps its feature spec, its identity and its validation and test
figures in its XGBoost attributes; the Go side judges the promotion gate
from the test figures and adds the verdict (attribute ebbflow_gate).

Progress goes to stderr; the last stdout line is the metadata as JSON.
"""
import argparse
import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import xgboost as xgb

RAW_LAGS = 30

# Candidate training configurations by name. The default ("abs-w") won the
# comparison of docs/forecast.md (forecast/python/compare.py).
CANDIDATES = {
    # the configuration before the comparison (early-stopped at round 1 on
    # a flash-crowd web trace)
    "huber": {"objective": "reg:pseudohubererror", "huber_slope": 1.0, "eta": 0.05, "weight": False},
    "squared": {"objective": "reg:squarederror", "weight": False},
    "abs": {"objective": "reg:absoluteerror", "weight": False},
    # absolute error on the scaled change, each row weighted by its scale:
    # the loss is then exactly the absolute error in the signal's units
    "abs-w": {"objective": "reg:absoluteerror", "weight": True},
    # XGBoost's quantile loss has no multi-target support: one booster per
    # horizon (comparison only; pinball loss at 0.5 is half the absolute
    # error, so q50 is abs by another road)
    "q50-w": {"objective": "reg:quantileerror", "quantile_alpha": 0.5, "weight": True, "per_horizon": True},
    # upper quantile: not a point forecast (never gated on MAE)
    "q90-w": {"objective": "reg:quantileerror", "quantile_alpha": 0.9, "weight": True, "per_horizon": True},
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def smape(f, a):
    den = np.abs(f) + np.abs(a)
    out = np.where(den > 0, 2 * np.abs(f - a) / np.where(den > 0, den, 1), 0.0)
    return float(100 * out.mean())


def clean(o):
    """NaN becomes null so that any JSON reader (Go's included) accepts it."""
    if isinstance(o, float) and o != o:
        return None
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, list):
        return [clean(v) for v in o]
    return o


class Matrix:
    """The Parquet matrix written by ebbflow's Go trainer."""

    def __init__(self, path, horizons):
        t0 = time.time()
        tbl = pq.read_table(path)
        cols = tbl.column_names
        feat_cols = [c for c in cols if c.startswith("f:")]
        self.names = [c[2:] for c in feat_cols]
        self.X = np.column_stack([tbl.column(c).to_numpy() for c in feat_cols]).astype(np.float64)
        self.origin = tbl.column("origin_ms").to_numpy()
        self.cur = tbl.column("current").to_numpy()
        self.scale = tbl.column("scale").to_numpy()
        H = horizons
        self.H = H
        self.fut = np.column_stack([tbl.column(f"future_h{k}").to_numpy() for k in range(1, H + 1)])
        self.lab = np.column_stack([tbl.column(f"label_h{k}").to_numpy() for k in range(1, H + 1)])
        self.sea = np.column_stack([tbl.column(f"seasonal_h{k}").to_numpy() for k in range(1, H + 1)])
        raw = [f"r:lag{k}" for k in range(RAW_LAGS)]
        self.raw = np.column_stack([tbl.column(c).to_numpy() for c in raw]) if all(c in cols for c in raw) else None
        self.have = ~np.isnan(self.lab).any(axis=1)
        log(f"train: {len(self.origin)} rows x {len(self.names)} features read in {time.time()-t0:.1f}s")


def split(origin, H, step_ms, val_frac, test_frac, val_from=None, test_from=None, test_to=None):
    """Boolean masks (train, validation, test) and the cut points.

    Fractions are of the distinct origins; explicit cuts (ms) override
    them (rolling-origin folds). Training rows end H steps before
    validation starts, validation rows H steps before test starts, so
    that no label crosses into a later span.
    """
    uniq = np.unique(origin)
    n = len(uniq)
    if test_from is None:
        test_from = int(uniq[min(n - 1, int(n * (1 - test_frac)))])
    if test_to is None:
        test_to = int(uniq[-1])
    if val_from is None:
        before = uniq[uniq < test_from]
        val_from = int(before[min(len(before) - 1, max(0, len(before) - int(n * val_frac)))])
    purge = H * step_ms
    tr = origin < val_from - purge
    va = (origin >= val_from) & (origin < test_from - purge)
    te = (origin >= test_from) & (origin <= test_to)
    return tr, va, te, {"validation_from_ms": int(val_from), "test_from_ms": int(test_from), "test_to_ms": int(test_to)}


def params_for(c, a):
    p = {
        "max_depth": c.get("max_depth", a.max_depth), "eta": c.get("eta", a.eta),
        "subsample": 0.8, "colsample_bytree": 0.8, "min_child_weight": 5,
        "objective": c["objective"], "tree_method": "hist", "multi_strategy": "one_output_per_tree",
        "nthread": a.threads, "seed": a.seed,
    }
    if c["objective"] == "reg:pseudohubererror":
        p["huber_slope"] = c.get("huber_slope", 1.0)
    if c["objective"] == "reg:quantileerror":
        p["quantile_alpha"] = c["quantile_alpha"]
        p["eval_metric"] = "quantile"
    else:
        p["eval_metric"] = "mae"
    return p


def fit(mx, c, tr, va, a):
    """Fit one candidate with early stopping on validation; per-horizon
    candidates (c["per_horizon"]) fit one booster per horizon."""
    trf = tr & mx.have
    vaf = va & mx.have
    if trf.sum() < 100 or vaf.sum() < 20:
        sys.exit(f"train: too few rows to fit: {int(trf.sum())} training, {int(vaf.sum())} validation")
    w_tr = mx.scale[trf] if c.get("weight") else None
    w_va = mx.scale[vaf] if c.get("weight") else None
    p = params_for(c, a)

    class Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch % 50 == 0:
                last = {k: round(v[-1], 5) for d in evals_log.values() for k, v in d.items()}
                log(f"train: round {epoch}/{a.rounds} validation {last}")
            return False

    def one(lab_tr, lab_va):
        dtr = xgb.DMatrix(mx.X[trf], label=lab_tr, weight=w_tr, missing=np.nan, feature_names=mx.names)
        dva = xgb.DMatrix(mx.X[vaf], label=lab_va, weight=w_va, missing=np.nan, feature_names=mx.names)
        full = xgb.train(p, dtr, num_boost_round=a.rounds, evals=[(dva, "validation")],
                         early_stopping_rounds=a.early_stop, verbose_eval=False, callbacks=[Progress()])
        best = int(full.best_iteration)
        b = full[: best + 1]
        b.feature_names = mx.names
        return b, best + 1

    if c.get("per_horizon"):
        boosters = [one(mx.lab[trf, k], mx.lab[vaf, k]) for k in range(mx.H)]
        return boosters, [r for _, r in boosters]
    b, r = one(mx.lab[trf], mx.lab[vaf])
    return [(b, r)], [r]


def predict(mx, boosters, rows):
    d = xgb.DMatrix(mx.X[rows], missing=np.nan, feature_names=mx.names)
    if len(boosters) == 1:
        pred = boosters[0][0].predict(d).reshape(int(rows.sum()), -1)
    else:
        pred = np.column_stack([b.predict(d) for b, _ in boosters])
    return np.maximum(mx.cur[rows, None] + mx.scale[rows, None] * pred, 0)


def fit_plain(mx, tr, a):
    """The plain baseline: XGBoost on 30 raw past values predicting the raw
    future values, absolute error, default parameters, 100 rounds."""
    if mx.raw is None:
        return None
    trf = tr & ~np.isnan(mx.fut).any(axis=1)
    p = {"objective": "reg:absoluteerror", "tree_method": "hist", "multi_strategy": "one_output_per_tree",
         "nthread": a.threads, "seed": a.seed}
    d = xgb.DMatrix(mx.raw[trf], label=mx.fut[trf], missing=np.nan)
    return xgb.train(p, d, num_boost_round=100)


def predict_plain(mx, plain, rows):
    return plain.predict(xgb.DMatrix(mx.raw[rows], missing=np.nan)).reshape(int(rows.sum()), -1)


def metrics(values, cur, future, seasonal, plain=None, quantile=None):
    """Per-horizon figures on rows where the future and seasonal naive exist."""
    out = []
    for k in range(future.shape[1]):
        ok = ~np.isnan(future[:, k]) & ~np.isnan(seasonal[:, k])
        n = int(ok.sum())
        a = future[ok, k]
        f = values[ok, k]
        lv = cur[ok]
        sn = seasonal[ok, k]
        nanv = float("nan")
        mae = float(np.abs(f - a).mean()) if n else nanv
        mae_l = float(np.abs(lv - a).mean()) if n else nanv
        mae_s = float(np.abs(sn - a).mean()) if n else nanv
        r = {
            "horizon": k + 1, "n": n,
            "mae": mae, "smape": smape(f, a) if n else nanv,
            "mae_last": mae_l, "smape_last": smape(lv, a) if n else nanv,
            "mae_seasonal": mae_s, "smape_seasonal": smape(sn, a) if n else nanv,
            "ratio_last": mae / mae_l if mae_l > 0 else nanv,
            "ratio_seasonal": mae / mae_s if mae_s > 0 else nanv,
        }
        if plain is not None:
            mae_p = float(np.abs(plain[ok, k] - a).mean()) if n else nanv
            r["mae_plain"] = mae_p
            r["ratio_plain"] = mae / mae_p if mae_p > 0 else nanv
        if quantile is not None and n:
            d = a - f
            r["coverage"] = float((a <= f).mean())
            r["pinball"] = float(np.mean(np.maximum(quantile * d, (quantile - 1) * d)))
        out.append(r)
    return clean(out)


def gate_score(m, gate):
    """Mean MAE ratio to last value over the gate horizons (lower is better):
    how candidates are chosen on validation."""
    rs = [r["ratio_last"] for r in m if r["horizon"] in gate and r["ratio_last"] is not None]
    return float(np.mean(rs)) if rs else float("inf")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrix", required=True, help="Parquet feature matrix written by ebbflow")
    p.add_argument("--spec", required=True, help="feature spec JSON file")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.model.json and PREFIX.meta.json")
    p.add_argument("--model-id", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--test-frac", type=float, default=0.15)
    p.add_argument("--candidates", default="abs-w",
                   help="comma-separated candidate configurations (" + ", ".join(CANDIDATES) + "); validation picks one")
    p.add_argument("--gate-horizons", default="3,4,5", help="horizons (steps) validation chooses candidates on")
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--max-depth", type=int, default=5)
    p.add_argument("--eta", type=float, default=0.1)
    p.add_argument("--early-stop", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()

    spec_json = open(a.spec).read()
    spec = json.loads(spec_json)
    H = spec["horizons"]
    step_ms = spec["step_s"] * 1000
    gate = [int(x) for x in a.gate_horizons.split(",") if x]
    mx = Matrix(a.matrix, H)
    tr, va, te, cuts = split(mx.origin, H, step_ms, a.val_frac, a.test_frac)
    log(f"train: {int((tr & mx.have).sum())} training rows, {int((va & mx.have).sum())} validation rows "
        f"from {cuts['validation_from_ms']}, {int(te.sum())} test rows from {cuts['test_from_ms']}")
    if te.sum() == 0:
        sys.exit("train: the test span is empty")

    best = None
    tried = []
    for name in [c for c in a.candidates.split(",") if c]:
        if name not in CANDIDATES:
            sys.exit(f"train: unknown candidate {name!r} (known: {', '.join(CANDIDATES)})")
        c = CANDIDATES[name]
        log(f"train: candidate {name}: {c}")
        boosters, rounds = fit(mx, c, tr, va, a)
        vm = metrics(predict(mx, boosters, va), mx.cur[va], mx.fut[va], mx.sea[va])
        score = gate_score(vm, gate)
        tried.append({"candidate": name, "rounds": rounds, "validation_score": score})
        log(f"train: candidate {name}: rounds {rounds}, validation MAE ratio to last value at h{gate}: {score:.4f}")
        if best is None or score < best[3]:
            best = (name, boosters, vm, score)
    name, boosters, vm, _ = best
    if len(boosters) != 1:
        sys.exit("train: per-horizon candidates are for comparison only (one served model covers every horizon)")
    booster, rounds = boosters[0]

    plain = fit_plain(mx, tr, a)
    plain_te = predict_plain(mx, plain, te) if plain is not None else None
    tm = metrics(predict(mx, boosters, te), mx.cur[te], mx.fut[te], mx.sea[te], plain=plain_te)
    meta = {
        "model_id": a.model_id, "version": a.version, "signal": spec["signal"],
        "feature_spec": spec, "rounds": rounds, "candidate": name,
        "params": params_for(CANDIDATES[name], a), "candidates": tried,
        "train_from_ms": int(mx.origin[tr].min()), "train_to_ms": int(mx.origin[tr].max()),
        "validation_from_ms": cuts["validation_from_ms"], "validation_to_ms": int(mx.origin[va].max()),
        "test_from_ms": cuts["test_from_ms"], "test_to_ms": cuts["test_to_ms"],
        "validation": vm, "test": tm,
        "plain_baseline": "XGBoost on 30 raw past values, reg:absoluteerror, default parameters, 100 rounds, same training rows",
    }
    booster.set_attr(ebbflow_feature_spec=spec_json.strip(), ebbflow_model_id=a.model_id,
                     ebbflow_model_version=a.version, ebbflow_signal=spec["signal"],
                     ebbflow_train_from_ms=str(meta["train_from_ms"]), ebbflow_train_to_ms=str(meta["train_to_ms"]),
                     ebbflow_validation=json.dumps(vm), ebbflow_test=json.dumps(tm),
                     ebbflow_test_from_ms=str(meta["test_from_ms"]), ebbflow_test_to_ms=str(meta["test_to_ms"]))
    booster.save_model(a.out + ".model.json")
    with open(a.out + ".meta.json", "w") as f:
        json.dump(clean(meta), f, indent=2)
    for r in tm:
        log(f"train: test h{r['horizon']} MAE {r['mae']:.4g} (last {r['mae_last']:.4g}, seasonal {r['mae_seasonal']:.4g}, "
            f"plain {r.get('mae_plain', float('nan')):.4g}) ratio last {r['ratio_last']:.3f}")
    print(json.dumps(clean(meta)))


if __name__ == "__main__":
    main()
