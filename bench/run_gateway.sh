#!/usr/bin/env bash
# bench/run_gateway.sh [CONNS] [LOCK_RATE] [DURATION_S] - the gateway benchmark
# (docs/benchmarks.md): a private Kafka + Redis (scripts/stack.sh in a temp
# state dir), one processor and one gateway of the release build, then
# bench/px_bench_gw: CONNS idle connections (heartbeat every 30 s, from 4
# loopback source addresses), the gateway's RSS per connection, a baseline
# round trip through the gateway alone, and LOCK -> LOCK_ACK latency at
# LOCK_RATE LOCKs/s (each followed by its UNLOCK) for DURATION_S.
#
# Environment: PX_BENCH_BUILD (default build/release, built here if
# missing), PX_BENCH_GATEWAY_ARGS (extra --set ... for the gateway),
# PX_BENCH_PROCESSOR_ARGS (extra --set ... for the processor).
# Limits: one machine, loopback; every process's RLIMIT_NOFILE caps CONNS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${1:-10000}
RATE=${2:-5000}
DURATION=${3:-20}
BUILD=${PX_BENCH_BUILD:-$ROOT/build/release}
SECRET=bench-secret-$$
STATE=$(mktemp -d /tmp/px-bench-gw.XXXXXX)
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$ROOT/scripts/stack.sh" down --state "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ ! -x "$BUILD/gateway/presence-gateway" ] || [ ! -x "$BUILD/bench/px_bench_gw" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target presence-gateway presence-processor px_bench_gw >/dev/null
fi

bash "$ROOT/scripts/stack.sh" up --state "$STATE" --partitions 6 >/dev/null
# shellcheck disable=SC1091
. "$STATE/stack.env"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port)
PR_PORT=$(free_port)
COMMON=(--set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" --set "redis.port=$REDIS_PORT" --set log.level=warn)

# shellcheck disable=SC2086
"$BUILD/processor/presence-processor" "${COMMON[@]}" --set "http.port=$PR_PORT" \
  --set kafka.group.id=bench-gw --set processor.instance=bench ${PX_BENCH_PROCESSOR_ARGS:-} >"$STATE/processor.log" 2>&1 &
PIDS+=($!)
# shellcheck disable=SC2086
"$BUILD/gateway/presence-gateway" "${COMMON[@]}" --set "http.port=$GW_PORT" --set "auth.jwt_secret=$SECRET" \
  --set "limits.connections=$((CONNS + 100))" ${PX_BENCH_GATEWAY_ARGS:-} >"$STATE/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")

for _ in $(seq 300); do
  if curl -fs "http://127.0.0.1:$GW_PORT/readyz" >/dev/null && curl -fs "http://127.0.0.1:$PR_PORT/readyz" >/dev/null; then
    break
  fi
  sleep 0.2
done
curl -fs "http://127.0.0.1:$GW_PORT/readyz" >/dev/null || { tail -20 "$STATE/gateway.log"; echo "gateway not ready" >&2; exit 1; }

echo "bench: $(date -u +%FT%TZ) conns=$CONNS lock_rate=$RATE duration=${DURATION}s nofile=$(ulimit -n) gateway_args='${PX_BENCH_GATEWAY_ARGS:-}'"
"$BUILD/bench/px_bench_gw" --port "$GW_PORT" --secret "$SECRET" --conns "$CONNS" --sources 4 \
  --lockers "$(( CONNS < 2000 ? CONNS : 2000 ))" --lock-rate "$RATE" --duration "$DURATION" --gw-pid "$GW_PID"
echo "gateway: $(curl -fs "http://127.0.0.1:$GW_PORT/metrics" | grep -E '^presence_gateway_(connections|errors_total|lock_ack_latency_seconds_count|presence_coalesced_total) ' | tr '\n' ' ')"
echo "gateway log warnings: $(grep -c 'level=warn\|level=error' "$STATE/gateway.log" || true)"
echo "processor: $(curl -fs "http://127.0.0.1:$PR_PORT/metrics" | grep -E '^presence_processor_(batches_total|batch_phase_us_total|batch_ms_(sum|count))' | tr '\n' ' ')"
