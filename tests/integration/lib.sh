# shellcheck shell=bash
# tests/integration/lib.sh - shell helpers for integration tests. Source it:
#
#   . "$PX_SOURCE_DIR/tests/integration/lib.sh"
#   px_stack_env          # exports KAFKA_BOOTSTRAP, REDIS_HOST, REDIS_PORT, ...
#
# The tests run against the one stack the ctest fixture `stack` started
# (scripts/stack.sh up --state $PX_STACK_DIR); ctest sets PX_STACK_DIR,
# PX_BUILD_DIR and PX_SOURCE_DIR (tests/integration/CMakeLists.txt). Tests share
# that stack, so each one uses its own topic and key prefix (px_unique_prefix).
# Bash only; the helpers return non-zero or exit via px_fail, never skip.

# Prints a failure message naming the test and exits 1.
px_fail() {
  printf 'FAIL %s: %s\n' "${PX_TEST_NAME:-$(basename "$0")}" "$*" >&2
  exit 1
}

px_log() { printf '%s: %s\n' "${PX_TEST_NAME:-$(basename "$0")}" "$*" >&2; }

# Exports the variables of $PX_STACK_DIR/stack.env (KAFKA_BOOTSTRAP,
# REDIS_HOST, REDIS_PORT, PRESENCE_TOPIC_PREFIX, KAFKA_PARTITIONS,
# PRESENCE_KAFKA_BOOTSTRAP_SERVERS, PRESENCE_REDIS_HOST, PRESENCE_REDIS_PORT).
# Fails loudly when the stack is not up: a missing stack is a failure, not a skip.
px_stack_env() {
  [ -n "${PX_STACK_DIR:-}" ] || px_fail "PX_STACK_DIR is not set (run through ctest, or export it)"
  [ -f "$PX_STACK_DIR/stack.env" ] ||
    px_fail "no stack.env in $PX_STACK_DIR: is the stack up? (scripts/stack.sh up --state $PX_STACK_DIR)"
  set -a
  # shellcheck disable=SC1091
  . "$PX_STACK_DIR/stack.env"
  set +a
}

# px_wait_port PORT [TIMEOUT_S=30] [HOST=127.0.0.1]
# Waits until HOST:PORT accepts a TCP connection. Returns 1 on timeout.
px_wait_port() {
  local port=$1 timeout=${2:-30} host=${3:-127.0.0.1} deadline
  deadline=$(( $(date +%s) + timeout ))
  until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { px_log "port $host:$port not open after ${timeout}s"; return 1; }
    sleep 0.1
  done
}

# Prints a free TCP port on 127.0.0.1 (the kernel's pick; free when printed).
px_free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# px_unique_prefix NAME -> "it.NAME.<pid>.<random>." : a topic/key prefix no
# other test (or earlier run against the same stack) uses.
px_unique_prefix() {
  printf 'it.%s.%s.%s.' "$1" "$$" "$RANDOM$RANDOM"
}

# px_create_topics PREFIX [PARTITIONS]: creates the presence topics with
# PREFIX on the shared stack (partitions default to the stack's).
px_create_topics() {
  bash "$PX_SOURCE_DIR/scripts/stack.sh" topics --state "$PX_STACK_DIR" --prefix "$1" \
    ${2:+--partitions "$2"} >&2
}
