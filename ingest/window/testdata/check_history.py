#!/usr/bin/env python3
"""Independent check of ebbflow's window history.

Reads the Hive-partitioned Parquet history with pyarrow.dataset, recomputes
every window from the raw samples (JSON lines, in arrival order) with the
semantics documented in ingest/window/doc.go, and compares:

  count, sum, min, max, mean, last   exactly (same summation order)
  rate (counters)                    per-series increases with resets, summed
  p50, p95, p99                      within the sketch's relative accuracy of
                                     the exact "lower" quantile

Exit status 0 when everything agrees, 1 with the first differences otherwise.
"""
import argparse
import json
import math
import sys
from collections import defaultdict
from datetime import datetime, timezone

import pyarrow.dataset as ds


def recompute(raw_path, sizes_s, staleness_ms):
    wins = {}
    series = {}
    with open(raw_path) as f:
        for arrival, line in enumerate(f):
            s = json.loads(line)
            ts, v = s["ts"], s["value"]
            inc = None
            if s["kind"] == "counter":
                key = (s["entity"], s["signal"], s["metric"], tuple(sorted(s["labels"].items())))
                prev = series.get(key)
                if prev is None:
                    series[key] = (ts, v)
                elif ts > prev[0]:
                    if ts - prev[0] <= staleness_ms:
                        inc = v - prev[1] if v >= prev[1] else v
                    series[key] = (ts, v)
            for size in sizes_s:
                size_ms = size * 1000
                start = (ts // size_ms) * size_ms
                k = (s["entity"], s["signal"], size, start)
                w = wins.get(k)
                if w is None:
                    w = wins[k] = {"kind": s["kind"], "values": [], "sum": 0.0, "last": (None, None), "inc": 0.0}
                w["values"].append(v)
                w["sum"] += v
                if w["last"][0] is None or ts >= w["last"][0]:
                    w["last"] = (ts, v)
                if inc is not None:
                    w["inc"] += inc
    out = {}
    for k, w in wins.items():
        vals = sorted(w["values"])
        n = len(vals)
        r = {
            "kind": w["kind"], "count": n, "sum": w["sum"], "min": vals[0], "max": vals[-1],
            "mean": w["sum"] / n, "last": w["last"][1],
            "p50": vals[math.floor(0.5 * (n - 1))], "p95": vals[math.floor(0.95 * (n - 1))],
            "p99": vals[math.floor(0.99 * (n - 1))],
            "rate": w["inc"] / k[2] if w["kind"] == "counter" else None,
        }
        out[k] = r
    return out


def read_history(path):
    dataset = ds.dataset(path, format="parquet", partitioning="hive")
    rows = dataset.to_table().to_pylist()
    best = {}
    for r in rows:
        start = datetime.fromtimestamp(r["start_ms"] / 1000, tz=timezone.utc)
        # The Hive partition columns agree with the row.
        if str(r["size"]) != f'{r["size_s"]}s' or str(r["dt"]) != start.strftime("%Y-%m-%d") or int(r["hour"]) != start.hour:
            raise SystemExit(f"row {r} is in the wrong partition")
        k = (r["entity"], r["signal"], r["size_s"], r["start_ms"])
        if k not in best or r["revision"] > best[k]["revision"]:
            best[k] = r
    return best, len(rows)


def close(a, b, rel=1e-9):
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--history", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--sizes", required=True, help="comma-separated window sizes in seconds")
    ap.add_argument("--staleness-ms", type=int, default=300000)
    ap.add_argument("--before-ms", type=int, required=True, help="only windows starting before this")
    ap.add_argument("--accuracy", type=float, default=0.01)
    a = ap.parse_args()
    sizes = [int(x) for x in a.sizes.split(",")]
    want = {k: v for k, v in recompute(a.raw, sizes, a.staleness_ms).items() if k[3] < a.before_ms}
    got, nrows = read_history(a.history)
    errs = []
    for k in sorted(set(want) - set(got)):
        errs.append(f"missing from history: {k}")
    for k in sorted(set(got) - set(want)):
        errs.append(f"unexpected in history: {k}")
    for k in sorted(set(want) & set(got)):
        w, g = want[k], got[k]
        if g["kind"] != w["kind"] or g["count"] != w["count"]:
            errs.append(f"{k}: kind/count {g['kind']}/{g['count']} want {w['kind']}/{w['count']}")
            continue
        for f in ("sum", "min", "max", "mean", "last"):
            if not close(g[f], w[f]):
                errs.append(f"{k}: {f} {g[f]} want {w[f]}")
        if w["rate"] is None:
            if g["rate"] is not None:
                errs.append(f"{k}: gauge has rate {g['rate']}")
        elif g["rate"] is None or not close(g["rate"], w["rate"]):
            errs.append(f"{k}: rate {g['rate']} want {w['rate']}")
        for f in ("p50", "p95", "p99"):
            if abs(g[f] - w[f]) > a.accuracy * abs(w[f]) + 1e-9:
                errs.append(f"{k}: {f} {g[f]} not within {a.accuracy:.0%} of {w[f]}")
    if errs:
        print(f"{len(errs)} difference(s):", *errs[:20], sep="\n")
        return 1
    print(f"ok: {len(want)} windows ({nrows} rows) agree with pyarrow's recomputation from {a.raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
