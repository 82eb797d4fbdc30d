#!/usr/bin/env bash
# presencectl replay throughput (target 500k records/s): the processor benchmark's
# workload (bench/px_bench_produce: realistic mix over ENTITIES entities) read
# from Kafka and folded in memory (`replay --dry-run`), then folded and
# written into an empty Redis (`replay`), RUNS times each. Not a test:
# prints figures for docs/benchmarks.md. Needs scripts/setup.sh done.
#
#   bench/run_replay.sh [RECORDS] [ENTITIES] [RUNS]   (defaults 2000000 100000 3)
#
# The rate is records / wall time of the fold phase as presencectl reports
# it (consumer start, metadata, offsets and the reading of all four topics
# included), and for the Redis runs records / (fold + write) time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
records=${1:-2000000}
entities=${2:-100000}
runs=${3:-3}

cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
cmake --build build/release -j2 --target presencectl px_bench_produce >/dev/null
state=$root/.state/bench-replay
bash scripts/stack.sh up --state "$state/stack" --partitions 6 >/dev/null
trap 'bash scripts/stack.sh down --state "$state/stack" >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1091
. "$state/stack/stack.env"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); Kafka 3.9.1 and Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) on the same machine"
prefix="replay-$(date +%s)."
bash scripts/stack.sh topics --state "$state/stack" --prefix "$prefix" --partitions 6 >/dev/null
build/release/bench/px_bench_produce "$KAFKA_BOOTSTRAP" "$prefix" "$records" "$entities" 1 | sed 's/^/  /'
ctl=(build/release/tools/presencectl replay --set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP"
     --set "topic.prefix=$prefix" --set "redis.port=$REDIS_PORT")
# Baseline in the same run: kcat (librdkafka, as presencectl) reading the
# same four topics from the beginning to the end, printing only keys: the
# cost of fetching the records with no decoding and no fold.
if command -v kcat >/dev/null; then
    for run in $(seq 1 "$runs"); do
        t0=$(date +%s.%N)
        for t in presence.heartbeats presence.locks core.entities.lifecycle.mutating core.entities.lifecycle.mutated; do
            kcat -C -b "$KAFKA_BOOTSTRAP" -t "$prefix$t" -o beginning -e -q -f '%k\n' \
                -X isolation.level=read_committed >/dev/null
        done
        awk -v n="$records" -v a="$t0" -v b="$(date +%s.%N)" -v r="$run" \
            'BEGIN { printf "baseline kcat read, run %d: %.2f s, %.0f records/s\n", r, b - a, n / (b - a) }'
    done
fi
for run in $(seq 1 "$runs"); do
    out=$(/usr/bin/time -f "cpu %U s user %S s sys, maxrss %M KB" "${ctl[@]}" --dry-run 2>"$state/replay-mem-$run.err")
    echo "in memory, run $run: $out; $(tail -n 1 "$state/replay-mem-$run.err"); load $(cut -d' ' -f1 /proc/loadavg)"
done
for run in $(seq 1 "$runs"); do
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    out=$("${ctl[@]}" 2>"$state/replay-redis-$run.err")
    echo "into Redis, run $run: $out; load $(cut -d' ' -f1 /proc/loadavg)"
    echo "  keys in Redis: $(redis-cli -p "$REDIS_PORT" DBSIZE)"
done
tail -n 1 "$state/replay-redis-$runs.err"
