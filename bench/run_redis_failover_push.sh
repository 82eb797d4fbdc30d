#!/usr/bin/env bash
# The gap in pushes and LOCK_ACKs when a Redis Cluster master fails (target:
# at most 5 s). Not a test: prints figures for docs/benchmarks.md.
#
#   bench/run_redis_failover_push.sh [RUNS]   (default 5)
#
# Each run is tests/cluster/test_cluster_redis_gateway.py's scenario on a
# fresh 3 + 3 Redis Cluster (cluster-node-timeout 2 s) with one Kafka
# broker, the processor and the gateway of the release build, two
# WebSocket users on entities of two masters: the master of one entity is
# SIGKILLed (its replica promoted by the cluster), later the other's is
# handed over with CLUSTER FAILOVER. Measured from the fault: the first
# PRESENCE on the affected entity that shows a change made after it (the
# other user keeps changing his tab), and the LOCK_ACKs of a lock race
# there that follows. The cluster's own part is the node timeout plus an
# election; SIGKILL cannot be faster than that.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${1:-5}
bash scripts/setup.sh >/dev/null
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
state=$root/.state/bench-redis-failover-push
rm -rf "$state/runs"
mkdir -p "$state/runs"
bash scripts/stack.sh up --state "$state/stack" --partitions 3 >/dev/null
trap 'bash scripts/stack.sh down --state "$state/stack" >/dev/null 2>&1 || true' EXIT
. bench/lib.sh
px_machine
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before)"
for run in $(seq 1 "$runs"); do
    PX_STACK_DIR=$state/stack PX_BUILD_DIR=$root/build/release PX_SOURCE_DIR=$root \
        /usr/bin/python3 tests/cluster/test_cluster_redis_gateway.py "$state/runs/$run" >"$state/runs/$run.log" 2>&1 ||
        { echo "run $run failed: $state/runs/$run.log" >&2; tail -20 "$state/runs/$run.log" >&2; exit 1; }
    line=$(grep '^gaps:' "$state/runs/$run.log")
    echo "run $run: $line"
done
grep -h '^gaps:' "$state"/runs/*.log | /usr/bin/python3 -c '
import statistics, sys
cols = {"SIGKILL push": [], "SIGKILL ack": [], "FAILOVER push": [], "FAILOVER ack": []}
for line in sys.stdin:
    w = line.split()
    cols["SIGKILL push"].append(float(w[3])); cols["SIGKILL ack"].append(float(w[5]))
    cols["FAILOVER push"].append(float(w[8])); cols["FAILOVER ack"].append(float(w[10]))
for k, v in cols.items():
    print(f"{k:14s} median {statistics.median(v):.2f} s  range {min(v):.2f}-{max(v):.2f} s  (n={len(v)})")
'
