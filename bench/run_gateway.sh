#!/usr/bin/env bash
# bench/run_gateway.sh [CONNS] [LOCK_RATE] [DURATION_S] - the gateway benchmark
# (docs/benchmarks.md): a private Kafka + Redis (scripts/stack.sh in a temp
# state dir), one processor and one gateway of the release build, then
# bench/px_bench_gw: CONNS idle connections (heartbeat every 30 s, from 4
# loopback source addresses), the gateway's RSS per connection, a baseline
# round trip through the gateway alone, and LOCK -> LOCK_ACK latency at
# LOCK_RATE LOCKs/s (each followed by its UNLOCK) for DURATION_S, with the
# CPU each server (gateway, processor, Kafka, Redis) and the generator used
# in that phase and how long their threads waited for a core (the `cpu:`
# and `runq_wait:` lines).
# Then the same scenario against the Socket.IO baseline
# (bench/baselines/socketio/server.js: Socket.IO + @socket.io/redis-adapter
# + ioredis, locks as SET NX PX) on the same Redis, after the gateway and
# processor are stopped, and both results side by side with the ratios
# presence / baseline. The baseline's npm packages are installed here
# (`npm ci`) when node_modules is missing or older than package-lock.json.
#
# Environment: PX_BENCH_BUILD (default build/release, built here if
# missing), PX_BENCH_GATEWAY_ARGS (extra --set ... for the gateway),
# PX_BENCH_PROCESSOR_ARGS (extra --set ... for the processor),
# PX_BENCH_SOCKETIO=0 skips the baseline (said loudly in the output),
# PX_BENCH_WARMUP_S (default 60) seconds of the same LOCK rate from 2,000
# connections before each server's measured run, figures discarded but
# for one warmup_lock_ack_ms line (0: no warm-up),
# PX_BENCH_PARTITIONS (default 6) partitions of every topic,
# PX_BENCH_REDIS_UNIX=1 the gateway and processor reach Redis on its Unix
# socket instead of TCP (the baseline stays on TCP),
# PX_BENCH_PERF=DIR profiles the gateway and the processor while the load
# generator runs against presence (bench/lib.sh: DIR/gateway.perf.txt,
# DIR/gw-processor.perf.txt).
# Limits: one machine, loopback; every process's RLIMIT_NOFILE caps CONNS.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${1:-10000}
RATE=${2:-5000}
DURATION=${3:-20}
BUILD=${PX_BENCH_BUILD:-$ROOT/build/release}
SIO_DIR=$ROOT/bench/baselines/socketio
SECRET=bench-secret-$$
STATE=$(mktemp -d /tmp/px-bench-gw.XXXXXX)
PIDS=()
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
  px_perf_stop
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$ROOT/scripts/stack.sh" down --state "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ ! -x "$BUILD/gateway/presence-gateway" ] || [ ! -x "$BUILD/bench/px_bench_gw" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target presence-gateway presence-processor px_bench_gw >/dev/null
fi

bash "$ROOT/scripts/stack.sh" up --state "$STATE" --partitions "${PX_BENCH_PARTITIONS:-6}" >/dev/null
# shellcheck disable=SC1091
. "$STATE/stack.env"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
GW_PORT=$(free_port)
PR_PORT=$(free_port)
COMMON=(--set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" --set "redis.port=$REDIS_PORT" --set log.level=warn)
if [ "${PX_BENCH_REDIS_UNIX:-0}" = 1 ]; then
  [ -n "${REDIS_SOCKET:-}" ] || { echo "bench: PX_BENCH_REDIS_UNIX=1 but the stack has no Redis socket" >&2; exit 1; }
  COMMON+=(--set "redis.host=$REDIS_SOCKET")
fi

# shellcheck disable=SC2086
"$BUILD/processor/presence-processor" "${COMMON[@]}" --set "http.port=$PR_PORT" \
  --set kafka.group.id=bench-gw --set processor.instance=bench ${PX_BENCH_PROCESSOR_ARGS:-} >"$STATE/processor.log" 2>&1 &
PR_PID=$!
PIDS+=("$PR_PID")
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

# The baseline's packages: npm ci when node_modules is missing or was
# installed from another package-lock.json (a stamp of its hash).
sio_install() {
  command -v node >/dev/null && command -v npm >/dev/null || { echo "node/npm not found" >&2; return 1; }
  local want have
  want=$(sha256sum "$SIO_DIR/package-lock.json" | cut -d' ' -f1)
  have=$(cat "$SIO_DIR/node_modules/.px-lock-sha256" 2>/dev/null || true)
  if [ "$want" != "$have" ]; then
    (cd "$SIO_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2 || return 1
    echo "$want" >"$SIO_DIR/node_modules/.px-lock-sha256"
  fi
}
SIO=${PX_BENCH_SOCKETIO:-1}
if [ "$SIO" != 0 ] && ! sio_install; then
  echo "bench: SOCKET.IO BASELINE NOT AVAILABLE (npm ci failed): only the gateway is measured" >&2
  SIO=0
fi

echo "bench: $(date -u +%FT%TZ) conns=$CONNS lock_rate=$RATE duration=${DURATION}s nofile=$(ulimit -n) gateway_args='${PX_BENCH_GATEWAY_ARGS:-}' redis=$([ "${PX_BENCH_REDIS_UNIX:-0}" = 1 ] && echo unix || echo tcp)"
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, before the gateway run)"
px_machine
LOCKERS=$(( CONNS < 2000 ? CONNS : 2000 ))
BENCH=("$BUILD/bench/px_bench_gw" --secret "$SECRET" --conns "$CONNS" --sources 4
  --lockers "$LOCKERS" --lock-rate "$RATE" --duration "$DURATION")
# A warm-up before each measured run: the same LOCK rate from 2,000
# connections for WARMUP seconds, its figures discarded (one line kept).
# Without it the run measures a broker and a Node.js process that started
# seconds before: Kafka's JIT compiler alone took most of a core during the
# first minute of load (docs/benchmarks-history.md).
WARMUP=${PX_BENCH_WARMUP_S:-60}
warmup() { # PORT [--socketio]
  [ "$WARMUP" -gt 0 ] || return 0
  "$BUILD/bench/px_bench_gw" --secret "$SECRET" --conns "$LOCKERS" --sources 4 --lockers "$LOCKERS" \
    --lock-rate "$RATE" --duration "$WARMUP" --hb-burst 0 --port "$@" | sed -n 's/^lock_ack_ms: /warmup_lock_ack_ms: /p'
}
warmup "$GW_PORT"
px_perf_start gateway "$GW_PID"
px_perf_start gw-processor "$PR_PID"
# CPU of each server over the LOCK phase (the `cpu:` line): far steadier
# than the percentiles for telling what a change saves.
CPU_STACK=(--cpu "kafka=$(cat "$STATE/kafka.pid")" --cpu "redis=$(cat "$STATE/redis.pid")")
"${BENCH[@]}" --port "$GW_PORT" --gw-pid "$GW_PID" --cpu "gateway=$GW_PID" --cpu "processor=$PR_PID" \
  "${CPU_STACK[@]}" | tee "$STATE/presence.out"
px_perf_stop
# Where a LOCK's time went, from the servers' own histograms (bucket upper
# bounds): received by the gateway -> LOCK_ACK queued; the LOCK record's
# age when the processor's batch took it (gateway producer + broker + the
# wait for the batch before); batch taken -> early decisions published;
# the LOCK and UNLOCK records' produce -> broker acknowledgement (the
# gateway's delivery reports). Both servers' /metrics, as they were at
# this point, stay in the state dir (gateway.metrics, processor.metrics).
gw_m=$(curl -fs "http://127.0.0.1:$GW_PORT/metrics" || true)
pr_m=$(curl -fs "http://127.0.0.1:$PR_PORT/metrics" || true)
printf '%s\n' "$gw_m" >"$STATE/gateway.metrics"
printf '%s\n' "$pr_m" >"$STATE/processor.metrics"
echo "lock_parts: gateway_lock_ack_s $(px_hist_quantiles presence_gateway_lock_ack_latency_seconds <<<"$gw_m");" \
  "processor_lock_age_ms $(px_hist_quantiles presence_processor_record_age_ms 'topic="locks"' <<<"$pr_m");" \
  "processor_decision_ms $(px_hist_quantiles presence_processor_decision_ms <<<"$pr_m");" \
  "gateway_kafka_delivery_s $(px_hist_quantiles presence_gateway_kafka_delivery_seconds 'topic="locks"' <<<"$gw_m")"
echo "gateway: $(grep -E '^presence_gateway_(connections|errors_total|lock_ack_latency_seconds_count|presence_coalesced_total) ' <<<"$gw_m" | tr '\n' ' ')"
echo "gateway log warnings: $(grep -c 'level=warn\|level=error' "$STATE/gateway.log" || true)"
echo "processor: $(grep -E '^presence_processor_(batches_total|batch_phase_us_total|batch_ms_(sum|count)|writes_deferred_total|lock_decisions_early_total|records_total)' <<<"$pr_m" | tr '\n' ' ')"
# where Redis's time went (the gateway's reads and the processor's writes share it)
echo "redis: $(redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | awk -F'[:,=]' '/^cmdstat_/ && $5 > 100000 { printf "%s calls=%s usec=%s; ", substr($1, 9), $3, $5 }')"

[ "$SIO" != 0 ] || { echo "bench: SOCKET.IO BASELINE SKIPPED (PX_BENCH_SOCKETIO=0)"; exit 0; }

# The baseline on the same Redis, with the gateway and processor stopped so
# that both servers get the same machine (Kafka stays up, idle).
kill "$GW_PID" 2>/dev/null || true
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
PIDS=()
SIO_PORT=$(free_port)
node "$SIO_DIR/server.js" --port "$SIO_PORT" --redis-port "$REDIS_PORT" --secret "$SECRET" \
  --key-prefix "sio:presence:" >"$STATE/socketio.log" 2>&1 &
SIO_PID=$!
PIDS+=("$SIO_PID")
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$SIO_PORT/healthz" >/dev/null && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$SIO_PORT/healthz" >/dev/null || { tail -20 "$STATE/socketio.log"; echo "socket.io server not ready" >&2; exit 1; }
sleep 1 # the adapter's pub/sub clients connect
echo "bench: socket.io baseline: node $(node --version), socket.io $(node -p "require('$SIO_DIR/node_modules/socket.io/package.json').version"), redis-adapter $(node -p "require('$SIO_DIR/node_modules/@socket.io/redis-adapter/package.json').version"), ioredis $(node -p "require('$SIO_DIR/node_modules/ioredis/package.json').version")"
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, before the socket.io run)"
warmup "$SIO_PORT" --socketio
"${BENCH[@]}" --socketio --port "$SIO_PORT" --gw-pid "$SIO_PID" --cpu "socketio=$SIO_PID" "${CPU_STACK[@]}" |
  tee "$STATE/socketio.out"
echo "socket.io log errors: $(grep -c 'level=error' "$STATE/socketio.log" || true)"
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, after)"

# Side by side: field `key=` of the line starting with `tag:`.
val() { sed -n "s/^$2: .*[ :]$3=\([0-9.-]*\).*/\1/p" "$1" | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
printf '\n%-34s %14s %14s %10s\n' "comparison (same run)" "presence" "socket.io" "ratio p/s"
for row in "connections subscribed:connections:subscribed" "memory per idle connection (B):gateway_rss_kb:per_connection_bytes" \
  "LOCK rate achieved (/s):locks:lock_rate" "LOCK->LOCK_ACK p50 (ms):lock_ack_ms:p50" "LOCK->LOCK_ACK p99 (ms):lock_ack_ms:p99" \
  "LOCK->LOCK_ACK p999 (ms):lock_ack_ms:p999" "no-backend round trip p50 (ms):baseline_gateway_roundtrip_ms:p50" \
  "no-backend round trip p99 (ms):baseline_gateway_roundtrip_ms:p99" "heartbeats sent, 30 s each (/s):heartbeats:=" \
  "heartbeat burst taken in (/s):hb_burst:=" "heartbeat burst probes answered:hb_burst:probes_answered"; do
  IFS=: read -r label tag key <<<"$row"
  if [ "$key" = "=" ]; then
    a=$(sed -n "s/^$tag: .* = \([0-9.]*\)\/s.*/\1/p" "$STATE/presence.out")
    b=$(sed -n "s/^$tag: .* = \([0-9.]*\)\/s.*/\1/p" "$STATE/socketio.out")
  else
    a=$(val "$STATE/presence.out" "$tag" "$key"); b=$(val "$STATE/socketio.out" "$tag" "$key")
  fi
  printf '%-34s %14s %14s %10s\n' "$label" "${a:-?}" "${b:-?}" "$(ratio "$a" "$b")"
done
echo "(the presence LOCK goes through Kafka and the processor; the baseline's is one Redis SET NX PX: a floor, not an equal system)"
