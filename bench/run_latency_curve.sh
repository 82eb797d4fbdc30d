#!/usr/bin/env bash
# bench/run_latency_curve.sh [CONNS] [DURATION_S] [RATES...] - LOCK -> LOCK_ACK
# latency against the LOCK rate (docs/benchmarks.md, "Latency against
# rate"): bench/run_gateway.sh once per rate (its own private Kafka + Redis,
# processor and gateway; the Socket.IO baseline with PX_BENCH_SOCKETIO=1),
# then a table (bench-out/latency-curve.tsv) and a plot of p50/p90/p99
# against the client message rate (docs/img/bench-latency-curve.png, with
# gnuplot from Debian's gnuplot-nox, installed when missing).
#
# Defaults: 1000 connections, 15 s per rate, rates 100 250 500 1000 2000
# 3000 LOCKs/s (each LOCK is followed by its UNLOCK: twice as many client
# messages). Not a test: a measurement; several minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONNS=${1:-1000}
DURATION=${2:-15}
shift $(( $# > 2 ? 2 : $# ))
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(100 250 500 1000 2000 3000)
OUT=$ROOT/bench-out
mkdir -p "$OUT" "$ROOT/docs/img"
command -v gnuplot >/dev/null || {
  [ "$(id -u)" -eq 0 ] || { echo "gnuplot missing: apt-get install gnuplot-nox" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gnuplot-nox >/dev/null
}

tsv=$OUT/latency-curve.tsv
printf 'lock_rate_asked\tclient_msgs_per_s\tp50_ms\tp90_ms\tp99_ms\tp999_ms\tload1\n' >"$tsv"
for r in "${RATES[@]}"; do
  log=$OUT/latency-curve-$r.log
  load=$(cut -d' ' -f1 /proc/loadavg)
  PX_BENCH_SOCKETIO=${PX_BENCH_SOCKETIO:-0} bash "$ROOT/bench/run_gateway.sh" "$CONNS" "$r" "$DURATION" >"$log" 2>&1
  # the first lock_ack line is the presence system's (the baseline's, if run, comes after)
  ack=$(grep -m1 '^lock_ack_ms:' "$log")
  msgs=$(grep -m1 '^locks:' "$log" | grep -o 'client_msgs=[0-9]*' | cut -d= -f2)
  val() { printf '%s\n' "$ack" | grep -o "$1=[0-9.]*" | cut -d= -f2; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$msgs" "$(val p50)" "$(val p90)" "$(val p99)" "$(val p999)" "$load" >>"$tsv"
  echo "rate $r: $ack (client msgs/s $msgs, load before $load)"
done

plot_curve() {
gnuplot <<EOF
set terminal pngcairo size 900,520 font "sans,11" noenhanced
set output "$ROOT/docs/img/bench-latency-curve.png"
set title "LOCK -> LOCK_ACK through Kafka and the processor ($CONNS connections, $(nproc) cores, $(date -u +%F))"
set xlabel "client messages/s (LOCK + UNLOCK)"
set ylabel "latency (ms)"
set logscale y
set grid
set key top left
plot "$tsv" using 2:3 skip 1 with linespoints title "p50", \
     "$tsv" using 2:4 skip 1 with linespoints title "p90", \
     "$tsv" using 2:5 skip 1 with linespoints title "p99"
EOF
}
plot_curve
column -t "$tsv"
echo "plot: docs/img/bench-latency-curve.png"
