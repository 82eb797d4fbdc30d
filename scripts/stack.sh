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
# See docs/operations.md and docs/deployment.md.
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
# Fixed 22-char base64url cluster id ("presence-stack-1", 16 bytes).
readonly CLUSTER_ID=cHJlc2VuY2Utc3RhY2stMQ
readonly KAFKA_READY_TIMEOUT_S=${PX_KAFKA_READY_TIMEOUT_S:-60}
readonly STOP_TIMEOUT_S=15
# The broker's kafka.request.logger level: DEBUG logs every request with its
# queue/local/remote times (docs/operations.md, troubleshooting).
readonly KAFKA_REQUEST_LOG=${PX_KAFKA_REQUEST_LOG:-WARN}
readonly PY=/usr/bin/python3 # not `python3`: may be a shim without Debian's modules

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PRESENCE_CACHE:-$HOME/.cache/presence}
LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
readonly APICURIO_VERSION=3.3.3
REGISTRY_HOME=$CACHE/apicurio-$APICURIO_VERSION
readonly REGISTRY_READY_TIMEOUT_S=${PX_REGISTRY_READY_TIMEOUT_S:-90}

# The presence topics (docs/operations.md, "Topics"): the inputs the
# processor folds, each with .retry and .dlt companions, and its output.
readonly INPUT_TOPICS=(presence.heartbeats presence.locks
                       core.entities.lifecycle.mutating core.entities.lifecycle.mutated)
readonly OUTPUT_TOPICS=(presence.changes)

say() { printf 'stack: %s\n' "$*"; }
# shellcheck source=../stack/redis.sh
. "$ROOT/stack/redis.sh"
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
case $KAFKA_REQUEST_LOG in
  TRACE | DEBUG | INFO | WARN | ERROR) ;;
  *) die "PX_KAFKA_REQUEST_LOG must be TRACE, DEBUG, INFO, WARN or ERROR, not '$KAFKA_REQUEST_LOG'" ;;
esac

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
      [1-9]*) [ -z "$NODE" ] && [ -n "$NODE_ARG" ] || die "unexpected argument: $1 (see stack.sh --help)"
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

# --- topics ----------------------------------------------------------------

# Compiles stack/kafka/CreateTopics.java and FormatNodes.java once per
# source version into the cache, so each later call costs one plain JVM
# start.
topic_tool_classes() {
  local src=("$ROOT/stack/kafka/CreateTopics.java" "$ROOT/stack/kafka/FormatNodes.java") sum dir
  sum=$(cat "${src[@]}" | sha256sum | cut -c1-16)
  dir=$CACHE/kafka-$KAFKA_VERSION/tools-$sum
  if [ ! -f "$dir/CreateTopics.class" ] || [ ! -f "$dir/FormatNodes.class" ]; then
    command -v javac >/dev/null || return 1
    mkdir -p "$dir.tmp.$$"
    javac -nowarn -d "$dir.tmp.$$" -cp "$LIBS/*" "${src[@]}" >&2 || { rm -rf "$dir.tmp.$$"; return 1; }
    mv -T "$dir.tmp.$$" "$dir" 2>/dev/null || rm -rf "$dir.tmp.$$" # lost a race: fine
  fi
  printf '%s\n' "$dir"
}

# A new broker creates __consumer_offsets at the first group lookup and
# __transaction_state at the first init_transactions, and answers
# COORDINATOR_NOT_AVAILABLE meanwhile; librdkafka asks again about 1.4 s
# later. One consumer group lookup and one transactional producer here
# create both, so the first processor or gateway does not wait for them.
warm_coordinators() {
  local bootstrap=$1 prefix=$2 started
  started=$(now_ms)
  # (the here-document's text starts on the line after "<<": the test of
  # its status goes after it, not on the next line)
  if ! "$PY" - "$bootstrap" "$prefix" 2>"$STATE/warmup.log" <<'PYEOF'
import sys, time
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
boot, prefix = sys.argv[1], sys.argv[2]
c = Consumer({"bootstrap.servers": boot, "group.id": "presence-stack-warmup", "enable.auto.commit": False})
# A busy new broker may answer NOT_COORDINATOR (or that it is loading)
# while __consumer_offsets gets its leader: ask again, up to 60 s.
deadline = time.monotonic() + 60
while True:
    try:
        c.committed([TopicPartition(prefix + "presence.heartbeats", 0)], timeout=60)
        break
    except KafkaException as e:
        err = e.args[0]
        passing = (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                   KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
        if time.monotonic() > deadline or not (err.retriable() or err.code() in passing):
            raise
        print(f"warm-up: {err.str()}: asking again", file=sys.stderr)
        time.sleep(0.5)
c.close()
p = Producer({"bootstrap.servers": boot, "transactional.id": "presence-stack-warmup"})
p.init_transactions(60)
PYEOF
  then
    cat "$STATE/warmup.log" >&2
    die "kafka: the group and transaction coordinators did not come up (log: $STATE/kafka.log)"
  fi
  local t
  for t in __consumer_offsets __transaction_state; do # what the warm-up is for
    kcat -b "$bootstrap" -L -t "$t" 2>/dev/null | grep -q "topic \"$t\" with" ||
      die "kafka: $t does not exist after the warm-up (log: $STATE/warmup.log)"
  done
  say "kafka: group and transaction coordinators ready in $(secs_since "$started") s"
}

# Creates every presence topic (prefixed) with PARTITIONS partitions,
# replication factor RF and min.insync.replicas MIN_ISR (1 and 1 on one
# broker); existing topics are left alone.
create_topics() {
  local bootstrap=$1 partitions=$2 prefix=$3 rf=${4:-1} min_isr=${5:-1} t names=() started classes
  for t in "${INPUT_TOPICS[@]}"; do names+=("$prefix$t" "$prefix$t.retry" "$prefix$t.dlt"); done
  for t in "${OUTPUT_TOPICS[@]}"; do names+=("$prefix$t"); done
  started=$(now_ms)
  if classes=$(topic_tool_classes); then
    # One JVM, one CreateTopics request for all of them (AdminClient).
    java -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
      -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
      -cp "$classes:$LIBS/*" CreateTopics --replication-factor "$rf" --min-insync-replicas "$min_isr" \
      "$bootstrap" "$partitions" "${names[@]}" ||
      die "topic creation failed on $bootstrap"
  else
    # No javac: Kafka's own TopicCommand, one JVM per topic, in parallel.
    say "javac not found: creating topics with TopicCommand (slower)"
    local pids=() rc=0 p
    for t in "${names[@]}"; do
      # the configs of stack/kafka/CreateTopics.java and `presencectl topics`
      local retention=2592000000
      case $t in *presence.heartbeats | *.retry) retention=86400000 ;; esac
      java -Xmx128m -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
        -cp "$LIBS/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" \
        --create --if-not-exists --topic "$t" --partitions "$partitions" \
        --replication-factor "$rf" --config min.insync.replicas="$min_isr" \
        --config cleanup.policy=delete --config retention.ms="$retention" >/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ "$rc" -eq 0 ] || die "topic creation failed on $bootstrap"
  fi
  local repl=
  [ "$rf" = 1 ] || repl=", replication factor $rf, min.insync.replicas $min_isr"
  say "topics: ${#names[@]} topics (${partitions} partitions$repl, prefix '${prefix}') ready in $(secs_since "$started") s"
}

# Waits (up to KAFKA_READY_TIMEOUT_S) until every partition of each TOPIC
# has all of its replicas in sync, as the metadata of BOOTSTRAP says.
wait_full_isr() { # bootstrap topic...
  local started out
  started=$(now_ms)
  if ! out=$("$PY" - "$KAFKA_READY_TIMEOUT_S" "$@" 2>&1 <<'PYEOF'
import sys, time
from confluent_kafka.admin import AdminClient
timeout, boot, topics = float(sys.argv[1]), sys.argv[2], sys.argv[3:]
a = AdminClient({"bootstrap.servers": boot})
deadline, short = time.monotonic() + timeout, ["no metadata yet"]
while time.monotonic() < deadline:
    try:
        md = a.list_topics(timeout=5)
    except Exception as e:  # a broker just started may not answer yet
        short = [str(e)]
        time.sleep(0.25)
        continue
    short = []
    for t in topics:
        tm = md.topics.get(t)
        if tm is None or tm.error is not None or not tm.partitions:
            short.append(f"{t}: {tm.error if tm is not None and tm.error else 'not in the metadata'}")
            continue
        short += [f"{t}[{p}] replicas {pm.replicas} isr {pm.isrs}" for p, pm in sorted(tm.partitions.items())
                  if sorted(pm.isrs) != sorted(pm.replicas) or pm.leader < 0]
    if not short:
        sys.exit(0)
    time.sleep(0.25)
print("; ".join(short[:6]) + (f" (and {len(short) - 6} more)" if len(short) > 6 else ""))
sys.exit(1)
PYEOF
  ); then
    die "kafka: replicas not in sync after ${KAFKA_READY_TIMEOUT_S}s: $out"
  fi
  say "kafka: every replica in sync (${*:2}) in $(secs_since "$started") s"
}

write_tools_log4j() {
  cat >"$STATE/tools-log4j.properties" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

cmd_topics() {
  parse_opts "$@"
  need_jars
  if [ -z "$BOOTSTRAP" ]; then load_env; BOOTSTRAP=$KAFKA_BOOTSTRAP; fi
  PARTITIONS=${PARTITIONS:-${KAFKA_PARTITIONS:-6}}
  # A factor given alone gets min.insync.replicas one less (at least 1);
  # neither given: the stack's.
  if [ -n "$TOPIC_RF" ]; then
    TOPIC_MIN_ISR=${TOPIC_MIN_ISR:-$(( TOPIC_RF > 1 ? TOPIC_RF - 1 : 1 ))}
  else
    TOPIC_RF=${KAFKA_REPLICATION_FACTOR:-1}
    TOPIC_MIN_ISR=${TOPIC_MIN_ISR:-${KAFKA_MIN_INSYNC_REPLICAS:-1}}
  fi
  [ "$TOPIC_MIN_ISR" -le "$TOPIC_RF" ] ||
    die "--min-insync-replicas $TOPIC_MIN_ISR is more than the replication factor $TOPIC_RF"
  [ -f "$STATE/tools-log4j.properties" ] || write_tools_log4j
  create_topics "$BOOTSTRAP" "$PARTITIONS" "$PREFIX" "$TOPIC_RF" "$TOPIC_MIN_ISR"
}

# --- nodes -----------------------------------------------------------------
# One broker keeps the layout of old: DIR/kafka/ (config, data), DIR/kafka.pid,
# DIR/kafka.log, DIR/kafka.out. A cluster of N: node I's all in DIR/kafka-I/
# (server.properties, log4j.properties, data/, kafka.pid, kafka.log,
# kafka.out). DIR/kafka.brokers holds N from the last `up`.

node_dir() { if [ "$BROKERS" = 1 ]; then echo "$STATE/kafka"; else echo "$STATE/kafka-$1"; fi; }
node_pidfile() { if [ "$BROKERS" = 1 ]; then echo "$STATE/kafka.pid"; else echo "$STATE/kafka-$1/kafka.pid"; fi; }
node_log() { if [ "$BROKERS" = 1 ]; then echo "$STATE/kafka.log"; else echo "$STATE/kafka-$1/kafka.log"; fi; }
node_out() { if [ "$BROKERS" = 1 ]; then echo "$STATE/kafka.out"; else echo "$STATE/kafka-$1/kafka.out"; fi; }

# The broker count of the stack in STATE (1 when none was recorded: a stack
# started before clusters existed).
stack_brokers() {
  local n
  n=$(cat "$STATE/kafka.brokers" 2>/dev/null || true)
  if [[ $n =~ ^[1-9]$ ]]; then echo "$n"; else echo 1; fi
}

# RF and MIN_ISR for BROKERS nodes: factor min(3, N), min.insync.replicas
# one less, at least 1 (docs/deployment.md says why).
replication() {
  RF=$(( BROKERS < 3 ? BROKERS : 3 ))
  MIN_ISR=$(( RF > 1 ? RF - 1 : 1 ))
}

# The node's PLAINTEXT port from its generated config.
node_port() {
  sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)\(,.*\)\{0,1\}$/\1/p' "$(node_dir "$1")/server.properties"
}

# --- up --------------------------------------------------------------------

write_kafka_config() { # node kafka-port controller-port voters [external-port]
  local id=$1 kport=$2 cport=$3 voters=$4 xport=${5:-} dir
  dir=$(node_dir "$id")
  mkdir -p "$dir"
  # The listeners: PLAINTEXT (clients and the brokers among themselves) and
  # CONTROLLER on loopback, and EXTERNAL on --kafka-address when given.
  local listeners="PLAINTEXT://127.0.0.1:$kport,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$kport"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [ -n "$xport" ]; then
    listeners+=",EXTERNAL://$KAFKA_ADDRESS:$xport"
    advertised+=",EXTERNAL://$KAFKA_ADDRESS:$xport"
    protocols+=",EXTERNAL:PLAINTEXT"
  fi
  if [ "$BROKERS" = 1 ]; then
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/stack.sh: single-node KRaft broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$dir/data
# Topics are created explicitly (stack.sh topics) so a misspelt name fails
# instead of silently getting a topic with the wrong partition count.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# Fast start-up on a small machine.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
log.cleaner.threads=1
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
EOF
  else
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/stack.sh: node $id of a $BROKERS-node KRaft cluster on
# loopback, every node broker and controller (docs/deployment.md).
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$dir/data
# Topics are created explicitly (stack.sh topics) so a misspelt name fails
# instead of silently getting a topic with the wrong partition count.
auto.create.topics.enable=false
num.partitions=1
# Replication factor min(3, brokers), min.insync.replicas one less (at
# least 1): an acks=all write survives the loss of one broker, and the
# topics stay writable while one is down. The group and transaction logs
# are replicated the same way.
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
offsets.topic.replication.factor=$RF
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
unclean.leader.election.enable=false
# A dead broker is fenced (out of every ISR, its partitions' leadership
# moved) when its heartbeats to the active controller stop for
# broker.session.timeout.ms: 4 s with a heartbeat every second, instead of
# Kafka's 9 s and 2 s, so writes pause about 4 s after a broker's loss
# (docs/deployment.md, "What a broker's loss costs").
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# Small internal logs and small thread counts: N brokers on a small machine.
offsets.topic.num.partitions=3
transaction.state.log.num.partitions=3
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=2097152
log.cleaner.threads=1
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
num.replica.fetchers=1
EOF
  fi
  cat >"$dir/log4j.properties" <<EOF
# Generated by scripts/stack.sh: the broker logs to $(node_log "$id").
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$(node_log "$id")
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=$KAFKA_REQUEST_LOG
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log.LogLoader=WARN
EOF
}

KAFKA_JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
                 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent
                 -Djava.awt.headless=true)
# A cluster's nodes: smaller heaps and the client JIT only, so N of them fit
# on a 2-core machine.
KAFKA_CLUSTER_JAVA_OPTS=(-Xms128m -Xmx384m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
                         -XX:TieredStopAtLevel=1 -XX:InitiatingHeapOccupancyPercent=35
                         -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true)

# Starts node ID's JVM in its own session, output appended to its .out, pid
# in its pid file and in LAUNCHED_PID.
launch_node() {
  local id=$1 dir opts
  dir=$(node_dir "$id")
  if [ "$BROKERS" = 1 ]; then opts=("${KAFKA_JAVA_OPTS[@]}"); else opts=("${KAFKA_CLUSTER_JAVA_OPTS[@]}"); fi
  setsid java "${opts[@]}" \
    -Dlog4j.configuration=file:"$dir/log4j.properties" -Dkafka.logs.dir="$(dirname "$(node_log "$id")")" \
    -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
    </dev/null >>"$(node_out "$id")" 2>&1 &
  LAUNCHED_PID=$!
  echo "$LAUNCHED_PID" >"$(node_pidfile "$id")"
}

# The node ids whose pid file names a live broker.
live_nodes() {
  local id out=()
  for id in $(seq 1 "$BROKERS"); do
    ! pid_is "$(read_pid "$(node_pidfile "$id")")" kafka.Kafka || out+=("$id")
  done
  echo "${out[*]}"
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

# Every Kafka pid file of STATE with its pattern, whichever layout ran.
all_kafka_pidfiles() {
  local f
  for f in "$STATE/kafka.pid" "$STATE"/kafka-[0-9]*/kafka.pid; do
    [ -e "$f" ] && printf '%s:kafka.Kafka\n' "$f"
  done
  return 0
}

cmd_up() {
  parse_opts "$@"
  need_jars
  PARTITIONS=${PARTITIONS:-6}
  BROKERS=${BROKERS:-1}
  replication

  local kpid rpids spec running=
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

  # Ports: given ones must be free; the rest (and the controllers') are
  # picked: N broker ports, N controller ports and Redis's (one, or the
  # cluster's or the Sentinel layout's), all distinct, and N external
  # ports with --kafka-address.
  local p picked want i kports=() cports=() xports=() rwant
  rwant=$(redis_ports_needed)
  for p in "$KAFKA_PORT" "$REDIS_PORT"; do
    [ -z "$p" ] || ! port_taken "$p" || die "port $p is already in use on 127.0.0.1 (pick another, or omit it to get a free one)"
  done
  [ -z "$KAFKA_PORT" ] || [ "$KAFKA_PORT" != "$REDIS_PORT" ] || die "kafka and redis cannot share port $KAFKA_PORT"
  want=$(( 2 * BROKERS + rwant ))
  [ -z "$KAFKA_ADDRESS" ] || want=$(( want + BROKERS ))
  read -r -a picked <<<"$(free_ports $(( want + 2 )))"
  local pool=()
  for p in "${picked[@]}"; do
    [ "$p" = "$KAFKA_PORT" ] || [ "$p" = "$REDIS_PORT" ] || pool+=("$p")
  done
  [ ${#pool[@]} -ge "$want" ] || die "could not pick $want free ports"
  KAFKA_PORT=${KAFKA_PORT:-${pool[0]}}
  REDIS_PORT=${REDIS_PORT:-${pool[1]}}
  kports=("$KAFKA_PORT") i=2
  for (( n = 2; n <= BROKERS; n++ )); do kports+=("${pool[i]}"); i=$((i + 1)); done
  for (( n = 1; n <= BROKERS; n++ )); do cports+=("${pool[i]}"); i=$((i + 1)); done
  REDIS_PORTS=("$REDIS_PORT")
  for (( n = 2; n <= rwant; n++ )); do REDIS_PORTS+=("${pool[i]}"); i=$((i + 1)); done
  if [ -n "$KAFKA_ADDRESS" ]; then
    for (( n = 1; n <= BROKERS; n++ )); do xports+=("${pool[i]}"); i=$((i + 1)); done
  fi

  local voters= bootstrap= xbootstrap=
  for (( n = 1; n <= BROKERS; n++ )); do
    voters+="${voters:+,}$n@127.0.0.1:${cports[n - 1]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${kports[n - 1]}"
    [ -z "$KAFKA_ADDRESS" ] || xbootstrap+="${xbootstrap:+,}$KAFKA_ADDRESS:${xports[n - 1]}"
  done

  trap on_up_exit EXIT
  rm -f "$STATE/stack.env"
  if [ "$KEEP_DATA" = 0 ]; then
    rm -rf "$STATE/kafka/data" "$STATE"/kafka-[0-9]* "$STATE/redis"
  fi
  echo "$BROKERS" >"$STATE/kafka.brokers"
  write_tools_log4j
  redis_start

  # Kafka: format each node's KRaft log dir (no-op when kept), then start
  # them. A cluster's nodes in one JVM (stack/kafka/FormatNodes.java), or
  # in parallel without javac.
  local started t0 fpids=() frc=0 classes configs=()
  t0=$(now_ms)
  for (( n = 1; n <= BROKERS; n++ )); do
    write_kafka_config "$n" "${kports[n - 1]}" "${cports[n - 1]}" "$voters" "${xports[n - 1]:-}"
    : >"$(node_log "$n")"
    : >"$(node_out "$n")"
    configs+=("$(node_dir "$n")/server.properties")
  done
  if [ "$BROKERS" -gt 1 ] && classes=$(topic_tool_classes); then
    java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
      -cp "$classes:$LIBS/*" FormatNodes "$CLUSTER_ID" "${configs[@]}" >>"$(node_log 1)" 2>&1 || frc=1
  else
    for (( n = 1; n <= BROKERS; n++ )); do
      java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
        -cp "$LIBS/*" kafka.tools.StorageTool format --ignore-formatted \
        -t "$CLUSTER_ID" -c "$(node_dir "$n")/server.properties" >>"$(node_log "$n")" 2>&1 &
      fpids+=($!)
    done
    for p in "${fpids[@]}"; do wait "$p" || frc=1; done
  fi
  if [ "$frc" != 0 ]; then
    for (( n = 1; n <= BROKERS; n++ )); do tail -n 20 "$(node_log "$n")" >&2; done
    die "kafka storage format failed (log: $(node_log 1))"
  fi
  if [ "$BROKERS" = 1 ]; then
    say "kafka: formatted $STATE/kafka/data in $(secs_since "$t0") s"
  else
    say "kafka: formatted $BROKERS nodes' data ($STATE/kafka-N/data) in $(secs_since "$t0") s"
  fi

  started=$(now_ms)
  for (( n = 1; n <= BROKERS; n++ )); do
    launch_node "$n"
    STARTED_PIDS+=("$(node_pidfile "$n"):kafka.Kafka")
    if [ "$BROKERS" = 1 ]; then
      say "kafka: starting on 127.0.0.1:$KAFKA_PORT${KAFKA_ADDRESS:+ and $KAFKA_ADDRESS:${xports[0]}}, controller 127.0.0.1:${cports[0]} (pid $LAUNCHED_PID, log $STATE/kafka.log)"
    else
      say "kafka: node $n starting on 127.0.0.1:${kports[n - 1]}${KAFKA_ADDRESS:+ and $KAFKA_ADDRESS:${xports[n - 1]}}, controller 127.0.0.1:${cports[n - 1]} (pid $LAUNCHED_PID, log $(node_log "$n"))"
    fi
  done
  REGISTRY_URL=
  [ "$REGISTRY" = 0 ] || start_registry # starts beside the broker, waited for after it

  # Readiness. Redis first: it is up long before Kafka.
  redis_wait

  # Kafka is ready when the metadata lists every broker.
  deadline=$(( $(date +%s) + KAFKA_READY_TIMEOUT_S ))
  until kcat -b "$bootstrap" -L -t __none -m 2 2>/dev/null | grep -q " $BROKERS brokers:"; do
    for (( n = 1; n <= BROKERS; n++ )); do
      if ! pid_is "$(read_pid "$(node_pidfile "$n")")" kafka.Kafka; then
        tail -n 30 "$(node_log "$n")" "$(node_out "$n")" >&2
        if [ "$BROKERS" = 1 ]; then die "kafka exited during start-up (log: $STATE/kafka.log)"; fi
        die "kafka node $n exited during start-up (log: $(node_log "$n"))"
      fi
    done
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$(node_log 1)" >&2
      die "kafka not ready on $bootstrap after ${KAFKA_READY_TIMEOUT_S}s (log: $(node_log 1))"
    fi
    sleep 0.25
  done
  if [ "$BROKERS" = 1 ]; then
    say "kafka: ready in $(secs_since "$started") s"
  else
    say "kafka: $BROKERS brokers in the metadata in $(secs_since "$started") s"
  fi
  [ "$REGISTRY" = 0 ] || wait_registry

  {
    cat <<EOF
KAFKA_BOOTSTRAP=$bootstrap
PRESENCE_TOPIC_PREFIX=$PREFIX
KAFKA_PARTITIONS=$PARTITIONS
KAFKA_CONTROLLER_PORT=${cports[0]}
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
        "$n" "${kports[n - 1]}" "$n" "${cports[n - 1]}" "$n" "$(node_dir "$n")"
    done
    redis_env
  } >"$STATE/stack.env"
  create_topics "$bootstrap" "$PARTITIONS" "$PREFIX" "$RF" "$MIN_ISR"
  warm_coordinators "$bootstrap" "$PREFIX"
  if [ "$BROKERS" -gt 1 ]; then
    wait_full_isr "$bootstrap" __consumer_offsets __transaction_state
  fi
  trap - EXIT
  say "up: env in $STATE/stack.env (source it, or: stack.sh env --state $STATE)"
}

# --- node commands ----------------------------------------------------------

# The layout of the stack in STATE, for the commands that act on a running one.
load_layout() {
  BROKERS=$(stack_brokers)
  [ "$NODE" -le "$BROKERS" ] || die "no node $NODE: the stack in $STATE has $BROKERS broker$([ "$BROKERS" = 1 ] || echo s) (1..$BROKERS)"
  [ -f "$(node_dir "$NODE")/server.properties" ] || die "no node $NODE in $STATE ($(node_dir "$NODE")/server.properties missing): run stack.sh up first"
}

cmd_kill_node() {
  NODE_ARG=kill-node
  parse_opts "$@"
  load_layout
  local pidfile pid t0
  pidfile=$(node_pidfile "$NODE")
  pid=$(read_pid "$pidfile")
  pid_is "$pid" kafka.Kafka || die "kafka node $NODE is not running (pid file $pidfile)"
  t0=$(now_ms)
  kill -"$SIGNAL" "$pid" 2>/dev/null || true
  local deadline=$(( $(date +%s) + 60 ))
  while pid_is "$pid" kafka.Kafka && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
  if pid_is "$pid" kafka.Kafka; then
    say "kafka node $NODE (pid $pid) ignored SIGTERM for 60 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while pid_is "$pid" kafka.Kafka; do sleep 0.05; done
  fi
  rm -f "$pidfile"
  say "kafka: node $NODE (pid $pid) stopped by SIG$SIGNAL in $(secs_since "$t0") s (signalled at $t0 ms since the epoch)"
}

cmd_start_node() {
  NODE_ARG=start-node
  parse_opts "$@"
  need_jars
  load_layout
  load_env
  local pid port t0 deadline
  pid=$(read_pid "$(node_pidfile "$NODE")")
  ! pid_is "$pid" kafka.Kafka || die "kafka node $NODE already runs (pid $pid)"
  port=$(node_port "$NODE")
  [ -n "$port" ] || die "no port for node $NODE in $(node_dir "$NODE")/server.properties"
  ! port_taken "$port" || die "port $port of node $NODE is taken by another program"
  t0=$(now_ms)
  launch_node "$NODE"
  say "kafka: node $NODE starting on 127.0.0.1:$port (pid $LAUNCHED_PID, log $(node_log "$NODE"))"
  # Ready when the node itself lists itself among the brokers: it has
  # registered with the controllers, caught up the metadata and is unfenced.
  deadline=$(( $(date +%s) + KAFKA_READY_TIMEOUT_S ))
  until kcat -b "127.0.0.1:$port" -L -t __none -m 2 2>/dev/null | grep -q "broker $NODE at "; do
    if ! pid_is "$LAUNCHED_PID" kafka.Kafka; then
      tail -n 30 "$(node_log "$NODE")" "$(node_out "$NODE")" >&2
      die "kafka node $NODE exited during start-up (log: $(node_log "$NODE"))"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$(node_log "$NODE")" >&2
      die "kafka node $NODE not in the metadata after ${KAFKA_READY_TIMEOUT_S}s (a cluster needs a majority of its nodes up; log: $(node_log "$NODE"))"
    fi
    sleep 0.1
  done
  say "kafka: node $NODE back in the metadata in $(secs_since "$t0") s"
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
  local kpid rc=0 ports= n
  BROKERS=$(stack_brokers)
  if [ -f "$STATE/stack.env" ]; then
    # shellcheck disable=SC1091
    . "$STATE/stack.env"
    ports=1
  fi
  if [ "$BROKERS" = 1 ]; then
    kpid=$(read_pid "$STATE/kafka.pid")
    if pid_is "$kpid" kafka.Kafka; then
      say "kafka: running, pid $kpid${ports:+, $KAFKA_BOOTSTRAP (controller port $KAFKA_CONTROLLER_PORT)}, log $STATE/kafka.log"
    else
      say "kafka: not running"; rc=3
    fi
  else
    for (( n = 1; n <= BROKERS; n++ )); do
      kpid=$(read_pid "$(node_pidfile "$n")")
      if pid_is "$kpid" kafka.Kafka; then
        say "kafka node $n: running, pid $kpid, 127.0.0.1:$(node_port "$n"), log $(node_log "$n")"
      else
        say "kafka node $n: not running (127.0.0.1:$(node_port "$n"))"; rc=3
      fi
    done
  fi
  redis_status || rc=3
  local gpid
  gpid=$(read_pid "$STATE/registry.pid")
  if pid_is "$gpid" quarkus-run.jar; then
    say "registry: running, pid $gpid${ports:+, ${REGISTRY_URL:-}}, log $STATE/registry.log"
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
