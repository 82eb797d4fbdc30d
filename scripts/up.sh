#!/usr/bin/env bash
# Set up and run the whole system on this machine: installs what is missing,
# builds, starts Kafka (KRaft) and Redis, the processor and the gateway, and
# prints the URL of the demo page. Ctrl-C stops everything.
#   scripts/up.sh [--detach] [--port N]      (--detach: leave it running;
#                                              stop with scripts/down.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
detach=0
port=${PRESENCE_HTTP_PORT:-8080}
while [ $# -gt 0 ]; do
    case "$1" in
    --detach) detach=1 ;;
    --port) port=$2; shift ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "up.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

bash scripts/setup.sh
echo "== build"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)"

state=$root/.state
mkdir -p "$state/logs"
if ! bash scripts/stack.sh status --state "$state/stack" >/dev/null 2>&1; then
    bash scripts/stack.sh up --state "$state/stack"
fi
# shellcheck disable=SC1091
. "$state/stack/stack.env"

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "up.sh: port $port is taken; pass --port N (or stop what uses it)" >&2
    exit 1
fi

common=(--set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" --set "redis.host=$REDIS_HOST"
        --set "redis.port=$REDIS_PORT" --set "topic.prefix=${PRESENCE_TOPIC_PREFIX:-}")
build/release/processor/presence-processor "${common[@]}" >"$state/logs/processor.log" 2>&1 &
echo $! >"$state/processor.pid"
build/release/gateway/presence-gateway "${common[@]}" --set "http.port=$port" \
    --set auth.dev_mode=true >"$state/logs/gateway.log" 2>&1 &
echo $! >"$state/gateway.pid"

for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
if ! curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
    echo "up.sh: the gateway did not become ready; see $state/logs/" >&2
    tail -n 20 "$state/logs/gateway.log" "$state/logs/processor.log" >&2 || true
    bash scripts/down.sh
    exit 1
fi

cat <<MSG

presence is running (development mode: the demo page gets its token from the
gateway's dev token route for the user in its URL; never expose this gateway).
  Open:     http://127.0.0.1:$port/?user=alice   and, in another window,
            http://127.0.0.1:$port/?user=bob
  Logs:     $state/logs/   Kafka $KAFKA_BOOTSTRAP   Redis 127.0.0.1:$REDIS_PORT
  Tools:    set -a; . $state/stack/stack.env; set +a; $root/build/release/tools/presencectl verify
  Stop:     scripts/down.sh$( [ $detach -eq 1 ] || echo "  (or Ctrl-C here)")
MSG
[ $detach -eq 1 ] && exit 0
trap 'echo; bash scripts/down.sh; exit 0' INT TERM
while kill -0 "$(cat "$state/gateway.pid")" 2>/dev/null; do sleep 1; done
echo "up.sh: the gateway exited; see $state/logs/gateway.log" >&2
bash scripts/down.sh
exit 1
