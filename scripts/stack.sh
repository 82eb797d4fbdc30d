#!/usr/bin/env bash
# scripts/stack.sh - a local Kafka (KRaft, one node or a replicated cluster)
# + Redis for development and the integration tests, without Docker.
#
#   stack.sh up     [--state DIR] [--brokers N] [--kafka-port N] [--redis-port N]
#                   [--partitions N] [--prefix P] [--keep-data] [--registry]
#                   [--redis-cluster | --redis-replica] [--redis-persistence aof|none]
#                   [--kafka-address ADDR] [--redis-address ADDR]
#   stack.sh down   [--state DIR]
#   stack.sh status [--state DIR]
#   stack.sh env    [--state DIR]
#   stack.sh topics [--state DIR] [--partitions N] [--prefix P] [--bootstrap HOST:PORT]
#                   [--replication-factor N] [--min-insync-replicas N]
#   stack.sh kill-node N [--state DIR] [--signal KILL|TERM]
#   stack.sh start-node N [--state DIR]
#   stack.sh kill-redis N [--state DIR] [--signal KILL|TERM]
#   stack.sh start-redis N [--state DIR]
#   stack.sh java21                 (the Java the registry runs on)
#
# --brokers N (default 1) runs N Kafka nodes, each broker and controller:
# replication factor min(3, N), min.insync.replicas one less (at least 1),
# for the presence topics and the broker's own group and transaction logs.
# kill-node / start-node stop one node (SIGKILL by default) and start it
# again with the same config and data. --registry also runs a
# Confluent-compatible schema registry (Apicurio Registry from the cache
# scripts/setup.sh fills, in memory, compatibility BACKWARD) and writes its
# URL to stack.env as REGISTRY_URL.
# --redis-cluster runs a Redis Cluster of 3 masters + 3 replicas instead of
# one Redis (REDIS_NODES in stack.env: the seeds); --redis-replica one
# master, one replica and 3 Sentinels (REDIS_SENTINELS, REDIS_MASTER_NAME).
# Both keep an append-only file (fsync every second); the single Redis
# keeps nothing (--redis-persistence changes either). kill-redis /
# start-redis stop and start one of their Redis nodes (DIR/redis-N). See
# stack/redis.sh.
# --kafka-address ADDR: every broker also listens on ADDR (a port of its own
# each, the listener EXTERNAL, advertised as ADDR:port), so clients in
# another network namespace reach the cluster across a link whose root side
# holds ADDR (tests/cluster/pxnet.py); --redis-address ADDR: the single
# Redis also listens on ADDR (same port). stack.env then has
# KAFKA_EXTERNAL_BOOTSTRAP and REDIS_EXTERNAL_HOST.
#
# Kafka 3.9.1 runs from the jars scripts/setup.sh fetched into
# ${PRESENCE_CACHE:-~/.cache/presence}/kafka-3.9.1/libs, on the local JDK.
# Ports are free ones picked at start unless given, so several stacks (one per
# state dir) run side by side. Everything a stack owns lives in its state dir
# (default <repo>/.state/stack): configs, data, logs, pid files and stack.env.
# One broker keeps its files where they always were (DIR/kafka/, kafka.pid,
# kafka.log); a cluster has one dir per node (DIR/kafka-N/: config, data,
# kafka.pid, kafka.log). Limits: loopback only (and the addresses given), no auth (the registry too: in
# memory, lost at down). The compose/ files are the containerised equivalent.
# See docs/operations.md and docs/deployment.md. This file holds the options,
# the shared helpers, the registry and the commands that span the stack (up,
# down, status, env); stack/kafka.sh the Kafka side (nodes, topics,
# kill-node, start-node), stack/redis.sh the Redis side.
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
readonly STOP_TIMEOUT_S=15
readonly PY=/usr/bin/python3 # not `python3`: may be a shim without Debian's modules

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PRESENCE_CACHE:-$HOME/.cache/presence}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
readonly APICURIO_VERSION=3.3.3
REGISTRY_HOME=$CACHE/apicurio-$APICURIO_VERSION
readonly REGISTRY_READY_TIMEOUT_S=${PX_REGISTRY_READY_TIMEOUT_S:-90}

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
# shellcheck source=SCRIPTDIR/../stack/kafka.sh
. "$ROOT/stack/kafka.sh"
# shellcheck source=SCRIPTDIR/../stack/redis.sh
. "$ROOT/stack/redis.sh"

usage() {
  sed -n '4,40p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

# --- options ---------------------------------------------------------------
STATE=$ROOT/.state/stack
NODE_ARG= # set by the node commands: they take a node id
KAFKA_PORT=
REDIS_PORT=
PARTITIONS=
PREFIX=
BOOTSTRAP=
KEEP_DATA=0
REGISTRY=0
BROKERS=
TOPIC_RF=
TOPIC_MIN_ISR=
SIGNAL=KILL
NODE=
REDIS_MODE=single
REDIS_PERSISTENCE=
KAFKA_ADDRESS=
REDIS_ADDRESS=

parse_opts() {
  while [ $# -gt 0 ]; do
    case $1 in
      --state) STATE=${2:?--state needs a dir}; shift 2 ;;
      --kafka-port) KAFKA_PORT=${2:?--kafka-port needs a port}; shift 2 ;;
      --redis-port) REDIS_PORT=${2:?--redis-port needs a port}; shift 2 ;;
      --partitions) PARTITIONS=${2:?--partitions needs a number}; shift 2 ;;
      --prefix) PREFIX=${2?--prefix needs a value}; shift 2 ;;
      --bootstrap) BOOTSTRAP=${2:?--bootstrap needs host:port}; shift 2 ;;
      --keep-data) KEEP_DATA=1; shift ;;
      --registry) REGISTRY=1; shift ;;
      --brokers) BROKERS=${2:?--brokers needs a number}; shift 2 ;;
      --replication-factor) TOPIC_RF=${2:?--replication-factor needs a number}; shift 2 ;;
      --min-insync-replicas) TOPIC_MIN_ISR=${2:?--min-insync-replicas needs a number}; shift 2 ;;
      --signal) SIGNAL=${2:?--signal needs KILL or TERM}; shift 2 ;;
      --redis-cluster) [ "$REDIS_MODE" = single ] || die "--redis-cluster and --redis-replica exclude each other"
                       REDIS_MODE=cluster; shift ;;
      --redis-replica) [ "$REDIS_MODE" = single ] || die "--redis-cluster and --redis-replica exclude each other"
                       REDIS_MODE=replica; shift ;;
      --redis-persistence) REDIS_PERSISTENCE=${2:?--redis-persistence needs aof or none}; shift 2 ;;
      --kafka-address) KAFKA_ADDRESS=${2:?--kafka-address needs an IPv4 address}; shift 2 ;;
      --redis-address) REDIS_ADDRESS=${2:?--redis-address needs an IPv4 address}; shift 2 ;;
      -h|--help) usage 0 ;;
      [1-9]*) if [ -n "$NODE" ] || [ -z "$NODE_ARG" ]; then die "unexpected argument: $1 (see stack.sh --help)"; fi
              NODE=$1; shift ;;
      *) die "unknown option: $1 (see stack.sh --help)" ;;
    esac
  done
  for v in "$KAFKA_PORT" "$REDIS_PORT" "$PARTITIONS" "$BROKERS" "$TOPIC_RF" "$TOPIC_MIN_ISR" "$NODE"; do
    [ -z "$v" ] || [[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $v"
  done
  [ -z "$BROKERS" ] || [ "$BROKERS" -le 9 ] || die "--brokers must be 1..9, not $BROKERS"
  case $SIGNAL in KILL | TERM) ;; *) die "--signal must be KILL or TERM, not '$SIGNAL'" ;; esac
  case $REDIS_PERSISTENCE in
    '') if [ "$REDIS_MODE" = single ]; then REDIS_PERSISTENCE=none; else REDIS_PERSISTENCE=aof; fi ;;
    aof | none) ;;
    *) die "--redis-persistence must be aof or none, not '$REDIS_PERSISTENCE'" ;;
  esac
  [ -z "$NODE_ARG" ] || [ -n "$NODE" ] || die "$NODE_ARG needs a node id (1..N; see stack.sh status)"
  for v in "$KAFKA_ADDRESS" "$REDIS_ADDRESS"; do
    [ -z "$v" ] || [[ $v =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || die "not an IPv4 address: $v"
  done
  [ -z "$REDIS_ADDRESS" ] || [ "$REDIS_MODE" = single ] || die "--redis-address is for the single Redis only"
  [[ $PREFIX =~ ^[A-Za-z0-9._-]*$ ]] || die "topic prefix may only hold [A-Za-z0-9._-]: $PREFIX"
  mkdir -p "$STATE"
  STATE=$(cd "$STATE" && pwd)
}

# --- helpers ---------------------------------------------------------------

# Prints N distinct free loopback ports, all held open together while they
# are picked so they differ from each other.
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# Succeeds when something already listens on (or holds) 127.0.0.1:PORT.
# Binds with SO_REUSEADDR like Kafka and Redis do, so TIME_WAIT does not count.
port_taken() {
  ! "$PY" - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(1)
EOF
}

# Succeeds when PID is alive and its command line contains PATTERN (guards
# against a recycled pid).
pid_is() {
  local pid=$1 pattern=$2
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] &&
    tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

read_pid() { if [ -f "$1" ]; then cat "$1"; fi; }

now_ms() { date +%s%3N; }
secs_since() { # ms timestamp -> "S.s"
  local d=$(( $(now_ms) - $1 ))
  printf '%d.%d' $((d / 1000)) $((d % 1000 / 100))
}

# Sends SIGTERM to the processes named by pid files whose command line matches,
# waits STOP_TIMEOUT_S for all of them, then SIGKILLs the rest.
stop_pids() { # pidfile:pattern ...
  local spec pidfile pattern pid waiting=() deadline
  for spec in "$@"; do
    pidfile=${spec%%:*} pattern=${spec#*:}
    pid=$(read_pid "$pidfile")
    if pid_is "$pid" "$pattern"; then
      kill -TERM "$pid" 2>/dev/null || true
      waiting+=("$pid:$pattern:$pidfile")
    else
      rm -f "$pidfile"
    fi
  done
  deadline=$(( $(date +%s) + STOP_TIMEOUT_S ))
  for spec in "${waiting[@]}"; do
    pid=${spec%%:*}; pattern=${spec#*:}; pattern=${pattern%%:*}; pidfile=${spec##*:}
    while pid_is "$pid" "$pattern" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
    if pid_is "$pid" "$pattern"; then
      say "pid $pid ($pattern) ignored SIGTERM for ${STOP_TIMEOUT_S}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while pid_is "$pid" "$pattern"; do sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
}

need_jars() {
  [ -f "$CACHE/kafka-$KAFKA_VERSION/libs.complete" ] ||
    die "Kafka jars not found in $LIBS: run scripts/setup.sh first"
  command -v java >/dev/null || die "java not found: run scripts/setup.sh (installs openjdk-17-jdk-headless)"
  command -v kcat >/dev/null || die "kcat not found: run scripts/setup.sh"
  command -v redis-server >/dev/null || die "redis-server not found: run scripts/setup.sh"
}

# The first Java 21 or newer under /usr/lib/jvm (Apicurio 3 needs it).
find_java21() {
  local j v
  for j in /usr/lib/jvm/*/bin/java; do
    [ -x "$j" ] || continue
    v=$("$j" -version 2>&1 | sed -n '1s/.*version "\([0-9]*\).*/\1/p')
    if [[ $v =~ ^[0-9]+$ ]] && [ "$v" -ge 21 ]; then
      printf '%s\n' "$j"
      return 0
    fi
  done
  return 1
}

# Starts the schema registry on free loopback ports (the API and Quarkus's
# management port, which would otherwise open 9000 on every interface).
start_registry() {
  [ -f "$REGISTRY_HOME/complete" ] || die "schema registry not found in $REGISTRY_HOME: run scripts/setup.sh first"
  local java ports
  java=$(find_java21) || die "the schema registry needs Java 21 or newer; none under /usr/lib/jvm"
  read -r -a ports <<<"$(free_ports 2)"
  REGISTRY_PORT=${ports[0]}
  mkdir -p "$STATE/registry"
  : >"$STATE/registry.log"
  (cd "$STATE/registry" && exec setsid "$java" -Xms64m -Xmx256m -XX:+UseSerialGC \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="${ports[1]}" \
    -jar "$REGISTRY_HOME/app/quarkus-run.jar" </dev/null >"$STATE/registry.log" 2>&1) &
  echo $! >"$STATE/registry.pid"
  STARTED_PIDS+=("$STATE/registry.pid:quarkus-run.jar")
  REGISTRY_STARTED=$(now_ms)
  say "registry: starting Apicurio $APICURIO_VERSION on 127.0.0.1:$REGISTRY_PORT (pid $!, log $STATE/registry.log)"
}

wait_registry() {
  local url=http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7 deadline
  deadline=$(( $(date +%s) + REGISTRY_READY_TIMEOUT_S ))
  until curl -fsS -o /dev/null "$url/subjects" 2>/dev/null; do
    if ! pid_is "$(read_pid "$STATE/registry.pid")" quarkus-run.jar || [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$STATE/registry.log" >&2
      die "the schema registry did not answer on $url (log: $STATE/registry.log)"
    fi
    sleep 0.25
  done
  curl -fsS -o /dev/null -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    --data '{"compatibility":"BACKWARD"}' "$url/config" ||
    die "the schema registry refused its compatibility setting (log: $STATE/registry.log)"
  REGISTRY_URL=$url
  say "registry: ready in $(secs_since "$REGISTRY_STARTED") s at $url (compatibility BACKWARD)"
}

load_env() {
  [ -f "$STATE/stack.env" ] || die "no stack in $STATE (stack.env missing): run stack.sh up --state $STATE"
  # shellcheck disable=SC1091
  . "$STATE/stack.env"
}


STARTED_PIDS=()
# Stops whatever this `up` started when it fails half-way.
on_up_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ ${#STARTED_PIDS[@]} -gt 0 ]; then
    say "up failed: stopping what was started"
    stop_pids "${STARTED_PIDS[@]}"
    rm -f "$STATE/stack.env"
  fi
  exit "$rc"
}


# --- up --------------------------------------------------------------------

# Ports: given ones must be free; the rest (and the controllers') are
# picked: N broker ports, N controller ports and Redis's (one, or the
# cluster's or the Sentinel layout's), all distinct, and N external ports
# with --kafka-address. Sets KAFKA_PORT, REDIS_PORT and BROKER_PORTS,
# CONTROLLER_PORTS, EXTERNAL_PORTS (stack/kafka.sh) and REDIS_PORTS
# (stack/redis.sh).
pick_ports() {
  local p picked want i n rwant pool=()
  rwant=$(redis_ports_needed)
  for p in "$KAFKA_PORT" "$REDIS_PORT"; do
    [ -z "$p" ] || ! port_taken "$p" || die "port $p is already in use on 127.0.0.1 (pick another, or omit it to get a free one)"
  done
  [ -z "$KAFKA_PORT" ] || [ "$KAFKA_PORT" != "$REDIS_PORT" ] || die "kafka and redis cannot share port $KAFKA_PORT"
  want=$(( 2 * BROKERS + rwant ))
  [ -z "$KAFKA_ADDRESS" ] || want=$(( want + BROKERS ))
  read -r -a picked <<<"$(free_ports $(( want + 2 )))"
  for p in "${picked[@]}"; do
    [ "$p" = "$KAFKA_PORT" ] || [ "$p" = "$REDIS_PORT" ] || pool+=("$p")
  done
  [ ${#pool[@]} -ge "$want" ] || die "could not pick $want free ports"
  KAFKA_PORT=${KAFKA_PORT:-${pool[0]}}
  REDIS_PORT=${REDIS_PORT:-${pool[1]}}
  BROKER_PORTS=("$KAFKA_PORT") CONTROLLER_PORTS=() EXTERNAL_PORTS=() i=2
  for (( n = 2; n <= BROKERS; n++ )); do BROKER_PORTS+=("${pool[i]}"); i=$((i + 1)); done
  for (( n = 1; n <= BROKERS; n++ )); do CONTROLLER_PORTS+=("${pool[i]}"); i=$((i + 1)); done
  REDIS_PORTS=("$REDIS_PORT")
  for (( n = 2; n <= rwant; n++ )); do REDIS_PORTS+=("${pool[i]}"); i=$((i + 1)); done
  if [ -n "$KAFKA_ADDRESS" ]; then
    for (( n = 1; n <= BROKERS; n++ )); do EXTERNAL_PORTS+=("${pool[i]}"); i=$((i + 1)); done
  fi
}

# stack.env: what a client of the stack needs (docs/operations.md).
write_stack_env() { # voters bootstrap external-bootstrap
  local voters=$1 bootstrap=$2 xbootstrap=$3 n
  {
    cat <<EOF
KAFKA_BOOTSTRAP=$bootstrap
PRESENCE_TOPIC_PREFIX=$PREFIX
KAFKA_PARTITIONS=$PARTITIONS
KAFKA_CONTROLLER_PORT=${CONTROLLER_PORTS[0]}
PRESENCE_KAFKA_BOOTSTRAP_SERVERS=$bootstrap
REGISTRY_URL=$REGISTRY_URL
KAFKA_BROKERS=$BROKERS
KAFKA_REPLICATION_FACTOR=$RF
KAFKA_MIN_INSYNC_REPLICAS=$MIN_ISR
KAFKA_CONTROLLER_QUORUM=$voters
KAFKA_NODES=$(seq -s, 1 "$BROKERS")
KAFKA_EXTERNAL_BOOTSTRAP=$xbootstrap
REDIS_EXTERNAL_HOST=$REDIS_ADDRESS
EOF
    for (( n = 1; n <= BROKERS; n++ )); do
      printf 'KAFKA_NODE_%d=127.0.0.1:%s\nKAFKA_NODE_%d_CONTROLLER_PORT=%s\nKAFKA_NODE_%d_DIR=%s\n' \
        "$n" "${BROKER_PORTS[n - 1]}" "$n" "${CONTROLLER_PORTS[n - 1]}" "$n" "$(node_dir "$n")"
    done
    redis_env
  } >"$STATE/stack.env"
}

cmd_up() {
  parse_opts "$@"
  need_jars
  PARTITIONS=${PARTITIONS:-6}
  BROKERS=${BROKERS:-1}
  replication

  local rpids spec running=''
  rpids=$(redis_running_pids)
  for spec in $(all_kafka_pidfiles); do
    ! pid_is "$(read_pid "${spec%%:*}")" kafka.Kafka || running+=" $(read_pid "${spec%%:*}")"
  done
  if [ -n "$running" ] || [ -n "$rpids" ] ||
     pid_is "$(read_pid "$STATE/registry.pid")" quarkus-run.jar; then
    die "a stack already runs in $STATE (kafka pid${running:- none}, redis pid ${rpids:-none}): run stack.sh down --state $STATE first"
  fi
  if [ "$KEEP_DATA" = 1 ] && [ -f "$STATE/kafka.brokers" ] && [ "$(stack_brokers)" != "$BROKERS" ]; then
    die "--keep-data: the data in $STATE is of a $(stack_brokers)-broker stack, not $BROKERS (give --brokers $(stack_brokers), or drop --keep-data)"
  fi
  pick_ports

  local n voters='' bootstrap='' xbootstrap=''
  for (( n = 1; n <= BROKERS; n++ )); do
    voters+="${voters:+,}$n@127.0.0.1:${CONTROLLER_PORTS[n - 1]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${BROKER_PORTS[n - 1]}"
    [ -z "$KAFKA_ADDRESS" ] || xbootstrap+="${xbootstrap:+,}$KAFKA_ADDRESS:${EXTERNAL_PORTS[n - 1]}"
  done

  trap on_up_exit EXIT
  rm -f "$STATE/stack.env"
  if [ "$KEEP_DATA" = 0 ]; then
    rm -rf "$STATE/kafka/data" "$STATE"/kafka-[0-9]* "$STATE/redis"
  fi
  echo "$BROKERS" >"$STATE/kafka.brokers"
  write_tools_log4j
  redis_start
  kafka_format "$voters"
  kafka_launch
  REGISTRY_URL=
  [ "$REGISTRY" = 0 ] || start_registry # starts beside the broker, waited for after it

  # Readiness. Redis first: it is up long before Kafka.
  redis_wait
  kafka_wait "$bootstrap"
  [ "$REGISTRY" = 0 ] || wait_registry

  write_stack_env "$voters" "$bootstrap" "$xbootstrap"
  create_topics "$bootstrap" "$PARTITIONS" "$PREFIX" "$RF" "$MIN_ISR"
  warm_coordinators "$bootstrap" "$PREFIX"
  if [ "$BROKERS" -gt 1 ]; then
    wait_full_isr "$bootstrap" __consumer_offsets __transaction_state
  fi
  trap - EXIT
  say "up: env in $STATE/stack.env (source it, or: stack.sh env --state $STATE)"
}

# --- down / status / env -----------------------------------------------------

cmd_down() {
  parse_opts "$@"
  local any=0 specs=()
  mapfile -t specs < <(all_kafka_pidfiles; all_redis_pidfiles)
  [ ${#specs[@]} -gt 0 ] || [ -f "$STATE/registry.pid" ] && any=1
  stop_pids "${specs[@]}" "$STATE/registry.pid:quarkus-run.jar"
  rm -f "$STATE/stack.env"
  if [ "$any" = 1 ]; then say "down: stopped the stack in $STATE"; else say "down: nothing runs in $STATE"; fi
}

cmd_status() {
  parse_opts "$@"
  local rc=0 with_env=''
  BROKERS=$(stack_brokers)
  if [ -f "$STATE/stack.env" ]; then
    # shellcheck disable=SC1091
    . "$STATE/stack.env"
    with_env=1
  fi
  kafka_status "$with_env" || rc=3
  redis_status || rc=3
  local gpid
  gpid=$(read_pid "$STATE/registry.pid")
  if pid_is "$gpid" quarkus-run.jar; then
    say "registry: running, pid $gpid${with_env:+, ${REGISTRY_URL:-}}, log $STATE/registry.log"
  fi
  say "state: $STATE"
  return "$rc"
}

cmd_env() {
  parse_opts "$@"
  [ -f "$STATE/stack.env" ] || die "no stack in $STATE (stack.env missing)"
  cat "$STATE/stack.env"
}

[ $# -gt 0 ] || usage
sub=$1; shift
case $sub in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  status) cmd_status "$@" ;;
  env) cmd_env "$@" ;;
  topics) cmd_topics "$@" ;;
  kill-node) cmd_kill_node "$@" ;;
  start-node) cmd_start_node "$@" ;;
  kill-redis) cmd_kill_redis "$@" ;;
  start-redis) cmd_start_redis "$@" ;;
  java21) find_java21 || die "no Java 21 or newer under /usr/lib/jvm" ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown subcommand: $sub (up, down, status, env, topics, kill-node, start-node, kill-redis, start-redis, java21)" ;;
esac
