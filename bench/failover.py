#!/usr/bin/python3
"""bench/failover.py ROUNDS - the failover benchmark's driver (run by
bench/run_failover.sh, which builds the release binaries and names them in
PX_BUILD_DIR): how long LOCKs go unanswered after each fault a cluster is
meant to survive. Not a test: it prints figures for docs/benchmarks.md.

Set-up (the fault harness, tests/cluster/pxcluster.py, and the integration
helpers, tests/integration/pxtest.py): a 3-broker KRaft cluster (RF 3,
min ISR 2), two processors p1 and p2 in one group (the product's defaults
and PX_BENCH_FAILOVER_ARGS), one gateway, and the probe: one WebSocket
client per entity (ENTITIES of them, over every partition), each holding a
tab and sending a LOCK on its field every 100 ms (at most 10 awaiting an
outcome). Each round then runs, in order, waiting after each until every
entity has been answered for 3 s:

  processor-restart  kill -9 of p1, started again at once under its name
  processor-dead     kill -9 of p2, left dead (started again after the figure)
  broker-follower    kill -9 of a broker that is not the quorum's leader
                     and leads partitions of the locks topic (restarted after)
  broker-controller  kill -9 of the quorum's leader (restarted after)
  preferred-election a preferred-leader election (LeaderElectionCommand;
                     the time counts from the first metadata, polled every
                     0.1 s, that shows a leader moved)

Per fault: for every entity, the time from the fault to the first LOCK_ACK
of a LOCK sent at or after the fault; an entity is affected when that is
over AFFECTED_S. Printed: the first and the last affected entity's time
(min and max), the longest time any entity went without a LOCK_ACK around
the fault, the LOCKs that ended in ERROR, and the processors that exited
(a processor that exits is started again and counted). The summary gives
each figure's median and range over the rounds.
"""
import asyncio
import json
import os
import signal
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import pxcluster  # noqa: E402
import pxtest  # noqa: E402

import websockets  # noqa: E402

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ENTITIES = int(os.environ.get("PX_BENCH_FAILOVER_ENTITIES", "24"))
EXTRA = os.environ.get("PX_BENCH_FAILOVER_ARGS", "").split()
AFFECTED_S = 0.5
SEND_EVERY_S = 0.1
MAX_PENDING = 10
T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class LockProbe:
    """The probe clients, on an asyncio loop of their own thread. For
    entity i: acks[i] is a list of (sent, received) per LOCK_ACK, errors[i]
    of (received, code)."""

    def __init__(self, stack, tenant, n):
        self.stack, self.tenant, self.n = stack, tenant, n
        self.acks = [[] for _ in range(n)]
        self.errors = [[] for _ in range(n)]
        self.lock = threading.Lock()
        self.halt = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.halt = True
        self.thread.join(30)

    def _run(self):
        async def clients():
            await asyncio.gather(*(self._client(i) for i in range(self.n)))
        asyncio.run(clients())

    async def _client(self, i):
        url = self.stack.ws_url(pxtest.token(f"u{i}", self.tenant, f"U{i}"))
        while not self.halt:
            try:
                async with websockets.connect(url) as ws:
                    await self._session(i, ws)
            except (OSError, websockets.exceptions.WebSocketException) as e:
                with self.lock:
                    self.errors[i].append((time.monotonic(), f"connection: {e}"))
                await asyncio.sleep(0.2)

    async def _session(self, i, ws):
        sent = {}
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": f"e{i}", "tab_id": f"tab{i}",
                                  "mode": "edit"}))

        async def reader():
            async for raw in ws:
                m, now = json.loads(raw), time.monotonic()
                rid = m.get("request_id")
                if rid not in sent:
                    continue
                t = sent.pop(rid)
                with self.lock:
                    if m.get("type") == "LOCK_ACK":
                        self.acks[i].append((t, now))
                    elif m.get("type") == "ERROR":
                        self.errors[i].append((now, m.get("code")))

        task = asyncio.ensure_future(reader())
        seq, last_hb = 0, time.monotonic()
        try:
            while not self.halt and not task.done():
                if len(sent) < MAX_PENDING:
                    seq += 1
                    rid = f"r{seq}"
                    sent[rid] = time.monotonic()
                    await ws.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": rid}))
                if time.monotonic() - last_hb > 10:
                    last_hb = time.monotonic()
                    await ws.send(json.dumps({"type": "HB"}))
                await asyncio.sleep(SEND_EVERY_S)
        finally:
            task.cancel()

    def recovery(self, t_fault):
        """Per entity: seconds from t_fault to the first LOCK_ACK of a LOCK
        sent at or after it (None: none yet)."""
        out = []
        with self.lock:
            for acks in self.acks:
                first = None
                for sent, got in reversed(acks):  # in the order received
                    if got < t_fault:
                        break
                    if sent >= t_fault and (first is None or got < first):
                        first = got
                out.append(None if first is None else first - t_fault)
        return out

    def longest_gap(self, t_from, t_to):
        """The longest time one entity went without a LOCK_ACK, from the
        last one before t_from to the first one after t_to."""
        worst = 0.0
        with self.lock:
            for acks in self.acks:
                times = []
                for _, got in reversed(acks):
                    times.append(got)
                    if got <= t_from:
                        break
                times.sort()
                seq = ([t for t in times if t <= t_from][-1:] or [t_from]) + \
                    [t for t in times if t_from < t <= t_to] + [t for t in times if t > t_to][:1]
                worst = max([worst] + [b - a for a, b in zip(seq, seq[1:])])
        return worst

    def errors_since(self, t):
        with self.lock:
            out = {}
            for errs in self.errors:
                for r, code in errs:
                    if r >= t:
                        out[code] = out.get(code, 0) + 1
            return out

    def wait_steady(self, hold=3.0, timeout=120):
        """Until every entity got a LOCK_ACK, for a LOCK sent in the last
        second, over `hold` seconds in a row."""
        t0, since = time.monotonic(), None
        while time.monotonic() - t0 < timeout:
            if not self.thread.is_alive():
                raise RuntimeError("the probe's thread ended")
            now = time.monotonic()
            with self.lock:
                ok = all(any(s >= now - 1.5 for s, _ in acks[-20:]) for acks in self.acks)
            since = (since or now) if ok else None
            if since and now - since >= hold:
                return now - t0
            time.sleep(0.1)
        raise RuntimeError(f"the probe's entities not all answered after {timeout}s")

    def wait_recovered(self, t_fault, timeout=120):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if all(r is not None for r in self.recovery(t_fault)):
                return
            time.sleep(0.1)


class LeaderWatch(threading.Thread):
    """Polls a topic's leaders (every 0.1 s) until stopped; keeps the
    first time one differs from `before`: when an election took effect,
    which the election tool's own run time (a JVM) hides."""

    def __init__(self, kc, topic, before):
        super().__init__(daemon=True)
        self.kc, self.topic, self.before = kc, topic, before
        self.moved, self.halt = None, threading.Event()

    def start(self):
        super().start()
        return self

    def run(self):
        while not self.halt.is_set() and self.moved is None:
            t = time.monotonic()
            try:
                if {p: v[0] for p, v in self.kc.partitions(self.topic).items()} != self.before:
                    self.moved = t
            except Exception:  # a metadata request during the election
                pass
            time.sleep(0.1)

    def stop(self):
        self.halt.set()
        self.join(30)
        return self.moved


class Bench:
    def __init__(self, kc, stack):
        self.kc, self.stack = kc, stack
        self.procs = {}
        self.exits = []
        self.stuck = []
        self.results = {}
        self.round_no = 0
        self.starts = 0
        self.gateways = 0

    def start_processor(self, name):
        self.starts += 1  # each start its own log file
        self.procs[name] = self.stack.start_processor("--set", "http.port=0", *EXTRA,
                                                      name=f"processor-{name}-{self.starts:02d}", instance=name)

    def kill_processor(self, name):
        d = self.procs.pop(name)
        t = time.monotonic()
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        self.stack.retire(d)
        return t

    def check_exits(self, fault):
        """Processors that exited by themselves: counted, started again."""
        for name, d in list(self.procs.items()):
            if d.proc.poll() is not None:
                self.exits.append((fault, name, d.proc.returncode))
                say(f"  processor {name} EXITED with {d.proc.returncode} during {fault}: started again")
                self.stack.retire(d)
                self.start_processor(name)

    def measure(self, probe, fault, t_fault, t_end_of_fault=None):
        probe.wait_recovered(t_fault, timeout=90)
        rec = probe.recovery(t_fault)
        answered = [r for r in rec if r is not None]
        # the gaps over the whole stall: from the fault until every entity
        # was answered again (or the fault's own end, if later)
        window_end = max(t_end_of_fault or t_fault, t_fault + (max(answered) if answered else 90.0)) + 0.5
        gap = probe.longest_gap(t_fault, window_end)
        self.check_exits(fault)
        affected = sorted(r for r in rec if r is not None and r > AFFECTED_S)
        unanswered = sum(1 for r in rec if r is None)
        worst = max((r for r in rec if r is not None), default=None)
        res = {"affected": len(affected), "first": affected[0] if affected else None,
               "last": affected[-1] if affected else None, "worst": worst, "gap": gap,
               "errors": probe.errors_since(t_fault), "unanswered": unanswered,
               "exits": sum(1 for f, _, _ in self.exits if f == fault)}
        self.results.setdefault(fault, []).append(res)
        fmt = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
        num = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"result fault={fault} round={self.round_no} entities={len(rec)} affected={len(affected)} "
              f"first={num(res['first'])} last={num(res['last'])} gap={gap:.2f} "
              f"errors={sum(res['errors'].values())} unanswered={unanswered} exits={res['exits']}", flush=True)
        say(f"  {fault}: affected {len(affected)} of {len(rec)} entities; first LOCK_ACK after the fault: "
            f"first affected {fmt(res['first'])}, last {fmt(res['last'])}; longest gap {gap:.2f} s; "
            f"errors {res['errors'] or 'none'}; unanswered {unanswered}; processor exits {res['exits']}")
        return res

    def steady(self, probe, after):
        """Until every entity is answered again. A group that does not get
        there in 90 s (a processor stuck) is counted against the fault
        before it; both processors are then killed and started again so
        the next fault starts from a working system."""
        try:
            probe.wait_steady(timeout=90)
        except RuntimeError as e:
            self.stuck.append(after)
            say(f"  NOT ANSWERING 90 s after {after} ({e}): both processors and the gateway killed and "
                "started again")
            for name in list(self.procs):
                self.kill_processor(name)
                self.start_processor(name)
            self.restart_gateway()
            probe.wait_steady(timeout=180)
        self.check_exits(after)

    def restart_gateway(self):
        """kill -9 of the gateway (its log kept beside it), started again on
        its port; the probe's clients connect again by themselves."""
        gw = next(d for d in self.stack.daemons if d.name == "gateway")
        gw.proc.send_signal(signal.SIGKILL)
        gw.proc.wait()
        self.stack.retire(gw)
        gw.log.close()
        self.gateways += 1
        os.replace(gw.log_path, f"{gw.log_path}.{self.gateways}")
        self.stack.start_gateway()

    def restore_broker(self, n, probe):
        self.steady(probe, f"node {n}'s kill")
        took = self.kc.restart(n)
        isr = self.kc.wait_isr([self.stack.topic(t) for t in ("presence.locks", "presence.heartbeats",
                                                               "presence.changes")]
                               + ["__consumer_offsets", "__transaction_state"], timeout=120)
        say(f"  node {n} restarted in {took:.1f} s, full ISR {isr:.1f} s later")
        self.steady(probe, f"node {n}'s restart")

    def round(self, probe, r):
        self.round_no = r
        say(f"round {r}")
        t = self.kill_processor("p1")
        self.start_processor("p1")
        self.measure(probe, "processor-restart", t)
        self.steady(probe, "processor-restart")

        t = self.kill_processor("p2")
        self.measure(probe, "processor-dead", t)
        self.steady(probe, "processor-dead")
        self.start_processor("p2")
        self.steady(probe, "p2's restart")

        locks = self.stack.topic("presence.locks")
        ctrl, _ = self.kc.wait_controller()
        parts = self.kc.partitions(locks)
        follower = max((n for n in self.kc.nodes() if n != ctrl),
                       key=lambda n: sum(1 for v in parts.values() if v[0] == n))
        say(f"  controller {ctrl}; killing node {follower}, leader of {locks} partitions "
            f"{[p for p, v in parts.items() if v[0] == follower]}")
        t = self.kc.kill(follower)
        self.measure(probe, "broker-follower", t)
        self.restore_broker(follower, probe)

        ctrl, _ = self.kc.wait_controller()
        say(f"  killing the controller leader, node {ctrl}, leader of {locks} partitions "
            f"{[p for p, v in self.kc.partitions(locks).items() if v[0] == ctrl]}")
        t = self.kc.kill(ctrl)
        self.measure(probe, "broker-controller", t)
        self.restore_broker(ctrl, probe)

        before = {p: v[0] for p, v in self.kc.partitions(locks).items()}
        moved = {p: v[1][0] for p, v in self.kc.partitions(locks).items() if v[0] != v[1][0]}
        watch = LeaderWatch(self.kc, locks, before).start()
        t = time.monotonic()
        took = self.kc.elect_preferred()
        t_moved = watch.stop()
        say(f"  preferred-leader election in {took:.1f} s (tool's JVM included); {locks} leaders {before}, "
            f"moved {moved or 'none'}, seen moving {'-' if t_moved is None else f'{t_moved - t:.1f} s'} "
            "after the tool's launch")
        self.measure(probe, "preferred-election", t_moved or t, t + took)
        self.steady(probe, "preferred-election")


def summary(results):
    print("\nsummary (median, range over rounds; seconds):")
    for fault, rs in results.items():
        parts = []
        for key in ("first", "last", "gap"):
            vals = [r[key] for r in rs if r[key] is not None]
            if vals:
                parts.append(f"{key} {statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
            else:
                parts.append(f"{key} -")
        parts.append(f"affected {[r['affected'] for r in rs]}")
        parts.append(f"processor exits {sum(r['exits'] for r in rs)}")
        parts.append(f"errors {[sum(r['errors'].values()) for r in rs]}")
        print(f"failover {fault}: " + "; ".join(parts))


def main():
    workdir = os.path.join(os.environ["PX_BUILD_DIR"], "bench-failover")
    kc = pxcluster.KafkaCluster(os.path.join(workdir, "stack"), brokers=3, partitions=3)
    say(f"stack.sh up --brokers 3: {kc.start():.1f} s")
    os.environ["PX_STACK_DIR"] = kc.state
    stack = pxtest.Stack("bench-failover")
    bench = Bench(kc, stack)
    probe = None
    ok = False
    try:
        bench.start_processor("p1")
        bench.start_processor("p2")
        stack.start_gateway()
        stack.wait_ready()
        probe = LockProbe(stack, pxtest.unique("t"), ENTITIES).start()
        print(f"settings: {' '.join(EXTRA) or 'the defaults'}", flush=True)
        say(f"2 processors, 1 gateway, {ENTITIES} probe clients")
        say(f"steady after {probe.wait_steady(timeout=180):.1f} s")
        for r in range(1, ROUNDS + 1):
            bench.round(probe, r)
        ok = True
    except RuntimeError as e:
        say(f"STOPPED: {e} (the figures so far follow)")
    finally:
        if probe:
            probe.stop()
        pxtest.finish(stack, ok)
        kc.stop()
    summary(bench.results)
    if bench.exits:
        print(f"processor exits: {bench.exits}")
    if bench.stuck:
        print(f"not answering 90 s after: {bench.stuck}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
