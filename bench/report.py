#!/usr/bin/env python3
"""bench/report.py RUN_DIR [--doc FILE] [--img DIR] - docs/benchmarks.md from one bench/run.

Reads only RUN_DIR (the raw output of bench/run: meta.txt, processor.log,
processor-run<N>.tsv, entities-<E>.log, batch-<B>.log, gateway-<name>.log,
idle.log, replay.log, failover.log and brokers.log (bench/report_failover.py),
perf/*.perf.txt), writes the markdown (--doc, default
docs/benchmarks.md) and the PNG plots (--img, default docs/img; gnuplot),
and takes the hand-written readings of each section from bench/notes.md
(sections "## <name>"). Every number in the output comes from RUN_DIR; a
figure the run did not produce is printed as "not measured" with the
reason the raw output gives. The parsers of the raw output are in
bench/report_parse.py, the page, its notes and plots in bench/report_page.py,
section 3 (the gateway) in bench/report_gateway.py and section 5 in
bench/report_failover.py. Standard library only.
"""
import argparse
import glob
import math
import os
import re
import shutil
import sys
import tempfile
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import report_failover  # noqa: E402
from report_gateway import gateway  # noqa: E402
from report_page import T_CONNS, T_MEM, T_P50, T_P99, T_PROC, T_RATE, T_REPLAY, Page, write_dat  # noqa: E402
from report_parse import (  # noqa: E402
    curve, fmt_int, fmt_ms, med, num, parse_gateway, parse_idle, parse_layouts, parse_meta, parse_perf,
    parse_processor, parse_replay, rate_series, ratio, read, spread,
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--doc", default=os.path.join(ROOT, "docs", "benchmarks.md"))
    ap.add_argument("--img", default=os.path.join(ROOT, "docs", "img"))
    a = ap.parse_args()
    d = os.path.abspath(a.run_dir)
    img = os.path.abspath(a.img)
    os.makedirs(img, exist_ok=True)
    pdir = tempfile.mkdtemp(prefix="px-report-")  # the plots' data files; RUN_DIR is only read
    try:
        run_report(a, d, img, pdir)
    finally:
        shutil.rmtree(pdir, ignore_errors=True)


def run_report(a, d, img, pdir):
    """The page's sections in order, written to a.doc."""
    pg = Page(a.doc, img, pdir)
    meta = parse_meta(d)
    inp = inputs(d)
    header(pg, d, meta)
    summary(pg, meta, inp)
    processor(pg, d, meta, inp)
    scaling(pg, meta, inp)
    redis_cluster(pg, d)
    gateway(pg, meta, inp)
    replay(pg, meta, inp)
    report_failover.section(pg.w, read(os.path.join(d, "failover.log")), read(os.path.join(d, "brokers.log")))
    pg.note("failover")
    profiles(pg, d)
    pg.w("")

    with open(a.doc, "w") as f:
        f.write("\n".join(pg.lines))
    print(f"report: wrote {a.doc}")


def inputs(d):
    """The parsed raw output the sections share."""
    runs, naive, rb = parse_processor(read(os.path.join(d, "processor.log")))
    p_rates = [runs[k]["rate"] for k in sorted(runs)]
    p_med, n_med, rb_med = med(p_rates), med(naive.values()), med(rb.values())
    ent, bat, dfr = (curve(d, name) for name in ("entities", "batch", "defer"))
    gws = {}
    for f in glob.glob(os.path.join(d, "gateway-*.log")):
        gws[re.search(r"gateway-(.+)\.log", f).group(1)] = parse_gateway(read(f))
    rp = parse_replay(read(os.path.join(d, "replay.log")))
    idle = parse_idle(read(os.path.join(d, "idle.log")))

    mem_pts = {}  # conns -> gateway result
    for name, g in gws.items():
        m = re.match(r"(conns|rate)-(\d+)", name)
        if not m:
            continue
        if m.group(1) == "conns":
            mem_pts[int(m.group(2))] = g
        elif g.get("conns") is not None:
            mem_pts.setdefault(g["conns"], g)
    lat_pts = sorted(((g["rate"], g) for n, g in gws.items() if n.startswith("rate-") and g.get("presence")),
                     key=lambda x: x[0])

    rm, km = med(rp["mem"]), med(rp["kcat"])
    return types.SimpleNamespace(runs=runs, naive=naive, rb=rb, p_rates=p_rates, p_med=p_med, n_med=n_med,
                                 rb_med=rb_med, ent=ent, bat=bat, dfr=dfr, gws=gws, rp=rp, idle=idle,
                                 mem_pts=mem_pts, lat_pts=lat_pts, rm=rm, km=km)


def header(pg, d, meta):
    """The title, the run's provenance and the machine."""
    w = pg.w
    w("# Benchmarks")
    w("")
    w(f"<!-- Written by bench/report.py from the output of `bench/run` in "
      f"{os.path.relpath(d, ROOT)}; do not edit by hand: the readings are in bench/notes.md. -->")
    w("")
    w(f"Produced by **`bash bench/run`** (about an hour; `--quick` for a trial) on "
      f"{meta.get('started', '?')}, commit `{meta.get('commit', '?')}`, in "
      f"{int(meta.get('duration_s', '0')) // 60} min. Every table and plot below comes from that one run, "
      "and every figure stands beside its baseline measured in the same run on the same machine. "
      "These are measurements, not tests. The run's raw output is in [bench-run/](bench-run/) "
      "(`python3 bench/report.py docs/bench-run` writes this page again). Earlier runs, experiments and "
      "what each change bought are kept in [benchmarks-history.md](benchmarks-history.md).")
    w("")
    w(f"- **Machine:** {meta.get('machine', '?').removeprefix('machine: ')}.")
    w(f"- **Load average before the run:** {meta.get('load', '?')} (1/5/15 min); the load generators, Kafka "
      "and Redis share the same cores as the system under test.")
    w(f"- **File limit:** {meta.get('nofile', '?')} descriptors per process (connections beyond it cannot be held).")
    w("- **Release build** (RelWithDebInfo, `-O2`), Kafka 3.9.1 in KRaft mode, one broker, topics of 6 partitions.")


def summary(pg, meta, inp):
    """Each target beside its measured figure and baseline."""
    w, note = pg.w, pg.note
    p_med, n_med, rb_med, rm, km = inp.p_med, inp.n_med, inp.rb_med, inp.rm, inp.km
    idle, mem_pts, lat_pts = inp.idle, inp.mem_pts, inp.lat_pts

    def best_lat(rate_target):
        for r, g in lat_pts:
            p = g["presence"]
            if p and p.get("client_msgs") and p["client_msgs"] >= 0.85 * rate_target:
                return g
        return lat_pts[-1][1] if lat_pts else None

    w("")
    w("## Summary: targets and baselines")
    w("")
    w("| figure | presence | baseline, same run | presence / baseline | target | met |")
    w("|---|---|---|---|---|---|")
    w(f"| processor, records/s folded, exactly-once on (median) | {fmt_int(p_med)} | naive processor "
      f"{fmt_int(n_med)}; redis-benchmark, one script per event {fmt_int(rb_med)} | "
      f"{ratio(p_med, n_med)} naive; {ratio(p_med, rb_med)} redis-benchmark | {T_PROC:,} | "
      f"{'yes' if p_med and p_med >= T_PROC else 'no'} |")
    g10 = mem_pts.get(10000) or (mem_pts[max(mem_pts)] if mem_pts else None)
    if g10 and g10.get("presence"):
        pm, sm = g10["presence"]["per_conn"], (g10["socketio"] or {}).get("per_conn")
        w(f"| gateway memory per idle connection, bytes ({g10['conns']:,} connections) | {fmt_int(pm)} | "
          f"Socket.IO {fmt_int(sm)} | {ratio(pm, sm)} | < {T_MEM:,} | {'yes' if pm and pm < T_MEM else 'no'} |")
    held = [(c, g) for c, g in mem_pts.items() if g.get("presence")]
    if held:
        c, g = max(held, key=lambda x: x[0])
        ps, ss = g["presence"]["subscribed"], (g["socketio"] or {}).get("subscribed")
        w(f"| connections held in one process (most measured) | {fmt_int(ps)} | Socket.IO {fmt_int(ss)} | "
          f"{ratio(ps, ss)} | {T_CONNS:,} | {'yes' if ps and ps >= T_CONNS else 'no'}"
          f"{'' if ps and ps >= T_CONNS else ' (file limit ' + meta.get('nofile', '?') + ')'} |")
    ip = (idle or {}).get("presence")
    if ip:
        isio = idle.get("socketio") or {}
        w(f"| connections held on one host, {idle['servers']} gateways on one port (`http.reuse_port`) | "
          f"{fmt_int(ip['subscribed'])} | Socket.IO {fmt_int(isio.get('subscribed'))} ({idle['servers']} processes) | "
          f"{ratio(ip['subscribed'], isio.get('subscribed'))} | {T_CONNS:,} | "
          f"{'yes' if ip['subscribed'] >= T_CONNS and not ip['closed'] else 'no'} |")
        w(f"| memory per idle connection, bytes, at {fmt_int(ip['subscribed'])} on one host | "
          f"{fmt_int(ip['per_connection_bytes'])} | Socket.IO {fmt_int(isio.get('per_connection_bytes'))} | "
          f"{ratio(ip['per_connection_bytes'], isio.get('per_connection_bytes'))} | < {T_MEM:,} | "
          f"{'yes' if ip['per_connection_bytes'] < T_MEM else 'no'} |")
    gl = best_lat(T_RATE)
    if gl:
        p, s = gl["presence"], gl["socketio"] or {}
        w(f"| LOCK -> LOCK_ACK p50, ms, at {fmt_int(p['client_msgs'])} client msgs/s | {fmt_ms(p['p50'])} | "
          f"Socket.IO {fmt_ms(s.get('p50'))} | {ratio(p['p50'], s.get('p50'))} | < {T_P50:g} at {T_RATE:,}/s | "
          f"{'yes' if p['p50'] is not None and p['p50'] < T_P50 and p['client_msgs'] >= 0.95 * T_RATE else 'no'} |")
        w(f"| LOCK -> LOCK_ACK p99, ms, same run | {fmt_ms(p['p99'])} | Socket.IO {fmt_ms(s.get('p99'))} | "
          f"{ratio(p['p99'], s.get('p99'))} | < {T_P99:g} at {T_RATE:,}/s | "
          f"{'yes' if p['p99'] is not None and p['p99'] < T_P99 and p['client_msgs'] >= 0.95 * T_RATE else 'no'} |")
    w(f"| presencectl replay in memory, records/s (median) | {fmt_int(rm)} | kcat read of the same topics "
      f"{fmt_int(km)} | {ratio(rm, km)} | {T_REPLAY:,} | {'yes' if rm and rm >= T_REPLAY else 'no'} |")
    note("summary")


def processor(pg, d, meta, inp):
    """Section 1: processor throughput, its phases and its plot."""
    w, note, plot, pdir = pg.w, pg.note, pg.plot, pg.pdir
    runs, naive, rb, p_rates = inp.runs, inp.naive, inp.rb, inp.p_rates
    p_med, n_med, rb_med = inp.p_med, inp.n_med, inp.rb_med
    w("")
    w("## 1. Processor throughput, exactly-once on")
    w("")
    pm = dict(re.findall(r"(\w+)=(\d+)", meta.get("processor", "")))
    w(f"`bench/run_processor.sh {pm.get('records', '?')} {pm.get('entities', '?')} {pm.get('runs', '?')}`: "
      "fresh topics of 6 partitions, input produced by `bench/px_bench_produce` in the realistic mix "
      "(80% HB, 10% SUB/UNSUB, 8% LOCK/UNLOCK, 2% lifecycle), "
      f"{fmt_int(num(pm.get('records')))} records over {fmt_int(num(pm.get('entities')))} entities; one processor folds everything from the beginning with transactions, "
      "change events and watermark-guarded Redis writes; timed from its launch (start-up, group join and "
      "`init_transactions` included) until its `/metrics` count every record and Redis's applied marks reach every partition's end offset (every effect is in Redis). Baselines on the same records "
      "and the same Redis: (a) `redis-benchmark` running one Lua script per event (the state hash and the "
      "view string with its expiry, as a heartbeat writes them, 100k random keys, pipelined 32 deep): the ceiling of "
      "per-event Redis work; (b) the naive processor `bench/baselines/px_naive_processor.c` (one synchronous "
      "round trip per command per event, at-least-once), over the first "
      f"{fmt_int(num(pm.get('naive_records')))} records "
      "(its rate is flat).")
    w("")
    w("| run | presence, records/s | s from launch | naive processor | redis-benchmark, scripts/s |")
    w("|---|---|---|---|---|")
    for k in sorted(runs):
        w(f"| {k} | {fmt_int(runs[k]['rate'])} | {runs[k]['secs']:.1f} | {fmt_int(naive.get(k))} | {fmt_int(rb.get(k))} |")
    w(f"| **median** | {spread(p_rates)} | | {spread(list(naive.values()))} | {spread(list(rb.values()))} |")
    w("")
    w(f"Ratios: presence / naive **{ratio(p_med, n_med)}**, presence / redis-benchmark **{ratio(p_med, rb_med)}**, "
      f"presence / target **{ratio(p_med, T_PROC)}**.")
    if runs:
        ph_names = sorted({p for r in runs.values() for p in r["phases"]})
        if ph_names:
            w("")
            w("Where each run's wall time went (`presence_processor_batch_phase_us_total`, seconds):")
            w("")
            w("| phase | " + " | ".join(f"run {k}" for k in sorted(runs)) + " |")
            w("|---|" + "---|" * len(runs))
            for ph in ph_names:
                w(f"| {ph} | " + " | ".join(f"{runs[k]['phases'].get(ph, 0):.1f}" for k in sorted(runs)) + " |")
    series = []
    for k in sorted(runs):
        rs = rate_series(os.path.join(d, f"processor-run{k}.tsv"))
        if rs:
            dat = os.path.join(pdir, f"processor-run{k}.dat")
            write_dat(dat, rs)
            series.append(f'"{dat}" using 1:2 with fsteps lw 2 title "presence, run {k}"')
    if series:
        extra = []
        if n_med:
            extra.append(f"{n_med} with lines dt 2 lw 2 title \"naive processor (median)\"")
        if rb_med:
            extra.append(f"{rb_med} with lines dt 3 lw 2 title \"redis-benchmark, one script per event (median)\"")
        plot("processor-throughput",
             "set title \"Processor: records folded per second (windows of at least 1 s), exactly-once on\"\n"
             "set xlabel \"seconds since the processor's launch\"\nset ylabel \"records/s\"\n"
             "set key outside bottom center horizontal\nset yrange [0:*]\n"
             "plot " + ", ".join(series + extra) + "\n",
             "records folded per second over time, each run, with the baselines' medians")
    note("processor")


def scaling(pg, meta, inp):
    """Section 2: records/s against entities, batch size and flush deferral."""
    w, note, plot, pdir = pg.w, pg.note, pg.plot, pg.pdir
    ent, bat, dfr = inp.ent, inp.bat, inp.dfr
    w("")
    w("## 2. Processor scaling")
    w("")
    w(f"`bench/run_processor.sh` without baselines, one run per point, {meta.get('scaling', '?')}: "
      "records/s against the number of distinct entities in the input (default batch size), against "
      "`batch.max_records` (100k entities), and against `batch.flush_defer_ms` (how long Redis writes may wait "
      "to coalesce while a backlog lasts; 100k entities).")
    for title, pts, xlab, name in (("entities", ent, "entities in the input", "entities"),
                                   ("batch.max_records", bat, "batch.max_records", "batch"),
                                   ("batch.flush_defer_ms", dfr, "batch.flush_defer_ms", "defer")):
        if not pts:
            continue
        w("")
        w(f"| {title} | records/s | s from launch | Redis write phase, s | fold phase, s | commit phase, s |")
        w("|---|---|---|---|---|---|")
        rows = []
        for x in sorted(pts):
            r = pts[x]
            if not r:
                w(f"| {x:,} | not measured (see {name}-{x}.log) | | | | |")
                continue
            ph = r["phases"]
            w(f"| {x:,} | {fmt_int(r['rate'])} | {r['secs']:.1f} | {ph.get('redis', 0):.1f} | "
              f"{ph.get('fold', 0):.1f} | {ph.get('commit', 0):.1f} |")
            rows.append((x, r["rate"]))
        if len(rows) >= 2:
            drops = [(rows[i][1] / rows[i - 1][1], rows[i - 1][0], rows[i][0]) for i in range(1, len(rows))]
            worst = max(drops, key=lambda x: abs(math.log(x[0])) if x[0] > 0 else float("inf"))
            w("")
            w(f"Largest change between neighbouring points: from {worst[1]:,} to {worst[2]:,} {title} "
              f"the rate is multiplied by {worst[0]:.2f}.")
            dat = os.path.join(pdir, f"scaling-{name}.dat")
            write_dat(dat, rows)
            plot(f"processor-{name}",
                 f"set title \"Processor records/s against {title}\"\n"
                 f"{'' if name == 'defer' else 'set logscale x'}\n"
                 f"set xlabel \"{xlab}{'' if name == 'defer' else ' (log)'}\"\nset ylabel \"records/s\"\nset yrange [0:*]\nset key off\n"
                 f"plot \"{dat}\" using 1:2 with linespoints lw 2 pt 7\n",
                 f"processor records/s against {title}")
    note("scaling")


def redis_cluster(pg, d):
    """Section 2's Redis Cluster beside a single Redis."""
    w, note = pg.w, pg.note
    lay = parse_layouts(read(os.path.join(d, "redis-cluster.log")))
    if lay:
        w("")
        w("### On a Redis Cluster, beside a single Redis")
        w("")
        w("`PX_BENCH_REDIS=\"single cluster\" bench/run_processor.sh`: each run folds the same number of records "
          "into a plain Redis and then into a Redis Cluster of 3 masters + 3 replicas (`stack.sh --redis-cluster`, "
          "no persistence), back to back, on the same machine (every Redis shares its two cores with Kafka and the "
          "processor). On the cluster the processor routes by slot, writes each master its pipeline at once, "
          "keeps applied marks on every master and publishes with `SPUBLISH`.")
        w("")
        w("| run | single Redis, records/s | cluster, records/s | cluster / single |")
        w("|---|---|---|---|")
        s1, c1 = lay.get("single", {}), lay.get("cluster", {})
        for k in sorted(set(s1) | set(c1)):
            w(f"| {k} | {fmt_int(s1.get(k))} | {fmt_int(c1.get(k))} | {ratio(c1.get(k), s1.get(k))} |")
        w(f"| **median** | {spread(list(s1.values()))} | {spread(list(c1.values()))} | "
          f"**{ratio(med(list(c1.values())), med(list(s1.values())))}** (target 0.8) |")
        note("redis-cluster")














def replay(pg, meta, inp):
    """Section 4: presencectl replay against kcat."""
    w, note = pg.w, pg.note
    rp, rm, km = inp.rp, inp.rm, inp.km
    w("")
    w("## 4. presencectl replay")
    w("")
    w(f"`bench/run_replay.sh`, {meta.get('replay', '?')}: the processor benchmark's workload in fresh topics, "
      "then `presencectl replay --dry-run` (read the four input topics, read_committed, decode, fold in memory) "
      "and `presencectl replay` into an empty Redis (the same, then every entity written with the processor's "
      "guarded script). Baseline: `kcat` reading the same four topics from the beginning to the end, printing "
      "only the keys (librdkafka as presencectl, no decoding, no fold).")
    w("")
    w("| | records/s | |")
    w("|---|---|---|")
    w(f"| in memory | {spread(rp['mem'])} | CPU (user + sys) per run: {', '.join(f'{x:.1f} s' for x in rp['mem_cpu']) or 'n/a'} |")
    w(f"| into Redis (fold + write) | {spread(rp['redis'])} | write phase: {', '.join(f'{x:.1f} s' for x in rp['redis_write_s']) or 'n/a'} |")
    w(f"| baseline: kcat read | {spread(rp['kcat'])} | |")
    w("")
    w(f"Ratios: in memory / kcat **{ratio(rm, km)}**; in memory / target (500k) **{ratio(rm, T_REPLAY)}**.")
    note("replay")


def profiles(pg, d):
    """Section 6: perf profiles by library and symbol."""
    w, note = pg.w, pg.note
    w("")
    w("## 6. Profiles")
    w("")
    w("`perf record -F 499 -p PID` (flat, user and kernel) during run 1 of the processor benchmark (the "
      "processor and redis-server) and during the highest-rate gateway run (the gateway and its processor). "
      "Self time by symbol; the share of each library first. A process that waits (on Redis, on Kafka) shows "
      "only its CPU time here: the phase table of section 1 gives the wall time.")
    for name, title in (("processor", "presence-processor, processor benchmark run 1"),
                        ("redis", "redis-server, processor benchmark run 1"),
                        ("gateway", "presence-gateway, highest LOCK rate"),
                        ("gw-processor", "presence-processor, highest LOCK rate")):
        path = os.path.join(d, "perf", f"{name}.perf.txt")
        if not os.path.exists(path):
            w("")
            w(f"**{title}:** not profiled (no {name}.perf.txt: perf missing or the run failed).")
            continue
        samples, rows, dsos = parse_perf(path)
        w("")
        w(f"**{title}** ({samples} samples). By library: " +
          ", ".join(f"{os.path.basename(k)} {v:.0f}%" for k, v in dsos) + ".")
        w("")
        w("| self % | library | symbol |")
        w("|---|---|---|")
        for pct, dso, sym in rows:
            w(f"| {pct:.1f} | {os.path.basename(dso)} | `{sym[:70]}` |")
    note("profiles")






if __name__ == "__main__":
    main()
