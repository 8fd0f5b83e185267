#!/usr/bin/env python3
"""Fit one ebbflow forecast model with real XGBoost.

ebbflow's Go trainer (`ebbflow forecast train`) builds the feature matrix
with the forecaster's own feature builder and writes it as Parquet; this
script only fits. It reads the matrix, splits it by time (the last
--val-frac of origins validate; the horizon steps just before the split are
purged so no training label overlaps validation), fits a multi-output
XGBoost regressor (one tree per output and round: one model, every horizon),
truncates it at the best early-stopping round, stores the feature spec and
the validation figures in the model's attributes (booster.set_attr), and
writes <out>.model.json and <out>.meta.json.

Progress goes to stderr; the last stdout line is the metadata as JSON.
"""
import argparse
import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import xgboost as xgb


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


def metrics(pred_values, cur, future, seasonal):
    """Per-horizon figures on rows where the future and seasonal-naive exist."""
    out = []
    for k in range(future.shape[1]):
        ok = ~np.isnan(future[:, k]) & ~np.isnan(seasonal[:, k])
        a = future[ok, k]
        f = pred_values[ok, k]
        lv = cur[ok]
        sn = seasonal[ok, k]
        mae = float(np.abs(f - a).mean()) if ok.any() else float("nan")
        mae_l = float(np.abs(lv - a).mean()) if ok.any() else float("nan")
        mae_s = float(np.abs(sn - a).mean()) if ok.any() else float("nan")
        out.append({
            "horizon": k + 1, "n": int(ok.sum()),
            "mae": mae, "smape": smape(f, a) if ok.any() else float("nan"),
            "mae_last": mae_l, "smape_last": smape(lv, a) if ok.any() else float("nan"),
            "mae_seasonal": mae_s, "smape_seasonal": smape(sn, a) if ok.any() else float("nan"),
            "ratio_last": mae / mae_l if mae_l > 0 else float("nan"),
            "ratio_seasonal": mae / mae_s if mae_s > 0 else float("nan"),
        })
    return clean(out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--matrix", required=True, help="Parquet feature matrix written by ebbflow")
    p.add_argument("--spec", required=True, help="feature spec JSON file")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.model.json and PREFIX.meta.json")
    p.add_argument("--model-id", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--val-frac", type=float, default=0.2)
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--max-depth", type=int, default=5)
    p.add_argument("--eta", type=float, default=0.05)
    p.add_argument("--early-stop", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=7)
    a = p.parse_args()

    spec_json = open(a.spec).read()
    spec = json.loads(spec_json)
    H = spec["horizons"]
    step_ms = spec["step_s"] * 1000
    names = None
    t0 = time.time()
    tbl = pq.read_table(a.matrix)
    cols = tbl.column_names
    feat_cols = [c for c in cols if c.startswith("f:")]
    names = [c[2:] for c in feat_cols]
    X = np.column_stack([tbl.column(c).to_numpy() for c in feat_cols]).astype(np.float64)
    origin = tbl.column("origin_ms").to_numpy()
    cur = tbl.column("current").to_numpy()
    scale = tbl.column("scale").to_numpy()
    fut = np.column_stack([tbl.column(f"future_h{k}").to_numpy() for k in range(1, H + 1)])
    lab = np.column_stack([tbl.column(f"label_h{k}").to_numpy() for k in range(1, H + 1)])
    sea = np.column_stack([tbl.column(f"seasonal_h{k}").to_numpy() for k in range(1, H + 1)])
    print(f"train: {len(origin)} rows x {len(names)} features read in {time.time()-t0:.1f}s", file=sys.stderr, flush=True)

    uniq = np.unique(origin)
    cut = uniq[int(len(uniq) * (1 - a.val_frac))]
    have = ~np.isnan(lab).any(axis=1)
    tr = have & (origin < cut - H * step_ms)
    va = origin >= cut
    vfit = va & have
    if tr.sum() < 100 or vfit.sum() < 20:
        sys.exit(f"train: too few rows to fit: {int(tr.sum())} training, {int(vfit.sum())} validation")
    print(f"train: {int(tr.sum())} training rows before {cut}, {int(va.sum())} validation rows", file=sys.stderr, flush=True)

    class Progress(xgb.callback.TrainingCallback):
        def after_iteration(self, model, epoch, evals_log):
            if epoch % 25 == 0:
                last = {k: round(v[-1], 5) for d in evals_log.values() for k, v in d.items()}
                print(f"train: round {epoch}/{a.rounds} validation {last}", file=sys.stderr, flush=True)
            return False

    params = {
        "max_depth": a.max_depth, "eta": a.eta, "subsample": 0.8, "colsample_bytree": 0.8,
        "min_child_weight": 5, "objective": "reg:pseudohubererror", "huber_slope": 1.0,
        "tree_method": "hist", "multi_strategy": "one_output_per_tree",
        "nthread": a.threads, "seed": a.seed, "eval_metric": "mae",
    }
    dtr = xgb.DMatrix(X[tr], label=lab[tr], missing=np.nan, feature_names=names)
    dva = xgb.DMatrix(X[vfit], label=lab[vfit], missing=np.nan, feature_names=names)
    full = xgb.train(params, dtr, num_boost_round=a.rounds, evals=[(dva, "validation")],
                     early_stopping_rounds=a.early_stop, verbose_eval=False, callbacks=[Progress()])
    best = int(full.best_iteration)
    booster = full[: best + 1]
    booster.feature_names = names
    print(f"train: best round {best}", file=sys.stderr, flush=True)

    pred = booster.predict(xgb.DMatrix(X[va], missing=np.nan, feature_names=names))
    pred = pred.reshape(len(pred), -1)
    values = np.maximum(cur[va, None] + scale[va, None] * pred, 0)
    m = metrics(values, cur[va], fut[va], sea[va])
    meta = {
        "model_id": a.model_id, "version": a.version, "signal": spec["signal"],
        "feature_spec": spec, "rounds": best + 1,
        "train_from_ms": int(origin[tr].min()), "train_to_ms": int(origin[tr].max()),
        "validation_from_ms": int(cut), "validation_to_ms": int(origin[va].max()),
        "validation": m,
    }
    booster.set_attr(ebbflow_feature_spec=spec_json.strip(), ebbflow_model_id=a.model_id,
                     ebbflow_model_version=a.version, ebbflow_signal=spec["signal"],
                     ebbflow_train_from_ms=str(meta["train_from_ms"]), ebbflow_train_to_ms=str(meta["train_to_ms"]),
                     ebbflow_validation=json.dumps(m))
    booster.save_model(a.out + ".model.json")
    with open(a.out + ".meta.json", "w") as f:
        json.dump(meta, f, indent=2)
    for r in m:
        print(f"train: h{r['horizon']} MAE {r['mae']:.4g} (last {r['mae_last']:.4g}, seasonal {r['mae_seasonal']:.4g}) "
              f"ratio last {r['ratio_last']:.3f} seasonal {r['ratio_seasonal']:.3f}", file=sys.stderr, flush=True)
    print(json.dumps(clean(meta)))


if __name__ == "__main__":
    main()
