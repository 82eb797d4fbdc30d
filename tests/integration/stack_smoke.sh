#!/usr/bin/env bash
# tests/integration/stack_smoke.sh - proves the shared test stack works before
# anything else blames the code: creates the presence topics under a unique
# prefix, produces one keyed record with kcat and consumes it back (key and
# payload must match byte for byte), and round-trips a value through Redis.
set -euo pipefail
PX_TEST_NAME=stack_smoke
# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

px_stack_env
prefix=$(px_unique_prefix smoke)
topic=${prefix}presence.heartbeats

px_wait_port "${KAFKA_BOOTSTRAP##*:}" 10 || px_fail "kafka port closed: $KAFKA_BOOTSTRAP"
px_wait_port "$REDIS_PORT" 10 || px_fail "redis port closed: $REDIS_PORT"

# Kafka: create, produce one record, read it back.
px_create_topics "$prefix" || px_fail "could not create topics with prefix $prefix"
# The broker's metadata may lag the creation by a moment on a busy machine
# (seen in a full run): ask again for up to 10 s before calling it missing.
for _ in $(seq 1 20); do
  kcat -b "$KAFKA_BOOTSTRAP" -L -t "$topic" | grep -q "topic \"$topic\" with $KAFKA_PARTITIONS partitions" && break
  sleep 0.5
done
kcat -b "$KAFKA_BOOTSTRAP" -L -t "$topic" | grep -q "topic \"$topic\" with $KAFKA_PARTITIONS partitions" ||
  px_fail "topic $topic missing or without $KAFKA_PARTITIONS partitions"

key="acme:invoice:$$"
payload="smoke $(date +%s%N) {\"type\":\"HB\",\"x\":\"é\"}"
printf '%s\t%s' "$key" "$payload" |
  kcat -P -b "$KAFKA_BOOTSTRAP" -t "$topic" -K $'\t' -X acks=all -X partitioner=murmur2_random ||
  px_fail "kcat could not produce to $topic"
got=$(timeout 30 kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -c 1 -e -q -f '%k\t%s') ||
  px_fail "kcat could not consume from $topic"
[ "$got" = "$key"$'\t'"$payload" ] || px_fail "round trip mismatch: sent [$key/$payload], got [$got]"
px_log "kafka round trip ok on $topic"

# Redis: PING, then SET/GET/DEL a key under the same prefix.
[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping)" = PONG ] || px_fail "redis PING did not answer PONG"
rkey="${prefix}smoke"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" set "$rkey" "$payload" >/dev/null
[ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" get "$rkey")" = "$payload" ] || px_fail "redis GET mismatch"
redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" del "$rkey" >/dev/null
px_log "redis round trip ok on $REDIS_HOST:$REDIS_PORT"
echo "stack_smoke: ok"
