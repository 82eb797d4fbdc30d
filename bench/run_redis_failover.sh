#!/usr/bin/env bash
# What a Redis master failover costs, on the local stack: a master with a
# replica and 3 Sentinels (stack.sh up --redis-replica), then a 3 + 3 Redis
# Cluster (--redis-cluster), each with its default settings (failure
# detection after 2 s, append-only file). For each, CYCLES times: the
# programs' slot-aware client (px_rcl, through tests/cluster/rcl_probe)
# writes and reads keys in rounds while the master is SIGKILLed; printed:
# the time until a new master is in place, the client's longest gap between
# two good rounds and its failed rounds, and the time the old master takes
# to come back as a replica in sync (bench/redis_failover.py). Not a test:
# the figures are in docs/deployment.md ("What a Redis failover costs").
#
#   bench/run_redis_failover.sh [CYCLES]   (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cycles=${1:-3}
build=$root/build/bench-redis
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target rcl_probe >/dev/null
state=$root/.state/bench-redis
trap 'bash scripts/stack.sh down --state "$state" >/dev/null 2>&1 || true' EXIT
for layout in --redis-replica --redis-cluster; do
  bash scripts/stack.sh down --state "$state" >/dev/null 2>&1 || true
  bash scripts/stack.sh up "$layout" --state "$state" | grep 'redis: .*ready'
  /usr/bin/python3 bench/redis_failover.py "$state" "$build/tests/rcl_probe" "$cycles"
done
