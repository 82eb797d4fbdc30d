#!/usr/bin/env bash
# bench/run_failover.sh [ROUNDS] - the failover benchmark (docs/benchmarks.md,
# "Failover"): on a 3-broker KRaft cluster with two processors and a
# gateway (release build), the time from each fault to the first LOCK_ACK
# on an affected entity, ROUNDS (default 3) times each: kill -9 of a
# processor restarted under its name, of one that stays dead, of a broker
# that is not the quorum's leader, of the quorum's leader, and a
# preferred-leader election; then the median and range of each figure, and
# every processor exit (the target is none on a single-broker failure).
# bench/failover.py does the work with the fault harness
# (tests/cluster/pxcluster.py). Not a test.
#
# Environment: PX_BENCH_BUILD (default build/release, built here),
# PX_BENCH_FAILOVER_ARGS (extra --set ... for both processors; default
# none: the product's defaults), PX_BENCH_FAILOVER_ENTITIES (default 24
# probe clients, one entity each, over the 3 partitions).
# Limits: one machine, loopback; every broker, daemon and client shares
# its 2 cores, so the figures include that contention.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=${1:-3}
BUILD=${PX_BENCH_BUILD:-$ROOT/build/release}
cd "$ROOT"
bash scripts/setup.sh >/dev/null
if [ -z "${PX_BENCH_BUILD:-}" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
echo "started: $(date -u +%FT%TZ)"
echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before)"
PX_BUILD_DIR=$BUILD PX_SOURCE_DIR=$ROOT exec /usr/bin/python3 "$ROOT/bench/failover.py" "$ROUNDS"
