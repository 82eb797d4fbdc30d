#!/usr/bin/env bash
# scripts/setup.sh - prepare a fresh Debian 12 machine to build and test presence.
#
# 1. Installs the Debian packages the build, the tests and the local stack
#    need. It asks dpkg first and runs apt-get (update + install) only when
#    something is missing, so a warm run is fast and needs no network.
# 2. Fetches the Apache Kafka 3.9.1 broker jars from Maven Central with
#    stack/kafka/pom.xml into ${PRESENCE_CACHE:-$HOME/.cache/presence}/kafka-3.9.1/libs.
#    A marker file written after a complete copy makes later runs skip it.
#    The fetch runs under a lock (flock on kafka-3.9.1.lock in the cache)
#    into a private temporary dir that is renamed into place when complete,
#    so runs at the same time are safe: one fetches, the others wait for it
#    and then find the cached copy.
# 3. The schema registry of `stack.sh up --registry` (Apicurio Registry
#    3.3.3, its Confluent-compatible API): the built application from Maven
#    Central, unpacked into ${PRESENCE_CACHE}/apicurio-3.3.3 the same way
#    (lock, private dir, marker). It runs on Java 21 or newer: the first one
#    found under /usr/lib/jvm (Debian 12's own is 17; these machines carry a
#    Temurin 25 beside it). And fastavro for Debian's python3 (the Avro
#    library confluent-kafka's registry serializers need; no Debian 12
#    package), installed with pip from the machine's package index.
# 4. The browser tests' tools: Debian's chromium (in the package list), Node
#    (Debian's nodejs + npm only when no node/npm is on the PATH), and
#    `npm ci` in tests/e2e (playwright-core, and React for the hook's test,
#    pinned by package-lock.json)
#    when node_modules is missing or older than the lock file. No browser is
#    ever downloaded by a test tool: the tests drive /usr/bin/chromium.
#
# Idempotent; safe to run again, and to run twice at once. Related:
# scripts/stack.sh (runs the broker and Redis from these jars),
# docs/operations.md (what each step does and how long it takes).
#
# Environment:
#   PRESENCE_CACHE       cache root (default ~/.cache/presence)
#   PX_SETUP_SKIP_APT=1  do not install Debian packages (check only)
#   PX_SETUP_BENCH=1     also the benchmarks' tools (bench/run): gnuplot-nox
#                        for the plots, linux-perf for the profiles
set -euo pipefail

readonly KAFKA_VERSION=3.9.1
readonly APICURIO_VERSION=3.3.3
readonly DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${PRESENCE_CACHE:-$HOME/.cache/presence}
KAFKA_HOME=$CACHE/kafka-$KAFKA_VERSION
LIBS=$KAFKA_HOME/libs
MARKER=$KAFKA_HOME/libs.complete

# Build, unit tests, local stack (Kafka runs on the JDK, fetched by Maven).
PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev libhiredis-dev libavro-dev libwebsockets-dev libwebsockets-evlib-uv libuv1-dev
  libjansson-dev libjwt-dev libcmocka-dev libcurl4-openssl-dev
  python3-avro python3-websockets python3-yaml python3-confluent-kafka python3-requests python3-pip
  kcat redis-server redis-tools redis-sentinel valgrind curl iproute2
  openjdk-17-jdk-headless maven
  chromium
)
if [ "${PX_SETUP_BENCH:-0}" = 1 ]; then
  PACKAGES+=(gnuplot-nox linux-perf)
fi
# Node for the browser client's tests: any node/npm on the PATH will do
# (>= 18); Debian's only when there is none.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  PACKAGES+=(nodejs npm)
fi

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# --- 1. Debian packages --------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  say "packages: all ${#PACKAGES[@]} installed"
elif [ "${PX_SETUP_SKIP_APT:-0}" = 1 ]; then
  die "missing packages (PX_SETUP_SKIP_APT=1): ${missing[*]}"
else
  say "packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # (another apt or setup.sh may hold dpkg's lock: wait for it)
  as_root apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
  as_root apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || die "apt-get install failed for: ${missing[*]}"
  say "packages: done"
fi

# The stack starts redis itself on its own ports; a packaged redis-server
# service left running is harmless, so it is not touched here.

command -v java >/dev/null || die "java not found after install (openjdk-17-jdk-headless)"
command -v mvn >/dev/null || die "mvn not found after install (maven)"

# --- 2. Kafka broker jars ------------------------------------------------
kafka_cached() { [ -f "$MARKER" ] && [ -d "$LIBS" ]; }
njars() { find "$LIBS" -name '*.jar' | wc -l; }
if kafka_cached; then
  say "kafka $KAFKA_VERSION: jars cached in $LIBS ($(njars) jars)"
else
  # One fetch at a time per cache; a run that waited finds the copy the
  # other one made. The lock is released when this script exits.
  mkdir -p "$CACHE"
  LOCK=$CACHE/kafka-$KAFKA_VERSION.lock
  exec 9>>"$LOCK"
  if ! flock -n 9; then
    say "kafka $KAFKA_VERSION: another setup.sh is fetching the jars; waiting for it ($LOCK)"
    flock 9
  fi
  if kafka_cached; then
    say "kafka $KAFKA_VERSION: jars cached in $LIBS by another run ($(njars) jars)"
  else
    say "kafka $KAFKA_VERSION: fetching jars with maven into $LIBS"
    mkdir -p "$KAFKA_HOME"
    # leftovers of an interrupted run (nobody else fetches: we hold the lock)
    rm -rf "$CACHE/.kafka-$KAFKA_VERSION.fetch."* "$LIBS.partial"
    # A private dir, renamed into place once complete, so a half-filled
    # libs/ never looks usable; the pom is copied there so Maven's target/
    # lands there too, not in the source tree.
    tmp=$(mktemp -d "$CACHE/.kafka-$KAFKA_VERSION.fetch.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    cp "$ROOT/stack/kafka/pom.xml" "$tmp/pom.xml"
    log=$KAFKA_HOME/maven.log
    if ! mvn -q -B -f "$tmp/pom.xml" \
          "$DEP_PLUGIN:copy-dependencies" \
          -DincludeScope=runtime -Dmdep.prependGroupId=true \
          -DoutputDirectory="$tmp/libs" >"$tmp/maven.log" 2>&1; then
      cp "$tmp/maven.log" "$log"
      tail -n 30 "$log" >&2
      die "maven could not fetch the Kafka jars (full log: $log)"
    fi
    cp "$tmp/maven.log" "$log"
    for need in 'org.apache.kafka.kafka_2.13-*.jar' 'ch.qos.reload4j.reload4j-*.jar' \
                'org.slf4j.slf4j-reload4j-*.jar'; do
      compgen -G "$tmp/libs/$need" >/dev/null || die "jar $need missing after maven copy (log: $log)"
    done
    rm -rf "$LIBS" "$MARKER" # an incomplete copy (no marker), under the lock
    mv "$tmp/libs" "$LIBS"
    printf 'kafka %s fetched %s\n' "$KAFKA_VERSION" "$(date -u +%FT%TZ)" >"$tmp/complete"
    mv "$tmp/complete" "$MARKER"
    rm -rf "$tmp"
    trap - EXIT
    say "kafka $KAFKA_VERSION: $(njars) jars in $LIBS"
  fi
  exec 9>&-
fi

# --- 3. Schema registry and fastavro ------------------------------------
REGISTRY_HOME=$CACHE/apicurio-$APICURIO_VERSION
registry_cached() { [ -f "$REGISTRY_HOME/complete" ] && [ -f "$REGISTRY_HOME/app/quarkus-run.jar" ]; }
if registry_cached; then
  say "apicurio $APICURIO_VERSION: cached in $REGISTRY_HOME"
else
  mkdir -p "$CACHE"
  exec 6>>"$CACHE/apicurio-$APICURIO_VERSION.lock"
  flock -n 6 || { say "apicurio: another setup.sh is fetching it; waiting"; flock 6; }
  if ! registry_cached; then
    say "apicurio $APICURIO_VERSION: fetching with maven into $REGISTRY_HOME"
    rm -rf "$CACHE/.apicurio-$APICURIO_VERSION.fetch."*
    rtmp=$(mktemp -d "$CACHE/.apicurio-$APICURIO_VERSION.fetch.XXXXXX")
    trap 'rm -rf "$rtmp"' EXIT
    # copy, not get: the archive alone (get would resolve the application's
    # own dependencies, some from repositories these machines do not reach)
    if ! mvn -q -B "$DEP_PLUGIN:copy" \
          -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
          -DoutputDirectory="$rtmp" >"$rtmp/maven.log" 2>&1; then
      tail -n 30 "$rtmp/maven.log" >&2
      die "maven could not fetch io.apicurio:apicurio-registry-app:$APICURIO_VERSION (tar.gz, all)"
    fi
    mkdir "$rtmp/app"
    tar -xzf "$rtmp"/apicurio-registry-app-*.tar.gz -C "$rtmp/app" || die "cannot unpack the Apicurio archive"
    [ -f "$rtmp/app/quarkus-run.jar" ] || die "no quarkus-run.jar in the Apicurio archive"
    rm -rf "$REGISTRY_HOME"
    mkdir -p "$REGISTRY_HOME"
    mv "$rtmp/app" "$REGISTRY_HOME/app"
    date -u +%FT%TZ >"$REGISTRY_HOME/complete"
    rm -rf "$rtmp"
    trap - EXIT
    say "apicurio $APICURIO_VERSION: unpacked in $REGISTRY_HOME"
  fi
  exec 6>&-
fi
java21=$(bash "$ROOT/scripts/stack.sh" java21 2>/dev/null) ||
  die "the schema registry needs Java 21 or newer and none was found under /usr/lib/jvm (Debian 12 has 17)"
say "apicurio: runs on $java21"

if /usr/bin/python3 -c 'import fastavro' 2>/dev/null; then
  say "fastavro: importable by /usr/bin/python3"
else
  exec 5>>"$CACHE/fastavro.lock"
  flock 5
  if ! /usr/bin/python3 -c 'import fastavro' 2>/dev/null; then
    say "fastavro: installing with pip for /usr/bin/python3"
    as_root /usr/bin/python3 -m pip install -q --retries 1 --timeout 20 --break-system-packages \
      --no-warn-script-location fastavro \
      || die "pip could not install fastavro (confluent-kafka's Avro serializers need it)"
  fi
  exec 5>&-
  /usr/bin/python3 -c 'import fastavro' || die "fastavro still not importable after pip install"
fi

# --- 4. Node packages of the browser tests --------------------------------
command -v chromium >/dev/null || die "chromium not found after install"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
[ "$node_major" -ge 18 ] || die "node >= 18 needed for the browser tests (found $(node --version 2>&1))"
E2E=$ROOT/tests/e2e
stamp=$E2E/node_modules/.package-lock.json   # npm writes it on every install
e2e_current() {
  [ -f "$stamp" ] && [ "$stamp" -nt "$E2E/package-lock.json" ] && [ -d "$E2E/node_modules/playwright-core" ] &&
    [ -d "$E2E/node_modules/react-test-renderer" ]
}
# Two runs in one clone would run npm ci in the same dir at once: the lock
# file (read-only, never written by npm ci) serialises them.
exec 7<"$E2E/package-lock.json"
if ! flock -n 7; then
  say "npm: another setup.sh is installing tests/e2e/node_modules; waiting for it"
  flock 7
fi
if e2e_current; then
  say "npm: tests/e2e/node_modules up to date"
else
  say "npm: npm ci in tests/e2e"
  # PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core has no install step,
  # this only makes sure nothing ever tries.
  (cd "$E2E" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
    || die "npm ci failed in tests/e2e"
  touch "$stamp"
fi
exec 7<&-

say "ok"
