#!/usr/bin/env bash
# scale-run.sh: the scale run of docs/scaling.md. SERIES series (default
# 100,000) scraped every INTERVAL (15s) are sent as remote_write to ingest,
# and flow ingest → window → forecast → autoscale on the real broker, each
# component its own process, for DURATION (default 240s). Every 15 s it
# samples each process's CPU and resident memory and the consumer lag of
# each stage; at the end it prints the sustained rates, lag and memory per
# component, the scale decisions taken and how long after their window.
# Nothing else of the dev services is used (history is local).
#
#   KAFKA=127.0.0.1:19092 SERIES=100000 DURATION=240s bash deploy/dev/scale-run.sh
#
# LAYOUT=services (default) sends whole services of PODS pods (request and
# CPU counters per pod, a replicas gauge per service), so the decider
# decides; LAYOUT=flat is the old worst case (~2 series per entity, no
# replicas signal, no decisions).
#
# Output: .dev/scale/<run>/{samples.tsv,summary.txt,*.log}. On a machine
# shared with other work the figures are pessimistic (every process competes
# for the same cores); the summary prints the load average next to them.
set -euo pipefail
cd "$(dirname "$0")/../.."
KAFKA=${KAFKA:-${EBBFLOW_TEST_KAFKA_BROKERS:-127.0.0.1:19092}}
SERIES=${SERIES:-100000}
PER_REQUEST=${PER_REQUEST:-2000} # Prometheus' max_samples_per_send
INTERVAL=${INTERVAL:-15s}
DURATION=${DURATION:-240s}
LABELS=${LABELS:-20}
LAYOUT=${LAYOUT:-services}
PODS=${PODS:-4}
BIN=${BIN:-.dev/bin/ebbflow}
run=$(date -u +%Y%m%dT%H%M%SZ)
prefix="scale-$run"
dir=".dev/scale/$run"
mkdir -p "$dir"
workers=$(( (SERIES + PER_REQUEST - 1) / PER_REQUEST ))

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "scale-run: building $BIN"
  go build -o "$BIN" ./cmd/ebbflow
fi

raw="$prefix.metrics.raw.v1"
windows="$prefix.metrics.windows.v1"
forecasts="$prefix.forecasts.v1"
decisions="$prefix.decisions.v1"
rw_port=${RW_PORT:-19301}

common=(--set "kafka.brokers=$KAFKA" --set "kafka.topic_prefix=$prefix" --set "history.root=$dir/history"
  --set "telemetry.log_level=warn")
declare -A pid
start() { # name port args...
  local name=$1 port=$2; shift 2
  "$BIN" "$@" "${common[@]}" --set "telemetry.listen=127.0.0.1:$port" >"$dir/$name.log" 2>&1 &
  pid[$name]=$!
}
follower=
cleanup() {
  [ -n "$follower" ] && kill "$follower" 2>/dev/null || true
  for n in "${!pid[@]}"; do kill "${pid[$n]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The run's own topics go (KEEP_TOPICS=1 keeps them for inspection).
  if [ -z "${KEEP_TOPICS:-}" ]; then
    "$BIN" bench clean --brokers "$KAFKA" "$prefix" >/dev/null 2>&1 || echo "scale-run: could not delete the topics $prefix.*"
  fi
}
trap cleanup EXIT

echo "scale-run: $SERIES series every $INTERVAL ($workers remote_write shards of $PER_REQUEST series, layout $LAYOUT) for $DURATION; topics $prefix.*; broker $KAFKA"
start ingest 19311 ingest --set "ingest.remote_write.listen=127.0.0.1:$rw_port"
start window 19312 window --set "window.group=$prefix-window"
start forecast 19313 forecast serve --set "forecast.group=$prefix-forecast" --set "forecast.min_history_steps=2"
# Decisions are signed, as in production (signing.required is on).
"$BIN" keys generate --dir "$dir" --name decision >/dev/null
start autoscale 19314 autoscale --set "autoscale.consumer_group=$prefix-autoscale" --set "autoscale.watch_workloads=false" \
  --set "autoscale.initial_offset=oldest" --set "autoscale.dry_run=true" --set "signing.private_key_file=$dir/decision.key"
for i in $(seq 1 120); do
  curl -fsS -o /dev/null "http://127.0.0.1:19311/readyz" 2>/dev/null && break
  sleep 1
done
sleep 5
for n in "${!pid[@]}"; do
  kill -0 "${pid[$n]}" 2>/dev/null || { echo "scale-run: $n exited at start:"; tail -20 "$dir/$n.log"; exit 1; }
done

clk=$(getconf CLK_TCK)
sample() { # one line per component: t name cpu_s rss_kib hwm_kib
  local t=$1
  for n in ingest window forecast autoscale; do
    local p=${pid[$n]}
    [ -r "/proc/$p/stat" ] || { echo -e "$t\t$n\tgone\t0\t0"; continue; }
    local cpu rss hwm
    cpu=$(awk -v c="$clk" '{printf "%.2f", ($14+$15)/c}' "/proc/$p/stat")
    rss=$(awk '/^VmRSS/{print $2}' "/proc/$p/status")
    hwm=$(awk '/^VmHWM/{print $2}' "/proc/$p/status")
    echo -e "$t\t$n\t$cpu\t$rss\t$hwm"
  done
}
lag() { # t: lag of each stage
  "$BIN" bench lag --brokers "$KAFKA" "$prefix-window=$raw" "$prefix-forecast=$windows" \
    "$prefix-autoscale=$windows" "$prefix-autoscale=$forecasts" 2>/dev/null | sed "s/^/$1\t/"
}

echo -e "t_s\tcomponent\tcpu_s\trss_kib\thwm_kib" >"$dir/samples.tsv"
: >"$dir/lag.tsv"
echo -e "t_s\tload1\tload5\tload15" >"$dir/loadavg.tsv"
loadavg() { echo -e "$1\t$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '\t')" >>"$dir/loadavg.tsv"; }
sample 0 >>"$dir/samples.tsv"
loadavg 0
# Decisions, timed from their window's close: a follower stamps the arrival
# of every window and decision record (records carry event time only).
"$BIN" bench decisions --brokers "$KAFKA" --topic "$decisions" --windows "$windows" --follow 2h --list 3 >"$dir/decisions.txt" 2>&1 &
follower=$!
"$BIN" bench ingest --url "http://127.0.0.1:$rw_port/api/v1/write" --series "$PER_REQUEST" --labels "$LABELS" \
  --concurrency "$workers" --interval "$INTERVAL" --duration "$DURATION" --churn 0 --layout "$LAYOUT" --pods "$PODS" \
  --brokers "$KAFKA" --topic "$raw" >"$dir/load.txt" 2>&1 &
load=$!
t0=$(date +%s)
while kill -0 $load 2>/dev/null; do
  sleep 15
  t=$(( $(date +%s) - t0 ))
  sample $t >>"$dir/samples.tsv"
  lag $t >>"$dir/lag.tsv" || true
  loadavg $t
done
wait $load || { echo "scale-run: load generator failed:"; cat "$dir/load.txt"; exit 1; }
# Drain: the last windows close DELAY after the watermark passes them; give
# the stages 75 s to catch up, sampling lag.
for i in 1 2 3 4 5; do
  sleep 15
  t=$(( $(date +%s) - t0 ))
  sample $t >>"$dir/samples.tsv"
  lag $t >>"$dir/lag.tsv" || true
  loadavg $t
done
el=$(( $(date +%s) - t0 ))
kill -TERM "$follower" 2>/dev/null || true
wait "$follower" 2>/dev/null || true
follower=

{
  echo "scale run $run: $SERIES series every $INTERVAL, layout $LAYOUT ($PODS pods per service), $workers shards × $PER_REQUEST series × $LABELS labels, load $DURATION, then 75 s drain; broker $KAFKA"
  echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; 1-minute load average during the run: $(awk 'NR>1{if(mn==""||$2<mn)mn=$2; if($2>mx)mx=$2; s+=$2; n++} END{printf "min %s mean %.1f max %s", mn, s/n, mx}' "$dir/loadavg.tsv")"
  echo "--- load generator (acknowledged by ingest, delivered to $raw read back read_committed)"
  cat "$dir/load.txt"
  echo "--- records written per topic during the run"
  for tp in "$raw" "$windows" "$forecasts" "$decisions"; do
    "$BIN" bench lag --brokers "$KAFKA" "none-$run=$tp" 2>/dev/null | awk -v tp="$tp" '{for(i=1;i<=NF;i++) if ($i ~ /^end=/) {sub("end=","",$i); print tp": "$i" offsets (records + transaction markers)"}}'
  done
  echo "--- per component over ${el}s: CPU cores used (mean), resident memory now / peak"
  awk -F'\t' -v el="$el" 'NR>1 && $3!="gone" {last[$2]=$3; rss[$2]=$4; hwm[$2]=$5} NR>1 && $1==0 {first[$2]=$3}
    END {for (n in last) printf "%-10s cpu %.1f s (%.3f cores)  rss %.0f MiB  peak %.0f MiB\n", n, last[n]-first[n], (last[n]-first[n])/el, rss[n]/1024, hwm[n]/1024}' "$dir/samples.tsv" | sort
  echo "--- scale decisions on $decisions (dry run), and time from each decision's window to its record"
  cat "$dir/decisions.txt"
  echo "--- consumer lag (records; max over the load, and at the end of the drain)"
  awk '{g=$2; tp=$3; for(i=1;i<=NF;i++) if ($i ~ /^lag=/) {v=substr($i,5)+0; k=g" "tp; if (v>mx[k]) mx[k]=v; last[k]=v}}
    END {for (k in mx) printf "%s max %d end %d\n", k, mx[k], last[k]}' "$dir/lag.tsv" | sed 's/group=//; s/topic=//' | sort
} | tee "$dir/summary.txt"
