#!/usr/bin/env bash
# bench/run_idle.sh [CONNS] [SERVERS] [HOLD_S] - idle WebSocket connections
# past one process's file limit (docs/benchmarks.md, "Idle connections on
# one port"): a private Kafka + Redis (scripts/stack.sh in a temp state
# dir), one processor and SERVERS gateways of the release build sharing one
# port (http.reuse_port), then CONNS connections from SERVERS px_bench_gw
# processes side by side (each its own users, entities and four loopback
# source addresses, --hold), every connection subscribed to an entity (two
# per entity) and heartbeating every 30 s. Once all are idle: each
# gateway's RSS growth and sockets, and the gateways' RSS per connection.
# Then the same against the Socket.IO baseline (bench/baselines/socketio):
# SERVERS node processes on the same Redis, one port each (node 20 has no
# SO_REUSEPORT), one client process per server, the same figures; last
# the two side by side. Defaults: 50000 connections, 3 servers, each held
# 20 s after the measurement.
#
# Why several processes: one process holds at most RLIMIT_NOFILE sockets
# (the hard limit here is 20,000), the generator's as much as the server's.
# Why several source addresses: a connection needs its own source port per
# source address, about 28,000 per address (net.ipv4.ip_local_port_range).
# Memory is the processes' RSS (VmRSS): the kernel's socket buffers are not
# in it, for either server.
#
# Environment: PX_BENCH_BUILD (default build/release, built here if
# missing), PX_BENCH_SOCKETIO=0 skips the baseline (said loudly).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${1:-50000}
SERVERS=${2:-3}
HOLD=${3:-20}
BUILD=${PX_BENCH_BUILD:-$ROOT/build/release}
SIO_DIR=$ROOT/bench/baselines/socketio
SECRET=bench-secret-$$
STATE=$(mktemp -d /tmp/px-bench-idle.XXXXXX)
PIDS=()     # servers
CLIENTS=()  # generator processes
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"

cleanup() {
  for p in "${CLIENTS[@]}" "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${CLIENTS[@]}" "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bash "$ROOT/scripts/stack.sh" down --state "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

per=$(( (CONNS + SERVERS - 1) / SERVERS ))
[ $((per + 64)) -le "$(ulimit -Hn)" ] || { echo "bench: $per connections per process exceed the file limit $(ulimit -Hn): more SERVERS" >&2; exit 2; }
[ $((SERVERS * 4)) -le 250 ] || { echo "bench: at most 62 servers (4 source addresses per client process)" >&2; exit 2; }
ulimit -n "$(ulimit -Hn)"

if [ ! -x "$BUILD/gateway/presence-gateway" ] || [ ! -x "$BUILD/bench/px_bench_gw" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j2 --target presence-gateway presence-processor px_bench_gw >/dev/null
fi
bash "$ROOT/scripts/stack.sh" up --state "$STATE" --partitions 6 >/dev/null
# shellcheck disable=SC1091
. "$STATE/stack.env"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# established connections on PORT that process PID holds
conns_of() { ss -tnpH state established "( sport = :$2 )" | grep -c "pid=$1," || true; }

# Run the generators against PORTS (one per client process, or one shared)
# until every one says idle; their output in STATE/NAME-K.out.
run_clients() { # NAME EXTRA-ARGS... -- PORT...
  local name=$1 k=0 i args=() ports=()
  shift
  while [ "$1" != -- ]; do args+=("$1"); shift; done
  shift
  ports=("$@")
  CLIENTS=()
  for k in $(seq 0 $((SERVERS - 1))); do
    local n=$per first=$((k * per))
    [ $((first + n)) -le "$CONNS" ] || n=$((CONNS - first))
    "$BUILD/bench/px_bench_gw" --secret "$SECRET" --port "${ports[$((k % ${#ports[@]}))]}" --conns "$n" \
      --first "$first" --entities $((CONNS / 2)) --sources 4 --source-base $((1 + 4 * k)) --hold "$((HOLD + 3600))" \
      --open-s 1200 --lockers 0 --hb-burst 0 "${args[@]}" >"$STATE/$name-$k.out" 2>"$STATE/$name-$k.err" &
    CLIENTS+=($!)
  done
  for _ in $(seq 2700); do # 1,350 s: the generators give up opening after 1,200
    i=0
    for k in $(seq 0 $((SERVERS - 1))); do
      grep -q '^idle:' "$STATE/$name-$k.out" && i=$((i + 1))
      kill -0 "${CLIENTS[$k]}" 2>/dev/null || grep -q '^idle:' "$STATE/$name-$k.out" ||
        { cat "$STATE/$name-$k.err" >&2; echo "bench: generator $k ($name) ended before idle" >&2; exit 1; }
    done
    [ "$i" -lt "$SERVERS" ] || return 0
    sleep 0.5
  done
  echo "bench: the generators were not idle after 1,350 s" >&2
  exit 1
}
stop_clients() { # NAME: SIGTERM, then their last lines
  local k
  for p in "${CLIENTS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${CLIENTS[@]}"; do wait "$p" 2>/dev/null || true; done
  CLIENTS=()
  for k in $(seq 0 $((SERVERS - 1))); do sed -n "s/^/$1 client $k: /p" "$STATE/$1-$k.out" | grep -E 'connections:|held:'; done
}
# Each server's RSS growth over its connections, and all servers' over the
# connections the generators saw subscribed.
measure() { # NAME "PID:PORT:RSS0_KB"... -> a line per server and NAME_total:
  local name=$1 s pid port r0 r1 n sum0=0 sum1=0 conns=0 subscribed
  shift
  for s in "$@"; do
    IFS=: read -r pid port r0 <<<"$s"
    r1=$(rss_kb "$pid") n=$(conns_of "$pid" "$port")
    echo "$name pid $pid: connections=$n rss_kb before=$r0 idle=$r1 per_connection_bytes=$(( (r1 - r0) * 1024 / (n > 0 ? n : 1) ))"
    sum0=$((sum0 + r0)) sum1=$((sum1 + r1)) conns=$((conns + n))
  done
  subscribed=$(cat "$STATE/$name"-*.out | sed -n 's/^idle: subscribed=//p' | awk '{s += $1} END {print s}')
  echo "${name}_total: servers=$# subscribed=$subscribed connections=$conns rss_kb_before=$sum0 rss_kb_idle=$sum1 per_connection_bytes=$(( (sum1 - sum0) * 1024 / (subscribed > 0 ? subscribed : 1) ))"
}

# --- presence: one processor, SERVERS gateways on one port ------------------
GW_PORT=$(free_port)
PR_PORT=$(free_port)
COMMON=(--set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" --set "redis.port=$REDIS_PORT" --set log.level=warn)
"$BUILD/processor/presence-processor" "${COMMON[@]}" --set "ops.port=$PR_PORT" \
  --set kafka.group.id=bench-idle --set processor.instance=bench >"$STATE/processor.log" 2>&1 &
PIDS+=($!)
GWS=()
for i in $(seq 1 "$SERVERS"); do
  "$BUILD/gateway/presence-gateway" "${COMMON[@]}" --set "http.port=$GW_PORT" --set http.reuse_port=true \
    --set "gateway.id=bench-gw-$i" --set "auth.jwt_secret=$SECRET" --set "limits.connections=$((per * 2))" \
    >"$STATE/gateway-$i.log" 2>&1 &
  PIDS+=($!)
  GWS+=($!)
done
# ready: every gateway's id seen in a ready /readyz on the shared port
ready=""
for _ in $(seq 600); do
  out=$(curl -fs "http://127.0.0.1:$GW_PORT/readyz" || true)
  id=$(sed -n 's/^ready .* id=\(bench-gw-[0-9]*\)$/\1/p' <<<"$out")
  [ -z "$id" ] || [[ " $ready " == *" $id "* ]] || ready="$ready $id"
  [ "$(wc -w <<<"$ready")" -lt "$SERVERS" ] || break
  sleep 0.2
done
[ "$(wc -w <<<"$ready")" -ge "$SERVERS" ] || { tail -5 "$STATE"/gateway-*.log; echo "bench: gateways not ready ($ready)" >&2; exit 1; }
curl -fs "http://127.0.0.1:$PR_PORT/readyz" >/dev/null || sleep 5

echo "bench: $(date -u +%FT%TZ) idle connections: conns=$CONNS servers=$SERVERS per_client_process=$per nofile=$(ulimit -n) hard=$(ulimit -Hn) ephemeral_ports=$(tr '\t' - </proc/sys/net/ipv4/ip_local_port_range)"
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, before the presence run)"
px_machine
sleep 2
BEFORE=()
for p in "${GWS[@]}"; do BEFORE+=("$p:$GW_PORT:$(rss_kb "$p")"); done
t0=$(date +%s)
run_clients presence -- "$GW_PORT"
echo "presence: all generators idle $(( $(date +%s) - t0 )) s after the first connection"
measure presence "${BEFORE[@]}" | tee "$STATE/presence.sum"
sleep "$HOLD"
for p in "${GWS[@]}"; do kill -0 "$p" || { echo "bench: a gateway died during the hold" >&2; exit 1; }; done
echo "presence after the ${HOLD} s hold: $(for p in "${GWS[@]}"; do printf 'pid %s connections=%s rss_kb=%s; ' "$p" "$(conns_of "$p" "$GW_PORT")" "$(rss_kb "$p")"; done)"
stop_clients presence
echo "gateway log warnings: $(cat "$STATE"/gateway-*.log | grep -c 'level=warn\|level=error' || true)"
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
PIDS=()

# --- Socket.IO: SERVERS node processes, one port each -----------------------
if [ "${PX_BENCH_SOCKETIO:-1}" = 0 ]; then echo "bench: SOCKET.IO BASELINE SKIPPED (PX_BENCH_SOCKETIO=0)"; exit 0; fi
want=$(sha256sum "$SIO_DIR/package-lock.json" | cut -d' ' -f1)
if [ "$want" != "$(cat "$SIO_DIR/node_modules/.px-lock-sha256" 2>/dev/null || true)" ]; then
  (cd "$SIO_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$want" >"$SIO_DIR/node_modules/.px-lock-sha256"
fi
SIO_PORTS=() SIOS=()
for i in $(seq 1 "$SERVERS"); do
  port=$(free_port)
  node "$SIO_DIR/server.js" --port "$port" --redis-port "$REDIS_PORT" --secret "$SECRET" \
    --key-prefix "sio:presence:" >"$STATE/socketio-$i.log" 2>&1 &
  PIDS+=($!) SIOS+=($!) SIO_PORTS+=("$port")
done
for port in "${SIO_PORTS[@]}"; do
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/healthz" >/dev/null || { tail -20 "$STATE"/socketio-*.log; echo "bench: socket.io not ready" >&2; exit 1; }
done
sleep 2
echo "bench: socket.io baseline: node $(node --version), socket.io $(node -p "require('$SIO_DIR/node_modules/socket.io/package.json').version")"
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, before the socket.io run)"
BEFORE=()
for i in "${!SIOS[@]}"; do BEFORE+=("${SIOS[$i]}:${SIO_PORTS[$i]}:$(rss_kb "${SIOS[$i]}")"); done
t0=$(date +%s)
run_clients socketio --socketio -- "${SIO_PORTS[@]}"
echo "socketio: all generators idle $(( $(date +%s) - t0 )) s after the first connection"
measure socketio "${BEFORE[@]}" | tee "$STATE/socketio.sum"
sleep "$HOLD"
echo "socketio after the ${HOLD} s hold: $(for i in "${!SIOS[@]}"; do printf 'pid %s connections=%s rss_kb=%s; ' "${SIOS[$i]}" "$(conns_of "${SIOS[$i]}" "${SIO_PORTS[$i]}")" "$(rss_kb "${SIOS[$i]}")"; done)"
stop_clients socketio
echo "load: $(uptime | sed 's/.*load average: //') (1/5/15 min, after)"

a=$(sed -n 's/^presence_total: .*per_connection_bytes=\([0-9]*\).*/\1/p' "$STATE/presence.sum")
b=$(sed -n 's/^socketio_total: .*per_connection_bytes=\([0-9]*\).*/\1/p' "$STATE/socketio.sum")
printf '\n%-40s %12s %12s %8s\n' "comparison (same run)" presence socket.io "ratio"
printf '%-40s %12s %12s %8s\n' "memory per idle connection (B)" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
