#!/usr/bin/env bash
# Set up and run the whole system on this machine: installs what is missing,
# builds, starts Kafka (KRaft) and Redis, the processor and the gateway, waits
# until each of them answers its own /readyz, and prints the URL of the demo
# page. Ctrl-C stops everything.
#   scripts/up.sh [--detach] [--port N] [--gateways N] [--state DIR] [--build-dir DIR]
#                 [--redis-cluster | --redis-replica]
#     --detach         leave it running; stop with scripts/down.sh [--state DIR]
#     --port N         the gateway's port (else PRESENCE_GATEWAY_HTTP_PORT or
#                      PRESENCE_HTTP_PORT, else a free one)
#     --gateways N     run N gateways on that one port (http.reuse_port: the
#                      kernel spreads connections over them); default 1
#     --state DIR      state and logs (default <repo>/.state, or PX_UP_STATE);
#                      one running system per state dir
#     --build-dir DIR  run the binaries of an existing build in DIR (or
#                      PX_UP_BUILD_DIR): no setup.sh, no build
#     --redis-cluster  a 3 + 3 Redis Cluster instead of one Redis; --redis-replica
#                      a master, a replica and 3 Sentinels (stack.sh's layouts;
#                      a stack already running keeps its own)
# Every port is a free one unless given, so several systems run side by side
# (one per state dir). The processor's ops port: PRESENCE_PROCESSOR_OPS_PORT
# (or its old name PRESENCE_PROCESSOR_HTTP_PORT). If a component does not
# start, up.sh prints its log tail, stops what it started and exits 1.
# See docs/operations.md ("Run it: up.sh and down.sh").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
readonly PY=/usr/bin/python3
readonly READY_TIMEOUT_S=${PX_UP_READY_TIMEOUT_S:-60}

die() { echo "up.sh: $*" >&2; exit 1; }

detach=0
port_arg=
gateways=1
redis_layout=()
state=${PX_UP_STATE:-$root/.state}
build=${PX_UP_BUILD_DIR:-}
while [ $# -gt 0 ]; do
    case "$1" in
    --detach) detach=1 ;;
    --port) port_arg=${2:?--port needs a number}; shift ;;
    --gateways) gateways=${2:?--gateways needs a number}; shift ;;
    --state) state=${2:?--state needs a directory}; shift ;;
    --build-dir) build=${2:?--build-dir needs a directory}; shift ;;
    --redis-cluster|--redis-replica) redis_layout=("$1") ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "up.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

[[ $gateways =~ ^[1-9][0-9]?$ ]] || die "--gateways takes 1 to 99, not '$gateways'"

# --- the state dir: one system at a time --------------------------------
mkdir -p "$state/logs"
state=$(cd "$state" && pwd)
exec 8>"$state/up.lock"
flock -n 8 || die "another up.sh is starting or running a system in $state (use --state DIR for another one)"

pid_is() { # pid pattern: alive and its command line holds pattern
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] && tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -q -- "$2"
}
# gateway.pid, gateway-2.pid ... (--gateways), processor.pid
for f in "$state"/gateway*.pid "$state/processor.pid"; do
    [ -f "$f" ] || continue
    d=$(basename "$f" .pid) pid=$(cat "$f" 2>/dev/null || true)
    if pid_is "$pid" "presence-${d%%-*}"; then
        die "a ${d%%-*} already runs from $state (pid $pid): scripts/down.sh$([ "$state" = "$root/.state" ] || echo " --state $state") first, or --state DIR for another system"
    fi
    rm -f "$f"
done

# --- ports ---------------------------------------------------------------
# Given ones come from the option or the programs' own variables, as the
# programs themselves read them (docs/configuration.md); the rest are free
# ones picked together, so they differ.
gw_port=${port_arg:-${PRESENCE_GATEWAY_HTTP_PORT:-${PRESENCE_HTTP_PORT:-}}}
gw_host=${PRESENCE_GATEWAY_HTTP_HOST:-${PRESENCE_HTTP_HOST:-127.0.0.1}}
ops_port=${PRESENCE_PROCESSOR_OPS_PORT:-${PRESENCE_PROCESSOR_HTTP_PORT:-${PRESENCE_OPS_PORT:-}}}
ops_host=${PRESENCE_PROCESSOR_OPS_HOST:-${PRESENCE_PROCESSOR_HTTP_HOST:-${PRESENCE_OPS_HOST:-127.0.0.1}}}
for p in "$gw_port" "$ops_port"; do
    [ -z "$p" ] || [[ $p =~ ^[0-9]{1,5}$ ]] || die "not a port number: '$p'"
done
[ "$ops_port" != 0 ] || die "the processor's ops port is 0 (none), but up.sh waits on its /readyz: unset it or give a port"
[ -z "$gw_port" ] || [ "$gw_port" != "$ops_port" ] || die "the gateway and the processor cannot share port $gw_port"

port_taken() { # host port: something listens there or holds it
    ! "$PY" - "$1" "$2" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
EOF
}
if [ -n "$port_arg" ]; then gw_from="--port"; else gw_from="PRESENCE_GATEWAY_HTTP_PORT / PRESENCE_HTTP_PORT"; fi
ops_from="PRESENCE_PROCESSOR_OPS_PORT / PRESENCE_PROCESSOR_HTTP_PORT / PRESENCE_OPS_PORT"
if [ -n "$gw_port" ] && port_taken "$gw_host" "$gw_port"; then
    die "the gateway's port $gw_host:$gw_port ($gw_from) is taken; pick another or leave it out for a free one"
fi
if [ -n "$ops_port" ] && port_taken "$ops_host" "$ops_port"; then
    die "the processor's ops port $ops_host:$ops_port ($ops_from) is taken; pick another or leave it out for a free one"
fi

# --- set-up and build ----------------------------------------------------
if [ -z "$build" ]; then
    bash scripts/setup.sh 8>&-
    echo "== build"
    build=$root/build/release
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPX_TESTS=OFF >/dev/null
    cmake --build "$build" -j"$(nproc)" 8>&-
fi
build=$(cd "$build" && pwd)
gw_bin=$build/gateway/presence-gateway
pr_bin=$build/processor/presence-processor
[ -x "$gw_bin" ] && [ -x "$pr_bin" ] || die "no presence-gateway and presence-processor in $build"

# --- what this run starts, and how it undoes it -------------------------
started_stack=0
started=() # "name:pid"
stop_started() {
    local s name pid
    for s in "${started[@]}"; do
        name=${s%%:*} pid=${s#*:}
        rm -f "$state/$name.pid"
        pid_is "$pid" "presence-${name%%-*}" || continue # already gone (and reaped)
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do pid_is "$pid" "presence-${name%%-*}" || break; sleep 0.1; done
        if pid_is "$pid" "presence-${name%%-*}"; then kill -KILL "$pid" 2>/dev/null || true; fi
        wait "$pid" 2>/dev/null || true
        echo "up.sh: stopped the $name (pid $pid)" >&2
    done
    started=()
    if [ "$started_stack" = 1 ]; then
        bash scripts/stack.sh down --state "$state/stack" >&2 || true
        started_stack=0
    fi
}
# Prints why a component failed and its log tail, stops everything this run
# started and exits 1.
fail() { # name what-happened
    local log=$state/logs/$1.log left=0
    echo >&2
    echo "up.sh: the $1 $2" >&2
    echo "up.sh: last lines of $log:" >&2
    tail -n 20 "$log" 2>/dev/null | sed 's/^/    /' >&2 || true
    [ "$started_stack" = 1 ] || [ "$stack_was_running" = 0 ] || left=1
    stop_started
    [ "$left" = 0 ] ||
        echo "up.sh: the Kafka + Redis stack in $state/stack was running before and is left running" >&2
    exit 1
}
trap 'stop_started; exit 130' INT TERM

stack_was_running=0
if bash scripts/stack.sh status --state "$state/stack" >/dev/null 2>&1; then
    stack_was_running=1
    echo "== Kafka + Redis: already running in $state/stack"
else
    started_stack=1
    bash scripts/stack.sh up --state "$state/stack" "${redis_layout[@]}" 8>&- ||
        { started_stack=0; die "the Kafka + Redis stack did not start (logs in $state/stack/)"; }
fi
# shellcheck disable=SC1091
. "$state/stack/stack.env"
if [ ${#redis_layout[@]} -gt 0 ] && [ "--redis-${REDIS_MODE:-single}" != "${redis_layout[0]/replica/replica}" ] &&
   [ "$stack_was_running" = 1 ]; then
    echo "up.sh: ${redis_layout[0]} ignored: the stack already running in $state/stack has Redis layout '${REDIS_MODE:-single}'" >&2
fi

# --- ports not given: free ones, picked together (so they differ) right
# before the daemons start; picked before the stack, a port of the
# ephemeral range could be some connection's source port by now.
read -r -a free <<<"$("$PY" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
gw_set=() ops_set=()
if [ -n "$port_arg" ]; then gw_set=(--set "http.port=$gw_port"); fi
if [ -z "$gw_port" ]; then
    gw_port=${free[0]}; [ "$gw_port" != "$ops_port" ] || gw_port=${free[1]}
    gw_set=(--set "http.port=$gw_port")
fi
if [ -z "$ops_port" ]; then
    ops_port=${free[1]}; [ "$ops_port" != "$gw_port" ] || ops_port=${free[0]}
    ops_set=(--set "ops.port=$ops_port")
fi
[ "$gateways" = 1 ] || gw_set+=(--set http.reuse_port=true)
poll_host() { if [ "$1" = 0.0.0.0 ]; then echo 127.0.0.1; else echo "$1"; fi; }
gw_url=http://$(poll_host "$gw_host"):$gw_port
ops_url=http://$(poll_host "$ops_host"):$ops_port

# --- the daemons ---------------------------------------------------------
common=(--set "kafka.bootstrap.servers=$KAFKA_BOOTSTRAP" --set "redis.host=$REDIS_HOST"
        --set "redis.port=$REDIS_PORT" --set "topic.prefix=${PRESENCE_TOPIC_PREFIX:-}")
# the stack's Redis layout (stack.env): the seeds, or the Sentinels
case ${REDIS_MODE:-single} in
    cluster) common+=(--set redis.cluster=true --set "redis.nodes=$REDIS_NODES") ;;
    replica) common+=(--set "redis.sentinels=$REDIS_SENTINELS" --set "redis.master_name=$REDIS_MASTER_NAME") ;;
esac
redis_where="127.0.0.1:$REDIS_PORT"
[ "${REDIS_MODE:-single}" != cluster ] || redis_where="Cluster $REDIS_NODES"
[ "${REDIS_MODE:-single}" != replica ] || redis_where="master '$REDIS_MASTER_NAME' of Sentinels $REDIS_SENTINELS"
: >"$state/logs/processor.log"
# setsid: their own session, so closing the terminal of a --detach run
# leaves them be; fd 8 (the lock) stays with up.sh.
# a stable instance name (static group membership, transactional ids): a
# restart of up.sh takes the partitions back at once
inst_set=()
[ -n "${PRESENCE_PROCESSOR_INSTANCE:-}" ] || inst_set=(--set processor.instance=up-processor-1)
setsid "$pr_bin" "${common[@]}" "${ops_set[@]}" "${inst_set[@]}" \
    </dev/null >"$state/logs/processor.log" 2>&1 8>&- &
pr_pid=$!
started+=("processor:$pr_pid")
echo "$pr_pid" >"$state/processor.pid"
echo "== processor: pid $pr_pid, ops $ops_url, log $state/logs/processor.log"
# The gateways: gateway (its log gateway.log, pid gateway.pid), then
# gateway-2 ... gateway-N, all on gw_port (http.reuse_port when N > 1).
gw_names=()
for i in $(seq 1 "$gateways"); do
    name=gateway; [ "$i" = 1 ] || name=gateway-$i
    : >"$state/logs/$name.log"
    setsid "$gw_bin" "${common[@]}" "${gw_set[@]}" --set auth.dev_mode=true \
        </dev/null >"$state/logs/$name.log" 2>&1 8>&- &
    started+=("$name:$!")
    gw_names+=("$name:$!")
    echo "$!" >"$state/$name.pid"
    echo "== $name: pid $!, $gw_url, log $state/logs/$name.log"
done

# Each component is ready when it is alive, its own log says it bound its
# port (so what answers there is this process, not another one holding the
# port) and its own /readyz answers 200: the processor's on its ops port; a
# gateway's is the answer on the shared port that carries its id (its log's
# `started id=...`), since with --gateways each request reaches one of them.
alive_or_fail() { # name pid
    local rc=0
    kill -0 "$2" 2>/dev/null && return 0
    wait "$2" || rc=$?
    fail "$1" "did not start: it exited with code $rc"
}
ready_check() { # name pid log-pattern url body-pattern -> 0 ready, 1 not yet; fails when dead
    local name=$1 pid=$2 pattern=$3 url=$4 body=$5 out
    alive_or_fail "$name" "$pid"
    grep -q -- "$pattern" "$state/logs/$name.log" || return 1
    out=$(curl -fsS -m 2 "$url/readyz" 2>/dev/null) || return 1
    [[ $out == ready*$body* ]]
}
gw_ready=() # names of the gateways found ready
gw_ready_check() { # one /readyz on the shared port: marks the gateway that answered
    local s name id out
    for s in "${gw_names[@]}"; do alive_or_fail "${s%%:*}" "${s#*:}"; done
    out=$(curl -fsS -m 2 "$gw_url/readyz" 2>/dev/null) || return 0
    [[ $out == ready*kafka=* ]] || return 0
    for s in "${gw_names[@]}"; do
        name=${s%%:*}
        id=$(sed -n 's/.*msg="started" id=\([^ ]*\).*/\1/p' "$state/logs/$name.log" | head -1)
        if [ -n "$id" ] && [[ $out == *" id=$id"* ]] && [[ " ${gw_ready[*]} " != *" $name "* ]]; then
            gw_ready+=("$name")
        fi
    done
}
echo "== waiting for the processor and $gateways gateway(s) to be ready (at most ${READY_TIMEOUT_S}s)"
deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
pr_ready=0
while [ $pr_ready = 0 ] || [ ${#gw_ready[@]} -lt "$gateways" ]; do
    [ $pr_ready = 1 ] || ! ready_check processor "$pr_pid" 'msg="ops endpoint"' "$ops_url" consuming= || pr_ready=1
    [ ${#gw_ready[@]} -ge "$gateways" ] || gw_ready_check
    if [ $pr_ready = 0 ] || [ ${#gw_ready[@]} -lt "$gateways" ]; then
        if [ "$(date +%s)" -ge "$deadline" ]; then
            n=processor u=$ops_url
            if [ $pr_ready = 1 ]; then
                for s in "${gw_names[@]}"; do
                    [[ " ${gw_ready[*]} " == *" ${s%%:*} "* ]] || { n=${s%%:*}; break; }
                done
                u=$gw_url
            fi
            fail "$n" "did not start: not ready after ${READY_TIMEOUT_S}s ($u/readyz: $(curl -sS -m 2 "$u/readyz" 2>&1 | head -c 200))"
        fi
        sleep 0.2
    fi
done

down_cmd="scripts/down.sh$([ "$state" = "$root/.state" ] || echo " --state $state")"
cat <<MSG

presence is running (development mode: the demo page gets its token from the
gateway's dev token route for the user in its URL; never expose this gateway).
  Open:     $gw_url/?user=alice   and, in another window,
            $gw_url/?user=bob
  Ops:      gateway $gw_url/metrics$([ "$gateways" = 1 ] || echo " (one of the $gateways)")   processor $ops_url/metrics
  Logs:     $state/logs/   Kafka $KAFKA_BOOTSTRAP   Redis $redis_where
  Tools:    set -a; . $state/stack/stack.env; set +a; $build/tools/presencectl verify
  Stop:     $down_cmd$( [ $detach -eq 1 ] || echo "  (or Ctrl-C here)")
MSG
if [ $detach -eq 1 ]; then
    started=() started_stack=0
    trap - INT TERM
    exit 0
fi
# Foreground: Ctrl-C stops everything; so does either daemon exiting.
started_stack=1 # from here on, Ctrl-C stops the whole system, as down.sh would
trap 'echo; stop_started; exit 0' INT TERM
while :; do
    for s in "processor:$pr_pid" "${gw_names[@]}"; do
        if ! kill -0 "${s#*:}" 2>/dev/null; then
            rc=0; wait "${s#*:}" || rc=$?
            fail "${s%%:*}" "exited with code $rc"
        fi
    done
    sleep 1
done
