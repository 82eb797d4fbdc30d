"""bench/report_parse.py - what bench/report.py reads from one bench/run's raw
output: the number helpers and formats its tables use, and a parser per
log (meta.txt, processor.log, entities-*/batch-* logs, px_bench_gw's
output in gateway-*.log, idle.log, replay.log, perf/*.perf.txt,
processor-run<N>.tsv). Standard library only."""
import glob
import os
import re
import statistics


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def num(s):
    return float(s) if s not in (None, "") else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_int(x):
    return "n/a" if x is None else f"{x:,.0f}"


def fmt_k(x):
    if x is None:
        return "n/a"
    return f"{x / 1000:.0f}k" if x >= 10_000 else f"{x:,.0f}"


def fmt_ms(x):
    return "n/a" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.0f}")


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}"


def spread(xs, f=fmt_int):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "not measured"
    if len(xs) == 1:
        return f(xs[0])
    return f"**{f(statistics.median(xs))}** (min {f(min(xs))}, max {f(max(xs))})"


# ---------------------------------------------------------------- parsing

def parse_meta(d):
    m = {}
    for line in read(os.path.join(d, "meta.txt")).splitlines():
        k, _, v = line.partition(": ")
        m[k] = v
    return m


PHASE = re.compile(r'presence_processor_batch_phase_us_total\{phase="(\w+)"\} ([\d.]+) s')


def parse_processor(text):
    """Runs of bench/run_processor.sh: rate, phases, naive, redis-benchmark."""
    runs, naive, rb = {}, {}, {}
    phases = {}
    for line in text.splitlines():
        p = PHASE.search(line)
        if p:
            phases[p.group(1)] = float(p.group(2))
            continue
        m = re.match(r"run (\d+): (\d+) records folded in ([\d.]+) s from launch: (\d+) records/s", line)
        if m:
            runs[int(m.group(1))] = {"rate": float(m.group(4)), "secs": float(m.group(3)), "phases": phases}
            phases = {}
            continue
        m = re.match(r"baseline run (\d+): naive: (\d+) records in ([\d.]+) s.*?: ([\d.]+) records/s", line)
        if m:
            naive[int(m.group(1))] = float(m.group(4))
            continue
        m = re.match(r"baseline run (\d+): redis-benchmark.*?([\d.]+) requests per second", line)
        if m:
            rb[int(m.group(1))] = float(m.group(2))
    return runs, naive, rb


def parse_layouts(text):
    """Runs of bench/run_processor.sh with PX_BENCH_REDIS: {layout: {run: records/s}}."""
    out = {}
    for m in re.finditer(r"^run (\d+) \(redis (\w+)\): \d+ records folded in [\d.]+ s from launch: (\d+) records/s",
                         text, re.M):
        out.setdefault(m.group(2), {})[int(m.group(1))] = float(m.group(3))
    return out


def curve(d, name):
    """{x: run 1 of the processor} of the scaling logs <name>-<x>.log."""
    out = {}
    for f in glob.glob(os.path.join(d, f"{name}-*.log")):
        m = re.search(rf"{name}-(\d+)\.log$", f)
        if m:
            r, _, _ = parse_processor(read(f))
            out[int(m.group(1))] = r.get(1)
    return out


def parse_bench_gw(block):
    """One px_bench_gw output (the lines after `server: ...`)."""
    r = {}

    def kv(tag):
        m = re.search(rf"^{tag}: (.*)$", block, re.M)
        return dict(re.findall(r"(\w+)=([\d.]+)", m.group(1))) if m else {}

    c, g, lk, la = kv("connections"), kv("gateway_rss_kb"), kv("locks"), kv("lock_ack_ms")
    r["subscribed"] = num(c.get("subscribed"))
    r["asked"] = num(c.get("asked"))
    r["failed"] = num(c.get("failed"))
    r["per_conn"] = num(g.get("per_connection_bytes"))
    r["rss_after"] = num(g.get("after_idle"))
    r["lock_rate"] = num(lk.get("lock_rate"))
    r["client_msgs"] = num(lk.get("client_msgs"))
    r["timeouts"] = num(lk.get("timeouts"))
    r["errors"] = num(lk.get("errors"))
    for p in ("p50", "p90", "p99", "p999", "max"):
        r[p] = num(la.get(p))
    r["n"] = num(la.get("n"))
    m = re.search(r"^heartbeats: .* = ([\d.]+)/s", block, re.M)
    r["hb_rate"] = num(m.group(1)) if m else None
    m = re.search(r"^hb_burst: hbs=(\d+).*probes_answered=(\d+) in ([\d.]+) s = ([\d.]+)/s", block, re.M)
    r["hb_burst"] = num(m.group(4)) if m else None
    # CPU over the LOCK phase: `cpu: ... machine_busy=81% gateway=50%/57us ...`
    # and `runq_wait: gateway=59% ...` (absent from runs before 2026-12-01)
    m = re.search(r"^cpu: (.*)$", block, re.M)
    if m:
        busy = re.search(r"machine_busy=([\d.]+)%", m.group(1))
        r["machine_busy"] = num(busy.group(1)) if busy else None
        r["cpu"] = {n: (num(a), num(b)) for n, a, b in re.findall(r"(\w+)=([\d.]+)%/([\d.]+)us", m.group(1))}
    m = re.search(r"^runq_wait: (.*)$", block, re.M)
    r["runq"] = {n: num(v) for n, v in re.findall(r"(\w+)=([\d.]+)%", m.group(1))} if m else {}
    return r


def parse_gateway(text):
    if text.startswith("not measured"):
        return {"skipped": text.strip()}
    parts = re.split(r"^server: ", text, flags=re.M)
    out = {"presence": None, "socketio": None}
    for p in parts[1:]:
        if p.startswith("socket.io"):
            out["socketio"] = parse_bench_gw(p)
        else:
            out["presence"] = parse_bench_gw(p)
    m = re.search(r"^bench: .* conns=(\d+) lock_rate=(\d+)", text, re.M)
    out["conns"] = int(m.group(1)) if m else None
    out["rate"] = int(m.group(2)) if m else None
    m = re.search(r"^load: ([\d.]+)", text, re.M)
    out["load"] = m.group(1) if m else "?"
    parts = {}
    m = re.search(r"^lock_parts: (.*)$", text, re.M)
    if m:
        for name, body in re.findall(r"(\w+) (n=[^;]*)", m.group(1)):
            parts[name] = dict(re.findall(r"(\w+)=([\d.]+|inf)", body))
    out["parts"] = parts
    if out["presence"] is None:
        out["failed"] = text.strip().splitlines()[-1] if text.strip() else "no output"
    return out


def parse_idle(text):
    """bench/run_idle.sh: idle connections held by several processes per
    server, presence's gateways on one port and Socket.IO's a port each."""
    if not text.strip():
        return None
    out = {"log_tail": text.strip().splitlines()[-1]}
    m = re.search(r"^bench: (\S+) idle connections: conns=(\d+) servers=(\d+)", text, re.M)
    if m:
        out.update(date=m.group(1), conns=int(m.group(2)), servers=int(m.group(3)))
    for name in ("presence", "socketio"):
        t = re.search(rf"^{name}_total: (.*)$", text, re.M)
        if not t:
            continue
        r = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", t.group(1))}
        r["procs"] = [int(n) for n in re.findall(rf"^{name} pid \d+: connections=(\d+)", text, re.M)]
        r["closed"] = sum(int(n) for n in re.findall(rf"^{name} client \d+: held: .*closed_by_server=(\d+)", text, re.M))
        r["asked"] = sum(int(n) for n in re.findall(rf"^{name} client \d+: connections: asked=(\d+)", text, re.M))
        r["failed"] = sum(int(n) for n in re.findall(rf"^{name} client \d+: connections: .*failed=(\d+)", text, re.M))
        m = re.search(rf"^{name} after the (\d+) s hold: (.*)$", text, re.M)
        if m and r.get("subscribed"):
            later = sum(int(k) for k in re.findall(r"rss_kb=(\d+)", m.group(2)))
            r["hold_s"] = int(m.group(1))
            r["per_conn_later"] = (later - r["rss_kb_before"]) * 1024 / r["subscribed"]
        m = re.search(rf"^{name}: all generators idle (\d+) s", text, re.M)
        r["open_s"] = int(m.group(1)) if m else None
        out[name] = r
    out["loads"] = re.findall(r"^load: ([\d.]+, [\d.]+, [\d.]+)", text, re.M)
    return out


def parse_replay(text):
    r = {"kcat": [], "mem": [], "mem_cpu": [], "redis": [], "redis_write_s": []}
    for line in text.splitlines():
        m = re.match(r"baseline kcat read, run \d+: [\d.]+ s, (\d+) records/s", line)
        if m:
            r["kcat"].append(float(m.group(1)))
        m = re.match(r"in memory, run \d+: .*fold [\d.]+ s \((\d+) records/s\).*cpu ([\d.]+) s user ([\d.]+) s sys", line)
        if m:
            r["mem"].append(float(m.group(1)))
            r["mem_cpu"].append(float(m.group(2)) + float(m.group(3)))
        m = re.match(r"into Redis, run \d+: .*, ([\d.]+) s; total (\d+) records/s", line)
        if m:
            r["redis_write_s"].append(float(m.group(1)))
            r["redis"].append(float(m.group(2)))
    m = re.search(r"^replay: \d+ records .* -> (\d+) entities", text, re.M)
    r["entities"] = int(m.group(1)) if m else None
    return r


def parse_perf(path, top=8):
    """(total samples, [(pct, dso, symbol)]) of a perf report --sort dso,symbol."""
    text = read(path)
    m = re.search(r"# Samples: (\S+)", text)
    samples = m.group(1) if m else "?"
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.+?)\s*$", line)
        if m:
            sym = re.sub(r"(\s+-)+$", "", m.group(3))
            dso = "redis-server" if m.group(2) == "redis-check-rdb" else m.group(2)
            rows.append((float(m.group(1)), dso, sym))
    by_dso = []
    for line in read(path.replace(".perf.txt", ".dso.txt")).splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s*$", line)
        if m:
            name = "redis-server" if m.group(2) == "redis-check-rdb" else m.group(2)
            by_dso.append((name, float(m.group(1))))
    return samples, rows[:top], by_dso[:6]


def rate_series(tsv):
    """records/s over windows of at least 1 s, from (t, folded) samples.

    The samples are irregular: the processor serves /metrics on its loop,
    so a sample waits while a batch writes Redis. Each point averages from
    the latest sample at least 1 s older, so a stall is spread over its
    window instead of dropped (which would show only the fast stretches)."""
    pts = []
    for line in read(tsv).splitlines()[1:]:
        a = line.split("\t")
        if len(a) == 2:
            try:
                pts.append((float(a[0]), int(a[1])))
            except ValueError:
                continue
    out, j = [], 0
    for i in range(len(pts)):
        while j + 1 < i and pts[i][0] - pts[j + 1][0] >= 1.0:
            j += 1
        if i > j and pts[i][0] - pts[j][0] >= 1.0:
            out.append((pts[i][0], (pts[i][1] - pts[j][1]) / (pts[i][0] - pts[j][0])))
    return out
