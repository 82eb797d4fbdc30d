# bench/lib.sh - helpers shared by the bench/run_*.sh scripts (sourced).
#
# Profiles: when PX_BENCH_PERF names a directory, a script calls
# px_perf_start NAME PID around its measured phase and px_perf_stop after
# it; the samples (perf record, flat, 499 Hz, user and kernel) become
# NAME.perf.txt in that directory (`perf report` by library and symbol,
# self time, entries of 0.5% and more) and NAME.dso.txt (by library). bench/report.py turns them into the profile
# tables of docs/benchmarks.md. Without PX_BENCH_PERF, or without perf on
# the PATH, both are no-ops (the latter said once on stderr).

PX_PERF_PIDS=()
PX_PERF_NAMES=()

px_perf_start() { # NAME PID
  [ -n "${PX_BENCH_PERF:-}" ] || return 0
  if ! command -v perf >/dev/null; then
    echo "bench: perf not found (apt-get install linux-perf): no profile of $1" >&2
    return 0
  fi
  mkdir -p "$PX_BENCH_PERF"
  perf record -F 499 ${PX_BENCH_PERF_ARGS:-} -p "$2" -o "$PX_BENCH_PERF/$1.perf.data" >"$PX_BENCH_PERF/$1.perf.log" 2>&1 &
  PX_PERF_PIDS+=($!)
  PX_PERF_NAMES+=("$1")
}

px_perf_stop() {
  local i
  for i in "${!PX_PERF_PIDS[@]}"; do
    kill -INT "${PX_PERF_PIDS[$i]}" 2>/dev/null || true
    wait "${PX_PERF_PIDS[$i]}" 2>/dev/null || true
    local name=${PX_PERF_NAMES[$i]}
    perf report -i "$PX_BENCH_PERF/$name.perf.data" --no-children --stdio --sort dso,symbol \
      --percent-limit 0.5 2>/dev/null >"$PX_BENCH_PERF/$name.perf.txt" || true
    perf report -i "$PX_BENCH_PERF/$name.perf.data" --no-children --stdio --sort dso \
      2>/dev/null >"$PX_BENCH_PERF/$name.dso.txt" || true
    [ -n "${PX_BENCH_PERF_KEEP:-}" ] || rm -f "$PX_BENCH_PERF/$name.perf.data" "$PX_BENCH_PERF/$name.perf.data.old"
  done
  PX_PERF_PIDS=()
  PX_PERF_NAMES=()
}

# The machine, in one line, for every script's output.
px_machine() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r); Kafka 3.9.1 and Redis $(redis-server --version | grep -o 'v=[0-9.]*' | cut -d= -f2) on the same machine"
}

# Quantiles of a Prometheus histogram read from stdin (a /metrics page):
#   px_hist_quantiles NAME [LABEL]   e.g. presence_processor_record_age_ms 'topic="locks"'
# prints "n=N p50=X p90=X p99=X" in the histogram's unit, each the upper
# bound of the bucket holding that quantile (an over-estimate by at most
# one bucket; "inf" past the last bound).
px_hist_quantiles() {
  awk -v name="$1" -v label="${2:-}" '
    index($0, name "_bucket{") == 1 && (label == "" || index($0, label) > 0) {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = (le == "+Inf" ? "inf" : le); cum[n] = $NF
    }
    END {
      if (!n || cum[n] == 0) { print "n=0"; exit }
      split("50 90 99", qs, " "); out = "n=" cum[n]
      for (q = 1; q <= 3; q++) {
        want = cum[n] * qs[q] / 100
        for (i = 1; i <= n; i++) if (cum[i] >= want) break
        out = out " p" qs[q] "=" bound[i]
      }
      print out
    }'
}
