#!/usr/bin/env bash
# bench-summary.sh FILE: the headline figures of a `go test -bench` output
# (the stable b.ReportMetric names of issue 17), each printed with every
# other metric its benchmark reported in the same run (its baselines).
set -euo pipefail
awk '
BEGIN {
  n = split("p99-ms ratio-vs-plain-consumer ratio-vs-decode ratio-vs-adapter delivered-samples/cpu-s ratio-vs-jsonschema", want, " ")
  for (i = 1; i <= n; i++) headline[want[i]] = 1
  print ""; print "== headline figures (each with the baselines from the same run) =="
}
/^Benchmark/ {
  name = $1; sub(/-[0-9]+$/, "", name)
  fig = ""; base = ""
  for (i = 3; i < NF; i += 2) {
    v = $i; u = $(i + 1)
    if (u in headline) fig = fig sprintf("%s %s = %s", (fig == "" ? "" : ";"), u, v)
    else if (u != "ns/op" && u != "B/op" && u != "allocs/op") base = base sprintf("%s %s=%s", (base == "" ? "" : ","), u, v)
  }
  if (fig != "") { printf "%-55s%s\n    baselines:%s\n", name, fig, base; found++ }
}
END { if (!found) print "(no headline figure in this output)" }
' "$1"
