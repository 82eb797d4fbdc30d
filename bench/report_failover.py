"""bench/report_failover.py - the failover section of docs/benchmarks.md,
for bench/report.py: from RUN_DIR/failover.log (bench/run_failover.sh) and
RUN_DIR/brokers.log (bench/run_processor.sh with PX_BENCH_BROKERS="1 3").
Either may be missing (a run of bench/run from before the failover
benchmark, or one that failed): its part then says "not measured".
Standard library only; every figure comes from those two files.
"""
import re
import statistics

# the project's failover targets, seconds until LOCK_ACKs resume
TARGETS = {"processor-restart": 3.0, "processor-dead": 12.0, "broker-follower": 10.0,
           "broker-controller": 10.0}
FAULTS = [("processor-restart", "kill -9 of a processor, restarted at once under its name"),
          ("processor-dead", "kill -9 of a processor that stays dead"),
          ("broker-follower", "kill -9 of a broker (not the quorum's leader)"),
          ("broker-controller", "kill -9 of the quorum's leader"),
          ("preferred-election", "a preferred-leader election (from the first leader seen moving)")]
BROKER_FAULTS = ("broker-follower", "broker-controller", "preferred-election")

RESULT = re.compile(r"^result fault=([a-z-]+) round=(\d+) entities=(\d+) affected=(\d+) first=(\S+) last=(\S+) "
                    r"gap=([\d.]+) errors=(\d+) unanswered=(\d+) exits=(\d+)\s*$")


def _f(s):
    return None if s == "-" else float(s)


def parse_failover(text):
    """{'meta': {key: value}, 'faults': {fault: [result per round]}}."""
    meta, faults = {}, {}
    for line in text.splitlines():
        m = RESULT.match(line)
        if m:
            faults.setdefault(m.group(1), []).append({
                "round": int(m.group(2)), "entities": int(m.group(3)), "affected": int(m.group(4)),
                "first": _f(m.group(5)), "last": _f(m.group(6)), "gap": float(m.group(7)),
                "errors": int(m.group(8)), "unanswered": int(m.group(9)), "exits": int(m.group(10))})
            continue
        k, sep, v = line.partition(": ")
        if sep and k in ("started", "commit", "load", "settings"):
            meta[k] = v.strip()
    return {"meta": meta, "faults": faults}


def parse_brokers(text):
    """{brokers: [records/s per run]} from run lines tagged "(N broker[s])"."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"run \d+ \((\d+) brokers?\): \d+ records folded in [\d.]+ s from launch: (\d+) records/s", line)
        if m:
            out.setdefault(int(m.group(1)), []).append(float(m.group(2)))
    return out


def _spread(xs, fmt="{:.1f}"):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return fmt.format(xs[0])
    return f"**{fmt.format(statistics.median(xs))}** ({fmt.format(min(xs))}-{fmt.format(max(xs))})"


def _met(fault, rs):
    """Whether the target holds in every round: LOCK_ACKs back on every
    affected entity by the target, every entity answered, and no processor
    exit on a broker fault."""
    target = TARGETS.get(fault)
    bad = [r for r in rs if r["unanswered"] or (fault in BROKER_FAULTS and r["exits"])
           or (target is not None and r["last"] is not None and r["last"] > target)]
    if target is None and fault not in BROKER_FAULTS:
        return "-"
    return f"{'yes' if not bad else 'no'} ({len(rs) - len(bad)} of {len(rs)} rounds)"


def section(w, fo_text, br_text):
    """Writes the section through w (one line per call)."""
    fo, br = parse_failover(fo_text), parse_brokers(br_text)
    meta = fo["meta"]
    w("")
    w("## 5. Failover on a 3-broker cluster")
    w("")
    if not fo["faults"]:
        w("Failover: not measured (no result in failover.log).")
    else:
        rounds = max(len(rs) for rs in fo["faults"].values())
        w(f"`bench/run_failover.sh {rounds}` on {meta.get('started', '?')}, commit `{meta.get('commit', '?')}`, "
          f"load {meta.get('load', '?')}; processor settings: {meta.get('settings', '?')}. A 3-broker KRaft "
          "cluster on loopback (replication factor 3, `min.insync.replicas` 2), two processors in one group, one "
          "gateway, and one WebSocket client per entity (24 entities over the 3 partitions), each sending a LOCK "
          "every 100 ms. Per fault, for every entity, the time from the fault to the first LOCK_ACK of a LOCK sent "
          "at or after it; an entity is affected when that is over 0.5 s. Seconds, median (range) over the rounds.")
        w("")
        w("| fault | first affected entity | last affected entity | longest gap | affected entities | "
          "LOCKs in ERROR | processor exits | target (last) | met |")
        w("|---|---|---|---|---|---|---|---|---|")
        for fault, title in FAULTS:
            rs = fo["faults"].get(fault)
            if not rs:
                w(f"| {title} | not measured | | | | | | | |")
                continue
            target = TARGETS.get(fault)
            affected = ", ".join("%d/%d" % (r["affected"], r["entities"]) for r in rs)
            errors = ", ".join(str(r["errors"]) for r in rs)
            want = "<= %g s" % target if target else ("no exit" if fault in BROKER_FAULTS else "-")
            if target and fault in BROKER_FAULTS:
                want += ", no exit"
            w(f"| {title} | {_spread(r['first'] for r in rs)} | {_spread(r['last'] for r in rs)} | "
              f"{_spread(r['gap'] for r in rs)} | {affected} | {errors} | {sum(r['exits'] for r in rs)} | "
              f"{want} | {_met(fault, rs)} |")
        unanswered = {f: sum(r["unanswered"] for r in rs) for f, rs in fo["faults"].items()}
        if any(unanswered.values()):
            w("")
            w("Entities never answered within 90 s of the fault: " +
              ", ".join(f"{f} {n}" for f, n in unanswered.items() if n) + ".")
    w("")
    if not br:
        w("Processor throughput on 3 brokers beside 1: not measured (no brokers.log).")
        return
    one, three = br.get(1, []), br.get(3, [])
    w("Processor throughput, the same workload on one broker and on the 3-broker cluster (replication "
      "factor 3, `min.insync.replicas` 2), runs alternating (`PX_BENCH_BROKERS=\"1 3\" "
      "bench/run_processor.sh`), records/s:")
    w("")
    w("| brokers | records/s, median (range) | runs |")
    w("|---|---|---|")
    for n, xs in sorted(br.items()):
        w(f"| {n} | {_spread(xs, '{:,.0f}')} | {len(xs)} |")
    if one and three:
        w("")
        w(f"3 brokers / 1 broker (medians): **{statistics.median(three) / statistics.median(one):.2f}**.")
