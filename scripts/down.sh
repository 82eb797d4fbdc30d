#!/usr/bin/env bash
# Stop what scripts/up.sh started: gateway, processor, then Kafka and Redis.
set -uo pipefail
cd "$(dirname "$0")/.."
state=$PWD/.state
for d in gateway processor; do
    f=$state/$d.pid
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$f"
    echo "stopped $d"
done
bash scripts/stack.sh down --state "$state/stack"
