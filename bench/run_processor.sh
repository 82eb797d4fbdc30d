#!/usr/bin/env bash
# Processor throughput with exactly-once on (target 250k records/s), beside
# redis-benchmark running the equivalent per-event Redis work on the same
# Redis in the same run, and beside a naive processor (one synchronous Redis
# round trip per command per event, bench/baselines/px_naive_processor.c) on
# the same records. Not a test: prints figures for docs/benchmarks.md
# (bench/run runs it and writes that file).
#
# Environment:
#   PX_BENCH_PROCESSOR_ARGS  processor settings (e.g. "--set batch.max_records=1000")
#   PX_BENCH_BASELINES=0     no baselines (the scaling curves); PX_BENCH_NO_NAIVE=1
#                            skips only the naive processor
#   PX_BENCH_NAIVE_RECORDS   records the naive processor handles (default all;
#                            it is slow, and its rate is flat, so a part will do)
#   PX_BENCH_OUT=DIR         also write DIR/processor-run<N>.tsv: seconds since
#                            launch and records folded, every 0.25 s
#   PX_BENCH_PERF=DIR        profile the processor and redis-server during run 1
#                            (bench/lib.sh: DIR/processor.perf.txt, redis.perf.txt)
#   PX_BENCH_PERF_ARGS="-g"  more perf record flags; PX_BENCH_PERF_KEEP=1 keeps DIR/*.perf.data
#   PX_BENCH_WIRES="single-object confluent"  the wire formats to run, each
#                            run of each back to back (default single-object);
#                            confluent: the input produced in the Confluent
#                            wire format and the processor writing it, with
#                            the stack's schema registry (stack.sh --registry)
#   PX_BENCH_BROKERS="1 3"   the Kafka sizes to run, each run of each back to
#                            back (default 1): N brokers (stack.sh up --brokers N,
#                            replication factor min(3, N), min.insync.replicas
#                            one less), both stacks up for the whole script;
#                            the baselines run on the first
#   PX_BENCH_REDIS="single cluster"  the Redis layouts to run, each run of each
#                            back to back (default single): cluster is a
#                            Redis Cluster of 3 masters + 3 replicas
#                            (stack.sh --redis-cluster), single then a plain
#                            redis-server beside it; neither persists
#   PX_BENCH_REDIS_REPLICAS=0  the cluster's replicas are stopped before the
#                            runs: 3 masters alone, no replication work
#
#   bench/run_processor.sh [RECORDS] [ENTITIES] [RUNS]   (defaults 2000000 100000 3)
#
# Each run: fresh topics (6 partitions), the input produced in the realistic mix
# by bench/px_bench_produce, then one processor (release build) from the
# beginning; the rate is records / (time all records were folded - time
# the processor was launched), sampled from its /metrics every 0.25 s, so
# start-up, the group join and init_transactions count against it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=bench/lib.sh
. bench/lib.sh
records=${1:-2000000}
entities=${2:-100000}
runs=${3:-3}

bash scripts/setup.sh >/dev/null
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
state=$root/.state/bench
wires=${PX_BENCH_WIRES:-single-object}
reg_opt=()
case " $wires " in *" confluent "*) reg_opt=(--registry) ;; esac
brokers_list=${PX_BENCH_BROKERS:-1}
targets=${PX_BENCH_REDIS:-single}
cluster_opt=()
case " $targets " in *" cluster "*) cluster_opt=(--redis-cluster --redis-persistence none) ;; esac
stack_dir() { if [ "$1" = 1 ]; then echo "$state/stack"; else echo "$state/stack-$1"; fi; }
pid="" plain_pid="" plain_port=""
cleanup() {
    px_perf_stop
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "$plain_pid" ] && kill "$plain_pid" 2>/dev/null && wait "$plain_pid" 2>/dev/null
    for b in $brokers_list; do bash scripts/stack.sh down --state "$(stack_dir "$b")" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
for b in $brokers_list; do
    bash scripts/stack.sh up --state "$(stack_dir "$b")" --brokers "$b" --partitions 6 "${reg_opt[@]}" "${cluster_opt[@]}" >/dev/null
done
first_brokers=${brokers_list%% *}
# shellcheck disable=SC1090
. "$(stack_dir "$first_brokers")/stack.env"
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
if [ ${#cluster_opt[@]} -gt 0 ]; then
    # the stacks run clusters; the single Redis runs beside them, as a
    # stack's own would (no persistence)
    plain_port=$(free_port)
    mkdir -p "$state/redis-single"
    redis-server --port "$plain_port" --bind 127.0.0.1 --dir "$state/redis-single" --save '' --appendonly no \
        --protected-mode no >"$state/redis-single/redis.log" 2>&1 &
    plain_pid=$!
    for _ in $(seq 50); do redis-cli -p "$plain_port" PING >/dev/null 2>&1 && break; sleep 0.1; done
fi
if [ ${#cluster_opt[@]} -gt 0 ] && [ "${PX_BENCH_REDIS_REPLICAS:-1}" = 0 ]; then
    for b in $brokers_list; do
        for n in 1 2 3 4 5 6; do
            v=REDIS_NODE_$n d=REDIS_NODE_${n}_DIR
            v=$(sed -n "s/^$v=//p" "$(stack_dir "$b")/stack.env") d=$(sed -n "s/^$d=//p" "$(stack_dir "$b")/stack.env")
            [ "$(redis-cli -p "${v##*:}" ROLE 2>/dev/null | head -1)" = slave ] && kill "$(cat "$d/redis.pid")"
        done
    done
    sleep 1
fi
single_port() { echo "${plain_port:-$REDIS_PORT}"; }
masters() { # the masters of layout $1 (of the stack whose stack.env was read last)
    if [ "$1" = single ]; then single_port; return; fi
    local n v p
    for n in 1 2 3 4 5 6; do
        v=REDIS_NODE_$n p=${!v##*:}
        [ "$(redis-cli -p "$p" ROLE 2>/dev/null | head -1)" = master ] && echo "$p"
    done
}
redis_args() { # the processor's settings for layout $1
    if [ "$1" = single ]; then echo "--set redis.port=$(single_port)"
    else echo "--set redis.cluster=true --set redis.nodes=$REDIS_NODES"; fi
}

folded() { # sum of folded/duplicate/DLQ input records in the processor's metrics (0 before it listens)
    { curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null || true; } | awk '
        /^presence_processor_records_total\{/ || /^presence_processor_duplicates_total / || /^presence_processor_dlq_total / { s += $NF }
        END { print s + 0 }'
}

marks_key() { # the applied marks' key of group $prefix on master $1 (SCAN in steps of 100000: one or two calls)
    local cur=0 out
    while :; do
        out=$(redis-cli -p "$1" SCAN "$cur" MATCH "presence:shard:*:applied:$prefix" COUNT 100000 | tr -d '\r')
        cur=$(echo "$out" | head -1)
        out=$(echo "$out" | sed -n 2p)
        if [ -n "$out" ]; then echo "$out"; return; fi
        [ "$cur" != 0 ] || return
    done
}

in_redis() { # every "S:P=O" of $ends has an applied mark of at least O on every master of $target ($prefix is the group)
    local p k
    for p in $(masters "$target"); do
        k=$(marks_key "$p")
        [ -n "$k" ] || return 1
        redis-cli -p "$p" HGETALL "$k"
    done | tr -d '\r' | paste - - |
        awk -v ends="$ends" 'BEGIN { n = split(ends, e, " "); for (i = 1; i <= n; i++) { split(e[i], kv, "="); want[kv[1]] = kv[2] } }
            { if (!($1 in got) || $2 + 0 < got[$1] + 0) got[$1] = $2 }
            END { for (k in want) if (!(k in got) || got[k] + 0 < want[k] + 0) exit 1; exit n ? 0 : 1 }'
}

px_machine
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min, before)"
baselines=${PX_BENCH_BASELINES:-1}
for run in $(seq 1 "$runs"); do
for brokers in $brokers_list; do
# shellcheck disable=SC1090
. "$(stack_dir "$brokers")/stack.env"
btag=""
[ "$brokers_list" = 1 ] || btag=" ($brokers broker$([ "$brokers" = 1 ] || echo s))"
for target in $targets; do
rtag=""
[ "$targets" = single ] || rtag=" (redis $target)"
for wire in $wires; do
    wire_env=() wire_args=()
    if [ "$wire" = confluent ]; then
        wire_env=(PX_BENCH_REGISTRY="$REGISTRY_URL")
        wire_args=(--set avro.wire_format=confluent --set "schema.registry.url=$REGISTRY_URL")
    fi
    [ "$wires" = single-object ] || echo "wire: $wire"
    prefix="bench$run-$(date +%s)."
    for p in $(masters "$target"); do
        redis-cli -p "$p" FLUSHALL >/dev/null
        redis-cli -p "$p" CONFIG RESETSTAT >/dev/null
    done
    bash scripts/stack.sh topics --state "$(stack_dir "$brokers")" --prefix "$prefix" --partitions 6 >/dev/null
    out=$(env "${wire_env[@]}" build/release/bench/px_bench_produce "$KAFKA_BOOTSTRAP" "$prefix" "$records" "$entities" "$run")
    echo "$out" | grep -v '^ends:' | sed 's/^/  /'
    ends=$(echo "$out" | sed -n 's/^ends: //p') # "S:P=O ...": every partition's end offset
    build/release/processor/presence-processor --set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" \
        $(redis_args "$target") --set "topic.prefix=$prefix" --set "kafka.group.id=$prefix" \
        --set "http.port=$port" --set log.level=warn "${wire_args[@]}" ${PX_BENCH_PROCESSOR_ARGS:-} \
        >"$state/processor-$run.log" 2>&1 &
    pid=$!
    first=$(date +%s.%N) last="" folded_at="" n=0 # from the launch: start-up, group join and init_transactions included
    series=/dev/null
    [ -z "${PX_BENCH_OUT:-}" ] || { mkdir -p "$PX_BENCH_OUT"; series=$PX_BENCH_OUT/processor-run$run.tsv; }
    printf 't_s\tfolded\n' >"$series"
    if [ "$run" = 1 ]; then
        px_perf_start processor "$pid"
        [ -n "$plain_port" ] || px_perf_start redis "$(cat "$(stack_dir "$brokers")/redis.pid")"
    fi
    deadline=$(( $(date +%s) + 900 ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        n=$(folded)
        now=$(date +%s.%N)
        awk -v a="$first" -v b="$now" -v n="$n" 'BEGIN { printf "%.2f\t%d\n", b - a, n }' >>"$series"
        # done when every record is folded and committed, and Redis holds
        # the effects: its applied marks (written after the entity writes,
        # docs/redis-keys.md) reached every partition's end offset
        if [ "$n" -ge "$records" ]; then
            [ -n "$folded_at" ] || folded_at=$now
            if in_redis; then last=$now; break; fi
        fi
        if [ -n "${PX_BENCH_TRACE:-}" ]; then echo "  t=$now folded=$n"; fi
        sleep 0.25
    done
    px_perf_stop
    curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null | awk '/^presence_processor_batch_phase_us_total/ { printf "  %s %.1f s\n", $1, $2 / 1e6 }
        /^presence_processor_batches_total / { printf "  batches %d\n", $2 }' || true
    # what the run asked of Redis: calls and server time per command
    echo "  redis: $(for p in $(masters "$target"); do redis-cli -p "$p" INFO commandstats; done | tr -d '\r' |
        awk -F'[:,=]' '/^cmdstat_/ { c[substr($1, 9)] += $3; u[substr($1, 9)] += $5 }
            END { for (k in c) if (c[k] > 1000) printf "%s calls=%d usec=%d; ", k, c[k], u[k] }')"
    kill -TERM "$pid"; wait "$pid" || true
    pid=""
    if [ -z "$last" ]; then echo "run $run$btag$rtag: did not finish ($n of $records folded)"; exit 1; fi
    awk -v n="$records" -v a="$first" -v b="$last" -v c="$folded_at" -v r="$run" \
        -v w="$btag$([ "$wires" = single-object ] || echo " ($wire)")$rtag" \
        'BEGIN { printf "run %d%s: %d records folded in %.2f s from launch: %.0f records/s (all folded at %.2f s, all in Redis at %.2f s)\n", r, w, n, b - a, n / (b - a), c - a, b - a }'
    # Baseline (b): the same records through a processor as typical service
    # code writes it (bench/baselines/px_naive_processor.c: one synchronous
    # Redis round trip per command per event, no exactly-once).
    if [ "$baselines" != 0 ] && [ -z "${PX_BENCH_NO_NAIVE:-}" ] && [ "$brokers" = "$first_brokers" ] && [ "$target" = single ]; then
        redis-cli -p "$(single_port)" FLUSHALL >/dev/null
        build/release/bench/px_naive_processor "$KAFKA_BOOTSTRAP" "$prefix" "$(single_port)" "${PX_BENCH_NAIVE_RECORDS:-$records}" |
            sed "s/^/baseline run $run: /"
    fi
done
done
done
done
# shellcheck disable=SC1090
. "$(stack_dir "$first_brokers")/stack.env"

# Baseline: the per-event Redis work a processor without batching would do
# for a heartbeat (the state hash and the view string with its expiry, as
# docs/redis-keys.md; no watermark guard, no publish), one script call per
# event, 100k random entities, pipelined 32 deep: the ceiling of "one Redis
# script per event" on this Redis.
[ "$baselines" != 0 ] || exit 0
sha=$(redis-cli -p "$(single_port)" SCRIPT LOAD "
redis.call('HSET', KEYS[1], 'wm', ARGV[1], 'blob', ARGV[2])
redis.call('SET', KEYS[2], ARGV[4], 'PXAT', ARGV[3])
return 1")
blob=$(printf '{"fmt":1,"key":"bench:order:x","tabs":[{"tab_id":"tab1","user":"user1","name":"User 1","mode":0,"status":0,"dirty":false,"since":1,"last_seen":2}],"locks":[],"writes":[]}')
view='{"tabs":[{"tab":"tab1","deadline":9999999999999,"user":"user1","name":"User 1","mode":"view","dirty":false,"status":"online","field":"","cursor":"","since":1}],"locks":[],"stale":false,"busyBy":"","stale_until":0,"version":0}'
for run in $(seq 1 "$runs"); do
    redis-benchmark -p "$(single_port)" -q -n "$records" -r "$entities" -P 32 EVALSHA "$sha" 2 \
        "presence:{bench:order:__rand_int__}:state" "presence:{bench:order:__rand_int__}:view" \
        "1,2,3,4" "$blob" 9999999999999 "$view" | tr '\r' '\n' | grep -v '^$' | tail -1 |
        sed "s/^/baseline run $run: redis-benchmark, one script per event: /"
done
