#!/usr/bin/env bash
# scripts/stack.sh - a local Kafka (KRaft, single node) + Redis for development
# and the integration tests, without Docker.
#
#   stack.sh up     [--state DIR] [--kafka-port N] [--redis-port N]
#                   [--partitions N] [--prefix P] [--keep-data] [--registry]
#   stack.sh down   [--state DIR]
#   stack.sh status [--state DIR]
#   stack.sh env    [--state DIR]
#   stack.sh topics [--state DIR] [--partitions N] [--prefix P] [--bootstrap HOST:PORT]
#   stack.sh java21                 (the Java the registry runs on)
#
# --registry also runs a Confluent-compatible schema registry (Apicurio
# Registry from the cache scripts/setup.sh fills, in memory, compatibility
# BACKWARD) and writes its URL to stack.env as REGISTRY_URL.
#
# Kafka 3.9.1 runs from the jars scripts/setup.sh fetched into
# ${PRESENCE_CACHE:-~/.cache/presence}/kafka-3.9.1/libs, on the local JDK.
# Ports are free ones picked at start unless given, so several stacks (one per
# state dir) run side by side. Everything a stack owns lives in its state dir
# (default <repo>/.state/stack): configs, data, logs, pid files and stack.env.
# Limits: loopback only, one broker, replication factor 1, no auth (the
# registry too: in memory, lost at down). The
# compose/ files are the containerised equivalent. See docs/operations.md.
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
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }
case $KAFKA_REQUEST_LOG in
  TRACE | DEBUG | INFO | WARN | ERROR) ;;
  *) die "PX_KAFKA_REQUEST_LOG must be TRACE, DEBUG, INFO, WARN or ERROR, not '$KAFKA_REQUEST_LOG'" ;;
esac

usage() {
  sed -n '4,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

# --- options ---------------------------------------------------------------
STATE=$ROOT/.state/stack
KAFKA_PORT=
REDIS_PORT=
PARTITIONS=
PREFIX=
BOOTSTRAP=
KEEP_DATA=0
REGISTRY=0

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
      -h|--help) usage 0 ;;
      *) die "unknown option: $1 (see stack.sh --help)" ;;
    esac
  done
  for v in "$KAFKA_PORT" "$REDIS_PORT" "$PARTITIONS"; do
    [ -z "$v" ] || [[ $v =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $v"
  done
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

# Compiles stack/kafka/CreateTopics.java once per source version into the
# cache, so each later call costs one plain JVM start.
topic_tool_classes() {
  local src=$ROOT/stack/kafka/CreateTopics.java sum dir
  sum=$(sha256sum "$src" | cut -c1-16)
  dir=$CACHE/kafka-$KAFKA_VERSION/tools-$sum
  if [ ! -f "$dir/CreateTopics.class" ]; then
    command -v javac >/dev/null || return 1
    mkdir -p "$dir.tmp.$$"
    javac -nowarn -d "$dir.tmp.$$" -cp "$LIBS/*" "$src" >&2 || { rm -rf "$dir.tmp.$$"; return 1; }
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
# replication factor 1; existing topics are left alone.
create_topics() {
  local bootstrap=$1 partitions=$2 prefix=$3 t names=() started classes
  for t in "${INPUT_TOPICS[@]}"; do names+=("$prefix$t" "$prefix$t.retry" "$prefix$t.dlt"); done
  for t in "${OUTPUT_TOPICS[@]}"; do names+=("$prefix$t"); done
  started=$(now_ms)
  if classes=$(topic_tool_classes); then
    # One JVM, one CreateTopics request for all of them (AdminClient).
    java -Xmx128m -XX:TieredStopAtLevel=1 -Xshare:auto \
      -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
      -cp "$classes:$LIBS/*" CreateTopics "$bootstrap" "$partitions" "${names[@]}" ||
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
        --replication-factor 1 --config cleanup.policy=delete --config retention.ms="$retention" >/dev/null &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    [ "$rc" -eq 0 ] || die "topic creation failed on $bootstrap"
  fi
  say "topics: ${#names[@]} topics (${partitions} partitions, prefix '${prefix}') ready in $(secs_since "$started") s"
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
  [ -f "$STATE/tools-log4j.properties" ] || write_tools_log4j
  create_topics "$BOOTSTRAP" "$PARTITIONS" "$PREFIX"
}

# --- up --------------------------------------------------------------------

write_kafka_config() {
  local kport=$1 cport=$2 dir=$STATE/kafka
  mkdir -p "$dir"
  cat >"$dir/server.properties" <<EOF
# Generated by scripts/stack.sh: single-node KRaft broker+controller on loopback.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$kport,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$kport
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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
  cat >"$dir/log4j.properties" <<EOF
# Generated by scripts/stack.sh: the broker logs to $STATE/kafka.log.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$STATE/kafka.log
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

cmd_up() {
  parse_opts "$@"
  need_jars
  PARTITIONS=${PARTITIONS:-6}

  local kpid rpid
  kpid=$(read_pid "$STATE/kafka.pid") rpid=$(read_pid "$STATE/redis.pid")
  if pid_is "$kpid" kafka.Kafka || pid_is "$rpid" redis-server ||
     pid_is "$(read_pid "$STATE/registry.pid")" quarkus-run.jar; then
    die "a stack already runs in $STATE (kafka pid ${kpid:-none}, redis pid ${rpid:-none}): run stack.sh down --state $STATE first"
  fi

  # Ports: given ones must be free; the rest (and the controller's) are picked.
  local p cport picked
  for p in "$KAFKA_PORT" "$REDIS_PORT"; do
    [ -z "$p" ] || ! port_taken "$p" || die "port $p is already in use on 127.0.0.1 (pick another, or omit it to get a free one)"
  done
  read -r -a picked <<<"$(free_ports 3)"
  KAFKA_PORT=${KAFKA_PORT:-${picked[0]}}
  REDIS_PORT=${REDIS_PORT:-${picked[1]}}
  cport=${picked[2]}
  [ "$KAFKA_PORT" != "$REDIS_PORT" ] || die "kafka and redis cannot share port $KAFKA_PORT"
  if [ "$cport" = "$KAFKA_PORT" ] || [ "$cport" = "$REDIS_PORT" ]; then
    read -r -a picked <<<"$(free_ports 3)"
    for p in "${picked[@]}"; do
      [ "$p" = "$KAFKA_PORT" ] || [ "$p" = "$REDIS_PORT" ] || { cport=$p; break; }
    done
  fi

  trap on_up_exit EXIT
  rm -f "$STATE/stack.env"
  if [ "$KEEP_DATA" = 0 ]; then
    rm -rf "$STATE/kafka/data" "$STATE/redis"
  fi
  mkdir -p "$STATE/redis"
  : >"$STATE/kafka.log"
  : >"$STATE/redis.log"
  write_tools_log4j

  # Redis: no persistence, loopback only, in the background of its own
  # session; also on a Unix socket in the state dir (REDIS_SOCKET in
  # stack.env, for redis.host=<path>: docs/configuration.md) unless the
  # path is too long for a socket address.
  local sock_args=() sock=$STATE/redis.sock
  rm -f "$sock"
  if [ ${#sock} -lt 104 ]; then
    sock_args=(--unixsocket "$sock" --unixsocketperm 700)
  else
    say "redis: no Unix socket ($sock is over 103 bytes); TCP only"
    sock=
  fi
  setsid redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize no --dir "$STATE/redis" --logfile "$STATE/redis.log" "${sock_args[@]}" \
    </dev/null >"$STATE/redis.out" 2>&1 &
  echo $! >"$STATE/redis.pid"
  STARTED_PIDS+=("$STATE/redis.pid:redis-server")
  say "redis: starting on 127.0.0.1:$REDIS_PORT (pid $!, log $STATE/redis.log)"

  # Kafka: format the KRaft log dir (no-op when kept), then start the broker.
  write_kafka_config "$KAFKA_PORT" "$cport"
  local started t0
  t0=$(now_ms)
  java -Xmx256m -XX:TieredStopAtLevel=1 -Dlog4j.configuration=file:"$STATE/tools-log4j.properties" \
    -cp "$LIBS/*" kafka.tools.StorageTool format --ignore-formatted \
    -t "$CLUSTER_ID" -c "$STATE/kafka/server.properties" >>"$STATE/kafka.log" 2>&1 ||
    { tail -n 20 "$STATE/kafka.log" >&2; die "kafka storage format failed (log: $STATE/kafka.log)"; }
  say "kafka: formatted $STATE/kafka/data in $(secs_since "$t0") s"

  started=$(now_ms)
  setsid java "${KAFKA_JAVA_OPTS[@]}" \
    -Dlog4j.configuration=file:"$STATE/kafka/log4j.properties" -Dkafka.logs.dir="$STATE" \
    -cp "$LIBS/*" kafka.Kafka "$STATE/kafka/server.properties" \
    </dev/null >"$STATE/kafka.out" 2>&1 &
  echo $! >"$STATE/kafka.pid"
  kpid=$!
  STARTED_PIDS+=("$STATE/kafka.pid:kafka.Kafka")
  say "kafka: starting on 127.0.0.1:$KAFKA_PORT, controller 127.0.0.1:$cport (pid $kpid, log $STATE/kafka.log)"
  REGISTRY_URL=
  [ "$REGISTRY" = 0 ] || start_registry # starts beside the broker, waited for after it

  # Readiness. Redis first: it is up long before Kafka.
  local deadline=$(( $(date +%s) + 10 ))
  until [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]; do
    if ! pid_is "$(read_pid "$STATE/redis.pid")" redis-server || [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 20 "$STATE/redis.log" "$STATE/redis.out" >&2
      die "redis did not answer PING on 127.0.0.1:$REDIS_PORT (log: $STATE/redis.log)"
    fi
    sleep 0.1
  done
  say "redis: ready"

  deadline=$(( $(date +%s) + KAFKA_READY_TIMEOUT_S ))
  until kcat -b "127.0.0.1:$KAFKA_PORT" -L -t __none -m 2 2>/dev/null | grep -q ' 1 brokers:'; do
    if ! pid_is "$kpid" kafka.Kafka; then
      tail -n 30 "$STATE/kafka.log" "$STATE/kafka.out" >&2
      die "kafka exited during start-up (log: $STATE/kafka.log)"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      tail -n 30 "$STATE/kafka.log" >&2
      die "kafka not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_READY_TIMEOUT_S}s (log: $STATE/kafka.log)"
    fi
    sleep 0.25
  done
  say "kafka: ready in $(secs_since "$started") s"
  [ "$REGISTRY" = 0 ] || wait_registry

  cat >"$STATE/stack.env" <<EOF
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
REDIS_HOST=127.0.0.1
REDIS_PORT=$REDIS_PORT
REDIS_SOCKET=$sock
PRESENCE_TOPIC_PREFIX=$PREFIX
KAFKA_PARTITIONS=$PARTITIONS
KAFKA_CONTROLLER_PORT=$cport
PRESENCE_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
PRESENCE_REDIS_HOST=127.0.0.1
PRESENCE_REDIS_PORT=$REDIS_PORT
REGISTRY_URL=$REGISTRY_URL
EOF
  create_topics "127.0.0.1:$KAFKA_PORT" "$PARTITIONS" "$PREFIX"
  warm_coordinators "127.0.0.1:$KAFKA_PORT" "$PREFIX"
  trap - EXIT
  say "up: env in $STATE/stack.env (source it, or: stack.sh env --state $STATE)"
}

# --- down / status / env -----------------------------------------------------

cmd_down() {
  parse_opts "$@"
  local any=0
  [ -f "$STATE/kafka.pid" ] || [ -f "$STATE/redis.pid" ] || [ -f "$STATE/registry.pid" ] && any=1
  stop_pids "$STATE/kafka.pid:kafka.Kafka" "$STATE/redis.pid:redis-server" "$STATE/registry.pid:quarkus-run.jar"
  rm -f "$STATE/stack.env"
  if [ "$any" = 1 ]; then say "down: stopped the stack in $STATE"; else say "down: nothing runs in $STATE"; fi
}

cmd_status() {
  parse_opts "$@"
  local kpid rpid rc=0 ports=
  kpid=$(read_pid "$STATE/kafka.pid") rpid=$(read_pid "$STATE/redis.pid")
  if [ -f "$STATE/stack.env" ]; then
    # shellcheck disable=SC1091
    . "$STATE/stack.env"
    ports=1
  fi
  if pid_is "$kpid" kafka.Kafka; then
    say "kafka: running, pid $kpid${ports:+, $KAFKA_BOOTSTRAP (controller port $KAFKA_CONTROLLER_PORT)}, log $STATE/kafka.log"
  else
    say "kafka: not running"; rc=3
  fi
  if pid_is "$rpid" redis-server; then
    say "redis: running, pid $rpid${ports:+, $REDIS_HOST:$REDIS_PORT}, log $STATE/redis.log"
  else
    say "redis: not running"; rc=3
  fi
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
  java21) find_java21 || die "no Java 21 or newer under /usr/lib/jvm" ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown subcommand: $sub (up, down, status, env, topics, java21)" ;;
esac
