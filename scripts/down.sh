#!/usr/bin/env bash
# Stop what scripts/up.sh started: the gateway(s), processor, then Kafka and Redis.
#   scripts/down.sh [--state DIR]   (the same state dir as up.sh: default
#                                    <repo>/.state, or PX_UP_STATE)
# Idempotent: stopping a system that does not run says so and succeeds.
set -uo pipefail
cd "$(dirname "$0")/.."
state=${PX_UP_STATE:-$PWD/.state}
while [ $# -gt 0 ]; do
    case "$1" in
    --state) state=${2:?--state needs a directory}; shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "down.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -d "$state" ] || { echo "down.sh: nothing runs from $state (no such dir)"; exit 0; }
state=$(cd "$state" && pwd)

pid_is() { # pid pattern: alive and its command line holds pattern
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -q -- "$2"
}
# gateway.pid, gateway-2.pid ... (up.sh --gateways), then processor.pid
for f in "$state"/gateway*.pid "$state/processor.pid"; do
    [ -f "$f" ] || continue
    name=$(basename "$f" .pid) pid=$(cat "$f")
    d=${name%%-*}
    if pid_is "$pid" "presence-$d"; then # not a recycled pid
        kill -TERM "$pid"
        for _ in $(seq 1 100); do pid_is "$pid" "presence-$d" || break; sleep 0.1; done
        if pid_is "$pid" "presence-$d"; then
            echo "down.sh: the $name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid"
        fi
        echo "stopped the $name (pid $pid)"
    fi
    rm -f "$f"
done
bash scripts/stack.sh down --state "$state/stack"
