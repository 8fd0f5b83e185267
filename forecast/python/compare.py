#!/usr/bin/env python3
"""Compare forecast learner variants on the test spans of real traces.

Run by `ebbflow forecast compare` (which builds one Parquet matrix per trace
and feature set with ebbflow's Go feature builder and writes the job file);
it can be rerun alone on the same job file. For every trace, fold and
variant it fits on the training span, early-stops on the validation span and
measures on the test span only, with the same splits and purging as
train.py. Results are cached one JSON file per (trace, fold, variant) in the
cache directory: delete a file to refit it.

Rolling-origin folds: fold 0's test span is the newest --test-frac of the
origins, fold 1's the share before it, and so on; each fold trains on
everything before its validation span (an expanding window).

Figures are pooled over folds: the MAE ratio is sum |model error| /
sum |last-value error| over every test row of every fold.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

import train as T

# Variants: a feature set (a matrix the Go side built) and a training
# candidate of train.py.
VARIANTS = {
    "current": ("v1", "huber", False),
    "squared": ("v1", "squared", False),
    "abs": ("v1", "abs", False),
    "abs-w": ("v1", "abs-w", False),
    "q90-w": ("v1", "q90-w", False),
    "abs-w/lags": ("lags", "abs-w", False),
    "abs-w/lags+stats": ("lags+stats", "abs-w", False),
    "abs-w/all": ("all", "abs-w", False),
    "abs-w/per-horizon": ("v1", "abs-w", True),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Args:
    """train.py's fitting defaults."""
    rounds = 300
    max_depth = 5
    eta = 0.1
    early_stop = 20
    threads = 1
    seed = 7


def fold_cuts(origin, n_folds, val_frac, test_frac):
    uniq = np.unique(origin)
    n = len(uniq)
    t, v = int(n * test_frac), int(n * val_frac)
    out = []
    for i in range(n_folds):
        te_hi = n - 1 - i * t
        te_lo = te_hi - t + 1
        va_lo = te_lo - v
        if va_lo <= 0:
            break
        out.append({"val_from": int(uniq[va_lo]), "test_from": int(uniq[te_lo]), "test_to": int(uniq[te_hi])})
    return out


def sums(values, cur, fut, sea, plain=None, q=None):
    """Per-horizon sums (pooled over folds later)."""
    out = []
    for k in range(fut.shape[1]):
        ok = ~np.isnan(fut[:, k]) & ~np.isnan(sea[:, k])
        a = fut[ok, k]
        r = {"n": int(ok.sum()), "ae": float(np.abs(values[ok, k] - a).sum()),
             "ae_last": float(np.abs(cur[ok] - a).sum()), "ae_seasonal": float(np.abs(sea[ok, k] - a).sum())}
        if plain is not None:
            r["ae_plain"] = float(np.abs(plain[ok, k] - a).sum())
        if q is not None:
            d = a - values[ok, k]
            r["covered"] = int((a <= values[ok, k]).sum())
            r["pinball"] = float(np.maximum(q * d, (q - 1) * d).sum())
        out.append(r)
    return out


def key(*parts):
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", required=True, help="job file written by `ebbflow forecast compare`")
    p.add_argument("--cache", required=True)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    Args.threads = a.threads
    jobs = json.load(open(a.jobs))
    os.makedirs(a.cache, exist_ok=True)
    variants = [v for v in a.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            sys.exit(f"compare: unknown variant {v!r} (known: {', '.join(VARIANTS)})")
    results = []
    for tr in jobs["traces"]:
        mats = {}

        def matrix(fs):
            if fs not in mats:
                mats[fs] = T.Matrix(tr["featuresets"][fs], tr["horizons"])
            return mats[fs]

        base = matrix("v1")
        H, step_ms = tr["horizons"], tr["step_s"] * 1000
        folds = fold_cuts(base.origin, tr["folds"], jobs["val_frac"], jobs["test_frac"])
        for fi, fc in enumerate(folds):
            # baselines of this fold (on the v1 matrix; every matrix has the
            # same rows: one per origin with a current value)
            bpath = os.path.join(a.cache, f"{tr['name']}.fold{fi}.baselines.json")
            if not os.path.exists(bpath):
                t0 = time.time()
                trm, _, te, _ = T.split(base.origin, H, step_ms, 0, 0, fc["val_from"], fc["test_from"], fc["test_to"])
                plain = T.fit_plain(base, trm, Args)
                pv = T.predict_plain(base, plain, te)
                s = sums(base.cur[te, None].repeat(H, 1), base.cur[te], base.fut[te], base.sea[te], plain=pv)
                json.dump({"trace": tr["name"], "fold": fi, "cuts": fc, "horizons": s,
                           "train_rows": int(trm.sum()), "seconds": time.time() - t0}, open(bpath, "w"))
                log(f"compare: {tr['name']} fold {fi}: baselines in {time.time()-t0:.0f}s")
            results.append(json.load(open(bpath)) | {"variant": "_baselines"})
            for v in variants:
                fs, cand, per_h = VARIANTS[v]
                c = dict(T.CANDIDATES[cand])
                c["per_horizon"] = c.get("per_horizon", False) or per_h
                path = os.path.join(a.cache, f"{tr['name']}.fold{fi}.{v.replace('/', '_')}.{key(fs, c)}.json")
                if not os.path.exists(path):
                    t0 = time.time()
                    mx = matrix(fs)
                    trm, va, te, _ = T.split(mx.origin, H, step_ms, 0, 0, fc["val_from"], fc["test_from"], fc["test_to"])
                    boosters, rounds = T.fit(mx, c, trm, va, Args)
                    vals = T.predict(mx, boosters, te)
                    vm = T.metrics(T.predict(mx, boosters, va), mx.cur[va], mx.fut[va], mx.sea[va])
                    res = {"trace": tr["name"], "fold": fi, "variant": v, "featureset": fs, "candidate": c,
                           "rounds": rounds, "cuts": fc, "validation_score": T.gate_score(vm, [3, 4, 5]),
                           "horizons": sums(vals, mx.cur[te], mx.fut[te], mx.sea[te], q=c.get("quantile_alpha") if c.get("quantile_alpha") != 0.5 else None),
                           "seconds": time.time() - t0}
                    json.dump(res, open(path, "w"))
                    log(f"compare: {tr['name']} fold {fi} {v}: rounds {rounds} in {time.time()-t0:.0f}s")
                results.append(json.load(open(path)))
    json.dump(summarise(jobs, results, variants), sys.stdout, indent=1)
    print()


def summarise(jobs, results, variants):
    """Pool folds: ratio = sum of absolute errors / sum of last value's."""
    out = {"val_frac": jobs["val_frac"], "test_frac": jobs["test_frac"], "traces": []}
    for tr in jobs["traces"]:
        rows = [r for r in results if r["trace"] == tr["name"]]
        base = [r for r in rows if r["variant"] == "_baselines"]
        H = tr["horizons"]

        def pooled(rs, field):
            return [sum(r["horizons"][k][field] for r in rs) for k in range(H)]

        last = pooled(base, "ae_last")
        n = pooled(base, "n")
        t = {"name": tr["name"], "step_s": tr["step_s"], "folds": len(base), "n": n,
             "cuts": [r["cuts"] for r in base],
             "mae_last": [a / max(c, 1) for a, c in zip(last, n)],
             "seasonal": [a / l for a, l in zip(pooled(base, "ae_seasonal"), last)],
             "plain": [a / l for a, l in zip(pooled(base, "ae_plain"), last)], "variants": {}}
        for v in variants:
            vr = [r for r in rows if r["variant"] == v]
            if not vr:
                continue
            e = {"ratio_last": [a / l for a, l in zip(pooled(vr, "ae"), last)],
                 "rounds": [r["rounds"] for r in vr]}
            if "covered" in vr[0]["horizons"][0]:
                e["coverage"] = [a / c for a, c in zip(pooled(vr, "covered"), n)]
            t["variants"][v] = e
        out["traces"].append(t)
    return out


if __name__ == "__main__":
    main()
