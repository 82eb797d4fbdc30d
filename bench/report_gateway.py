"""bench/report_gateway.py - section 3 of docs/benchmarks.md, for
bench/report.py: the gateway against the Socket.IO baseline (connections
and memory, idle connections on one host, LOCK latency, where its time and
the CPU go, heartbeats), from the parsed gateway-<name>.log and idle.log.
Standard library only.
"""
import os

from report_page import T_MEM, T_P50, write_dat
from report_parse import fmt_int, fmt_ms, ratio


def gateway(pg, meta, inp):
    """Section 3: the gateway against the Socket.IO baseline."""
    gateway_memory(pg, meta, inp)
    idle_section(pg.w, inp.idle, pg.note)
    gateway_latency(pg, inp)
    gateway_parts(pg, inp)
    gateway_cpu(pg, inp)
    gateway_heartbeats(pg, inp)


def gateway_memory(pg, meta, inp):
    """Section 3's introduction, connections held and memory per idle connection."""
    w, plot, pdir = pg.w, pg.plot, pg.pdir
    mem_pts = inp.mem_pts
    w("")
    w("## 3. Gateway against a Socket.IO server")
    w("")
    w("`bench/run_gateway.sh CONNS LOCK_RATE DURATION` per point: a private Kafka + Redis, one processor, one "
      "gateway; `bench/px_bench_gw` (one thread, epoll, a raw RFC 6455 client) opens CONNS connections from 4 "
      "loopback addresses, each subscribed to an entity and heartbeating every 30 s, reads the server's RSS "
      "before and after (idle), then sends LOCKs at LOCK_RATE/s (each followed by its UNLOCK: two client "
      "messages), then a heartbeat burst. Each latency point first runs 60 s of the same LOCK rate from 2,000 "
      "connections as a warm-up, figures discarded (a broker that started a minute earlier is still compiling: "
      "docs/benchmarks-history.md). Then the same against the Socket.IO baseline, warmed up alike "
      "(`bench/baselines/socketio`: socket.io + @socket.io/redis-adapter + ioredis, locks as SET NX PX, "
      "presence in Redis hashes) on the same Redis, with the gateway and processor stopped. The baseline's "
      "LOCK is one Redis command; presence's goes through Kafka, the processor's exactly-once fold and back: "
      "the baseline is a floor, not an equal system.")
    w("")
    w("### Connections and memory per idle connection")
    w("")
    w("| connections asked | presence: held | presence: bytes per connection | Socket.IO: held | Socket.IO: bytes per connection | ratio |")
    w("|---|---|---|---|---|---|")
    mem_rows = []
    for c in sorted(mem_pts):
        g = mem_pts[c]
        if g.get("skipped"):
            w(f"| {c:,} | {g['skipped']} | | | | |")
            continue
        p, s = g.get("presence") or {}, g.get("socketio") or {}
        w(f"| {c:,} | {fmt_int(p.get('subscribed'))} | {fmt_int(p.get('per_conn'))} | "
          f"{fmt_int(s.get('subscribed'))} | {fmt_int(s.get('per_conn'))} | {ratio(p.get('per_conn'), s.get('per_conn'))} |")
        if p.get("per_conn"):
            mem_rows.append((c, p["per_conn"], s.get("per_conn") or "NaN"))
    for c in sorted(mem_pts):
        if mem_pts[c].get("skipped"):
            w("")
            w(f"Points above {meta.get('nofile', '?')} connections are not measured: one process cannot hold more "
              "sockets than its file limit, and this machine's hard limit cannot be raised without "
              "CAP_SYS_RESOURCE. On a machine with a higher limit, `bench/run` measures them. "
              "Past one process, the next section holds them with several gateways on one port.")
            break
    if mem_rows:
        dat = os.path.join(pdir, "gateway-memory.dat")
        write_dat(dat, mem_rows)
        plot("gateway-memory",
             "set title \"Process memory per idle connection (RSS after - before) / connections\"\n"
             "set xlabel \"connections\"\nset ylabel \"bytes per connection\"\nset yrange [0:*]\n"
             "set key top right\n"
             f"plot \"{dat}\" using 1:2 with linespoints lw 2 pt 7 title \"presence-gateway\", "
             f"\"{dat}\" using 1:3 with linespoints lw 2 pt 5 title \"Socket.IO + redis-adapter\", "
             f"{T_MEM} with lines dt 2 title \"target: 8 KiB\"\n",
             "memory per idle connection against connections, presence and Socket.IO")


def gateway_latency(pg, inp):
    """Section 3's LOCK -> LOCK_ACK percentiles against the message rate."""
    w, plot, pdir = pg.w, pg.plot, pg.pdir
    lat_pts = inp.lat_pts
    w("")
    w("### LOCK -> LOCK_ACK latency against the message rate")
    w("")
    w("| LOCKs/s asked | client msgs/s achieved | presence p50 / p99 / p999 ms | Socket.IO p50 / p99 / p999 ms | p50 ratio | presence timeouts | load before |")
    w("|---|---|---|---|---|---|---|")
    lat_rows = []
    for r, g in lat_pts:
        p, s = g["presence"], g.get("socketio") or {}
        w(f"| {r:,} | {fmt_int(p.get('client_msgs'))} (Socket.IO {fmt_int(s.get('client_msgs'))}) | "
          f"{fmt_ms(p['p50'])} / {fmt_ms(p['p99'])} / {fmt_ms(p['p999'])} | "
          f"{fmt_ms(s.get('p50'))} / {fmt_ms(s.get('p99'))} / {fmt_ms(s.get('p999'))} | "
          f"{ratio(p['p50'], s.get('p50'))} | {fmt_int(p.get('timeouts'))} | {g['load']} |")
        lat_rows.append((p.get("client_msgs") or 0, p["p50"], p["p99"], p["p999"],
                         s.get("client_msgs") or "NaN", s.get("p50") or "NaN", s.get("p99") or "NaN",
                         s.get("p999") or "NaN"))
    if lat_rows:
        dat = os.path.join(pdir, "gateway-latency.dat")
        write_dat(dat, lat_rows)
        plot("gateway-latency",
             f"set title \"LOCK -> LOCK_ACK, {G(lat_pts)} connections\"\nset logscale y\n"
             "set xlabel \"client messages/s (LOCK + UNLOCK)\"\nset ylabel \"ms (log)\"\n"
             "set key outside right\n"
             f"plot \"{dat}\" u 1:2 w lp lw 2 pt 7 lc 1 t \"presence p50\", \"{dat}\" u 1:3 w lp lw 2 pt 7 lc 2 t \"presence p99\", "
             f"\"{dat}\" u 1:4 w lp lw 2 pt 7 lc 3 t \"presence p999\", \"{dat}\" u 5:6 w lp dt 2 pt 5 lc 1 t \"Socket.IO p50\", "
             f"\"{dat}\" u 5:7 w lp dt 2 pt 5 lc 2 t \"Socket.IO p99\", \"{dat}\" u 5:8 w lp dt 2 pt 5 lc 3 t \"Socket.IO p999\", "
             f"{T_P50} w l dt 3 lc 0 t \"target p50\"\n",
             "LOCK to LOCK_ACK percentiles against the message rate, presence and Socket.IO")


def gateway_parts(pg, inp):
    """Where a presence LOCK's time goes, from the servers' histograms."""
    w = pg.w
    lat_pts = inp.lat_pts
    if any(g.get("parts") for _, g in lat_pts):
        w("")
        w("Where a presence LOCK's time goes, from the servers' own histograms (upper bounds of the buckets "
          "holding p50 / p99): the gateway's LOCK received -> LOCK_ACK queued; its LOCK and UNLOCK records handed "
          "to the producer -> acknowledged by the broker (the gateway's delivery reports); the LOCK record's age when the "
          "processor's batch takes it (gateway producer, broker, and the wait for the batch before to finish "
          "its commit and Redis writes); batch taken -> its early decisions published.")
        w("")
        w("| LOCKs/s asked | gateway LOCK -> LOCK_ACK, ms | gateway produce -> broker ack, ms | LOCK record age at the processor, ms | processor: batch taken -> decision published, ms |")
        w("|---|---|---|---|---|")

        def pq(part, scale):
            if not part or part.get("n") in (None, "0"):
                return "n/a"
            f = lambda v: v if v == "inf" else f"{float(v) * scale:g}"
            return f"{f(part.get('p50', 'inf'))} / {f(part.get('p99', 'inf'))}"

        for r, g in lat_pts:
            pa = g.get("parts") or {}
            w(f"| {r:,} | {pq(pa.get('gateway_lock_ack_s'), 1000)} | {pq(pa.get('gateway_kafka_delivery_s'), 1000)} | "
              f"{pq(pa.get('processor_lock_age_ms'), 1)} | "
              f"{pq(pa.get('processor_decision_ms'), 1)} |")


def gateway_cpu(pg, inp):
    """The machine's CPU per process during the LOCK phase."""
    w = pg.w
    lat_pts = inp.lat_pts
    cpu_pts = [(r, g["presence"]) for r, g in lat_pts if g.get("presence") and g["presence"].get("cpu")]
    if cpu_pts:
        names = []
        for _, p in cpu_pts:
            names += [n for n in p["cpu"] if n not in names]
        w("")
        w("Where the machine's CPU goes during the LOCK phase (px_bench_gw's `cpu:` and `runq_wait:` lines, read "
          "from /proc before and after it): each process's share of one core, its CPU per client message "
          "(LOCK or UNLOCK), and the time its threads spent runnable but waiting for a core, as a share of the "
          "phase (summed over its threads, so it can pass 100%). `self` is the load generator. Far steadier "
          "from run to run than the percentiles, and what a change to the servers' work shows in first.")
        w("")
        w("| LOCKs/s asked | machine busy | " + " | ".join(f"{n}: core / per msg / waited" for n in names) + " |")
        w("|---|---|" + "---|" * len(names))

        def cell(p, n):
            if n not in p["cpu"]:
                return "n/a"
            share, us = p["cpu"][n]
            wait = p["runq"].get(n)
            return f"{share:g}% / {us:g} us / " + (f"{wait:g}%" if wait is not None else "n/a")

        for r, p in cpu_pts:
            busy = p.get("machine_busy")
            w(f"| {r:,} | " + (f"{busy:g}%" if busy is not None else "n/a") + " | " +
              " | ".join(cell(p, n) for n in names) + " |")


def gateway_heartbeats(pg, inp):
    """Section 3's heartbeat bursts and the gateway runs without a result."""
    w, note = pg.w, pg.note
    gws, mem_pts = inp.gws, inp.mem_pts
    w("")
    w("### Heartbeats")
    w("")
    w("| connections | presence: heartbeat burst taken in, HB/s | Socket.IO | ratio |")
    w("|---|---|---|---|")
    for c in sorted(mem_pts):
        g = mem_pts[c]
        if g.get("skipped") or not g.get("presence"):
            continue
        p, s = g["presence"], g.get("socketio") or {}
        w(f"| {c:,} | {fmt_int(p.get('hb_burst'))} | {fmt_int(s.get('hb_burst'))} | {ratio(p.get('hb_burst'), s.get('hb_burst'))} |")
    w("")
    w("Each connection sends 20 heartbeats at once and a probe; the rate is heartbeats / time until every "
      "probe is answered. Presence publishes each heartbeat to Kafka (batched by librdkafka); the baseline "
      "writes Redis per heartbeat. The steady 30 s heartbeat load of the connections is small beside it "
      "(connections / 30 per second).")
    failed = [n for n, g in gws.items() if g.get("failed")]
    if failed:
        w("")
        w("Runs that produced no result: " + ", ".join(f"`{n}` ({gws[n]['failed']})" for n in sorted(failed)) + ".")
    note("gateway")


def idle_section(w, idle, note):
    """Section 3's idle connections past one process's file limit."""
    w("")
    w("### Idle connections on one host: gateways sharing one port")
    w("")
    if not idle or not idle.get("presence"):
        w(f"Not measured: {(idle or {}).get('log_tail', 'no idle.log in this run')}.")
        return
    n, k = idle["conns"], idle["servers"]
    loads = idle["loads"] + ["?", "?"]
    w(f"`bench/run_idle.sh {n} {k}`, a run of its own on {idle.get('date', '?')} (`bench/run` runs it in this "
      f"section; load before presence's part {loads[0]}, before Socket.IO's {loads[1]}): {k} gateways with `http.reuse_port=true` on one port and "
      f"one processor, then {n:,} connections from {k} `px_bench_gw --hold` processes side by side, each "
      "from its own four loopback source addresses (a process holds at most its file limit of sockets, and "
      "a source address has about 28,000 ephemeral ports), every connection subscribed to an entity (two "
      "per entity) and heartbeating every 30 s. Once all are subscribed and 5 s idle, each server's RSS "
      "growth over its connections (counted by `ss`); the total is all servers' growth over all "
      f"connections. Then the same for the Socket.IO baseline: {k} node processes on the same Redis, a port "
      "each (node 20 has no SO_REUSEPORT), one generator process each. Kernel socket buffers are in neither "
      "RSS.")
    w("")
    later = (idle.get("presence") or {}).get("hold_s")
    w("| server | processes | connections asked | held | per process | opened in | RSS growth | bytes per connection |"
      f" after the {later or '?'} s hold |")
    w("|---|---|---|---|---|---|---|---|---|")
    rows = (("presence", f"presence-gateway, one port (`http.reuse_port`)"),
            ("socketio", "Socket.IO + redis-adapter, a port each"))
    for key, label in rows:
        r = idle.get(key)
        if not r:
            w(f"| {label} | not measured | | | | | | | |")
            continue
        w(f"| {label} | {len(r['procs'])} | {fmt_int(r['asked'])} | {fmt_int(r['subscribed'])} | "
          f"{' / '.join(fmt_int(c) for c in r['procs'])} | {r['open_s'] if r['open_s'] is not None else '?'} s | "
          f"{(r['rss_kb_idle'] - r['rss_kb_before']) / 1024:,.0f} MiB | {fmt_int(r['per_connection_bytes'])} | "
          f"{fmt_int(r.get('per_conn_later'))} |")
    p, s = idle["presence"], idle.get("socketio") or {}
    w(f"| presence / Socket.IO | | | | | | | {ratio(p['per_connection_bytes'], s.get('per_connection_bytes'))} | "
      f"{ratio(p.get('per_conn_later'), s.get('per_conn_later'))} |")
    w("")
    w(f"Connections that failed to open or that the server closed while held: presence "
      f"{fmt_int(p['failed'] + p['closed'])}, Socket.IO {fmt_int(s.get('failed', 0) + s.get('closed', 0)) if s else 'n/a'}; "
      "a generator gives up opening after 1,200 s and holds what it has.")
    note("idle")


def G(lat_pts):
    cs = {g.get("conns") for _, g in lat_pts}
    return ", ".join(f"{c:,}" for c in sorted(c for c in cs if c)) or "?"
