#!/usr/bin/env bash
# make bench: every Go benchmark, each with its baseline measured in the same
# run (ratios are what to read; these machines are shared and noisy), then
# ingest against prometheus-kafka-adapter on the same broker when the
# adapter's module builds here (or EBBFLOW_BENCH_ADAPTER names a binary of
# it built elsewhere), and a summary of the headline figures, each
# with its same-run baselines (deploy/dev/bench-summary.sh), however it ends.
set -euo pipefail
cd "$(dirname "$0")/../.."
lib=$(ls .venv/lib/python3*/site-packages/xgboost/lib/libxgboost.so 2>/dev/null | head -n 1 || true)
if [ -z "$lib" ] && [ "${EBBFLOW_BENCH_ONLY:-}" != adapter ]; then
  echo "bench: libxgboost.so not found in .venv (run make venv)" >&2; exit 1
fi
export EBBFLOW_XGBOOST_LIB="$(pwd)/$lib"
# The real-broker benchmarks (BenchmarkIngestRealKafka, BenchmarkRunOnBroker) need the services.
if [ -f .dev/services.env ]; then
  # shellcheck disable=SC1091
  source .dev/services.env
fi
if [ -z "${EBBFLOW_TEST_KAFKA_BROKERS:-}" ]; then
  echo "bench: EBBFLOW_TEST_KAFKA_BROKERS is not set: BenchmarkIngestRealKafka and BenchmarkRunOnBroker will fail; start deploy/dev/services.sh up first" >&2
fi
mkdir -p .dev
# EBBFLOW_BENCH_ONLY=adapter runs only the comparison with the adapter
# (appending to .dev/bench.txt), not the Go benchmarks.
if [ "${EBBFLOW_BENCH_ONLY:-}" != adapter ]; then
  # -p 1: one package's benchmarks at a time (by default go test runs two
  # packages at once, and their benchmarks would compete for the cores).
  go test -p 1 -run '^$' -bench . -benchmem -tags xgbnative -timeout 30m ./... | tee .dev/bench.txt
fi
summary() { bash deploy/dev/bench-summary.sh .dev/bench.txt; }
trap summary EXIT

# ingest vs prometheus-kafka-adapter: both receive the same distinct
# requests from `ebbflow bench ingest` at 4 and 16 senders, write to the
# same broker, and are compared per receiver CPU-second (ratio-vs-adapter).
# EBBFLOW_BENCH_ADAPTER=/path/to/prometheus-kafka-adapter uses that binary
# (built by hand from its source, see docs/ingest.md) instead of go install.
cache="${XDG_CACHE_HOME:-$HOME/.cache}/ebbflow-dev"
adapter="${EBBFLOW_BENCH_ADAPTER:-$cache/bin/prometheus-kafka-adapter}"
mkdir -p "$cache/bin"
if [ -n "${EBBFLOW_BENCH_ADAPTER:-}" ] && [ ! -x "$adapter" ]; then
  echo "bench: EBBFLOW_BENCH_ADAPTER=$adapter is not an executable" >&2; exit 1
fi
if [ ! -x "$adapter" ]; then
  # cgo (confluent-kafka-go with its bundled librdkafka); never vendored here.
  if ! timeout 600 env GOFLAGS=-mod=mod GOBIN="$cache/bin" go install github.com/Telefonica/prometheus-kafka-adapter@latest >.dev/adapter-build.log 2>&1; then
    echo "bench: ratio-vs-adapter NOT MEASURED: prometheus-kafka-adapter does not build here ($(grep -v '^\s*$' .dev/adapter-build.log | head -n 2 | tr -s '\n\t' '  ')); ingest is compared with decode-only (ratio-vs-decode) and a bare sarama transactional producer (ratio-vs-sarama) in BenchmarkIngestRealKafka above" | tee -a .dev/bench.txt
    exit 0
  fi
fi
if [ -z "${EBBFLOW_TEST_KAFKA_BROKERS:-}" ]; then
  echo "bench: ratio-vs-adapter NOT MEASURED: no Kafka (EBBFLOW_TEST_KAFKA_BROKERS)" | tee -a .dev/bench.txt
  exit 1
fi
go build -o .dev/ebbflow-bench ./cmd/ebbflow
broker="${EBBFLOW_TEST_KAFKA_BROKERS%%,*}"
prefix="benchcmp$(date +%s)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # The comparison's own topics (the adapter's JSON alone is gigabytes).
  .dev/ebbflow-bench bench clean --brokers "$EBBFLOW_TEST_KAFKA_BROKERS" "$prefix" >/dev/null 2>&1 || echo "bench: could not delete the topics $prefix.*" >&2
  summary
}
trap cleanup EXIT
iport=$(free_port); aport=$(free_port); tport=$(free_port)
.dev/ebbflow-bench ingest --set kafka.brokers="$EBBFLOW_TEST_KAFKA_BROKERS" --set kafka.topic_prefix="$prefix" \
  --set ingest.remote_write.listen="127.0.0.1:$iport" --set telemetry.listen="127.0.0.1:$tport" >.dev/bench-ingest.log 2>&1 &
ipid=$!; pids+=("$ipid")
KAFKA_BROKER_LIST="$broker" KAFKA_TOPIC="$prefix.adapter" PORT="$aport" "$adapter" >.dev/bench-adapter.log 2>&1 &
apid=$!; pids+=("$apid")
for url in "http://127.0.0.1:$tport/readyz" "http://127.0.0.1:$aport/metrics"; do
  for _ in $(seq 120); do curl -sf -o /dev/null "$url" && break; sleep 0.5; done
done
field() { python3 -c "import re,sys; m=re.findall(r'(?:^|\s)$1=([0-9.]+)', open('$2').read()); print(m[-1] if m else 'nan')"; }
# Warm both up (connections, the transaction coordinator, the adapter's
# topic, created by the broker on first write with its default partitions).
.dev/ebbflow-bench bench ingest --url "http://127.0.0.1:$iport/api/v1/write" --duration 3s >/dev/null
.dev/ebbflow-bench bench ingest --url "http://127.0.0.1:$aport/receive" --duration 3s >/dev/null
sleep 2
for c in 4 16; do
  # Alternate the receivers; the machine is shared, so compare within a run.
  for round in 1 2; do
    .dev/ebbflow-bench bench ingest --url "http://127.0.0.1:$iport/api/v1/write" --receiver-pid "$ipid" --concurrency "$c" \
      --duration 20s --brokers "$EBBFLOW_TEST_KAFKA_BROKERS" --topic "$prefix.metrics.raw.v1" >.dev/bench-cmp-ingest.txt
    # The adapter acknowledges before its producer delivers: read its
    # topic back (one JSON record per sample) to check what reached Kafka.
    .dev/ebbflow-bench bench ingest --url "http://127.0.0.1:$aport/receive" --receiver-pid "$apid" --concurrency "$c" \
      --duration 20s --brokers "$EBBFLOW_TEST_KAFKA_BROKERS" --topic "$prefix.adapter" --record-per-sample >.dev/bench-cmp-adapter.txt
    cat .dev/bench-cmp-ingest.txt .dev/bench-cmp-adapter.txt >>.dev/bench-cmp-raw.txt
    i=$(field delivered_samples_per_receiver_cpu_s .dev/bench-cmp-ingest.txt)
    a=$(field acknowledged_samples_per_receiver_cpu_s .dev/bench-cmp-adapter.txt)
    ia=$(field acknowledged_samples_per_s .dev/bench-cmp-ingest.txt)
    aa=$(field acknowledged_samples_per_s .dev/bench-cmp-adapter.txt)
    ad=$(field delivered_of_acknowledged .dev/bench-cmp-adapter.txt)
    id=$(field delivered_of_acknowledged .dev/bench-cmp-ingest.txt)
    python3 -c "print('BenchmarkIngestVsAdapter/senders=$c/round=$round  1  %s delivered-samples/cpu-s  %s adapter-acked-samples/cpu-s  %.3f ratio-vs-adapter  %s acked-samples/s  %s adapter-acked-samples/s  %s delivered/acked  %s adapter-delivered/acked' % ('$i', '$a', float('$i')/float('$a'), '$ia', '$aa', '$id', '$ad'))" | tee -a .dev/bench.txt
  done
done
