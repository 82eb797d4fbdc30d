#!/usr/bin/env bash
# Build everything and run every test, as CI does:
#   1. scripts/setup.sh installs what is missing (Debian packages, Kafka jars);
#   2. build/test: -Werror, ASan + UBSan; runs every ctest (unit, integration,
#      e2e, eos) against a real Kafka broker and Redis the fixture starts;
#   3. build/valgrind: -Werror, plain; runs the unit tests under valgrind.
# A skipped or not-run test fails the run. Usage: scripts/test.sh [ctest args]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)

bash scripts/setup.sh

jobs=$(nproc)
echo "== build (ASan + UBSan, -Werror)"
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=Debug -DPX_SANITIZE=ON -DPX_WERROR=ON >/dev/null
cmake --build build/test -j"$jobs"

echo "== build (valgrind, -Werror)"
cmake -S . -B build/valgrind -DCMAKE_BUILD_TYPE=Debug -DPX_VALGRIND=ON -DPX_WERROR=ON >/dev/null
cmake --build build/valgrind -j"$jobs"

status=0
run_ctest() { # dir, log, args...
    local dir=$1 log=$2
    shift 2
    set +e
    (cd "$dir" && ctest --output-on-failure --no-tests=error "$@") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    set -e
    if grep -Eq '\*\*\*(Skipped|Not Run)|Not Run$' "$log"; then
        echo "FAIL: a test was skipped or not run (CI treats that as a failure)"
        rc=1
    fi
    [ "$rc" -eq 0 ] || status=1
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# LeakSanitizer: known one-time allocations inside system libraries
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}

echo "== unit tests under valgrind"
run_ctest build/valgrind build/valgrind/ctest.log -L valgrind "$@"
echo "== all tests (ASan + UBSan)"
run_ctest build/test build/test/ctest.log "$@"

echo "== test suite took $(( $(date +%s) - start ))s; status $([ $status -eq 0 ] && echo PASS || echo FAIL)"
exit $status
