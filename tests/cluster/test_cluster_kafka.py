"""The presence system on a replicated Kafka (3 KRaft nodes, replication
factor 3, min.insync.replicas 2; the fault harness pxcluster.KafkaCluster)
with two processors (p1, p2: static members under their names) and two
gateways, through the failures a cluster exists to survive:

  follower      kill -9 of a broker that is not the quorum's leader and
                leads partitions of the locks topic, then restarted
  controller    kill -9 of the quorum's leader, then restarted
  election      a preferred-leader election
  restart       kill -9 of p1, started again at once under its name
  dead          kill -9 of p2, left dead
  gateway       kill -9 of gateway g2 (its clients reconnect to g1)

The workload: two WebSocket clients per entity, one on each gateway, race
for the lock of one field (LOCK, hold it a moment, UNLOCK) and heartbeat,
beside test_eos's random workload (heartbeats, locks, lifecycle events in
Avro and JSON) produced straight to Kafka.

Asserted: no field ever had two holders as the clients saw them (a hold
runs from its LOCK_ACK to the UNLOCK sent); every LOCK got a LOCK_ACK or a
documented error (TIMEOUT, UNAVAILABLE) unless its connection died first;
a processor that exits by itself is started again under its name, as its
supervisor would, and counted (printed with the fault); whenever a partition of the locks
topic had records waiting and its committed offset did not move for
processor.stall_ms (5 s here) and a margin, the processor that owned it
(its /readyz names its partitions) said not-ready or did not answer; after
the system is quiet, presencectl verify says EQUAL. Printed per fault: the
time from the fault to the first LOCK_ACK of a LOCK sent after it on each
affected entity (one that waited over 0.5 s): the first and the last.

Usage: test_cluster_kafka.py BUILD_DIR WORKDIR  (ctest passes both)
"""
import asyncio
import json
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pxcluster  # noqa: E402
import pxtest  # noqa: E402
import test_eos  # noqa: E402

import websockets  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

BUILD, WORKDIR = sys.argv[1], sys.argv[2]
ENTITIES = 9  # three on each partition
PARTITIONS = 3
STALL_MS = 5000
STALL_SLACK_S = 4.0  # the watchdog asks the ends every 1 s and judges every 0.25 s; readyz sampled every 0.25 s
AFFECTED_S = 0.5
DOCUMENTED = {"TIMEOUT", "UNAVAILABLE"}
T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def murmur2(data):
    """Java's (and librdkafka's murmur2_random) murmur2 of a key."""
    m, r, length = 0x5bd1e995, 24, len(data)
    h = (0x9747b28c ^ length) & 0xffffffff
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xffffffff
        k ^= k >> r
        k = (k * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    tail = length % 4
    if tail >= 3:
        h ^= data[length - tail + 2] << 16
    if tail >= 2:
        h ^= data[length - tail + 1] << 8
    if tail >= 1:
        h ^= data[length - tail]
        h = (h * m) & 0xffffffff
    h ^= h >> 13
    h = (h * m) & 0xffffffff
    h ^= h >> 15
    return h


def partition_of(key):
    return (murmur2(key.encode()) & 0x7fffffff) % PARTITIONS


class Racer:
    """One client: entity e, tab t, on gateway urls[0] (the others when it
    cannot connect). Keeps its holds, its LOCKs' outcomes and its waits."""

    def __init__(self, rig, e, t, urls):
        self.rig, self.e, self.tab, self.urls = rig, e, f"tab-{e}-{t}", urls
        self.holds = []      # (acked, released) as this client saw them
        self.outcomes = {}   # request id -> "ACK" | error code | "LOST" (its connection died)
        self.acks = []       # (sent, received) of each LOCK_ACK
        self.rng = random.Random(hash(self.tab))

    async def run(self):
        seq, first = 0, True
        while not self.rig.halt:
            for url in self.urls if not first else self.urls[:1]:
                try:
                    async with websockets.connect(url, open_timeout=5) as ws:
                        seq = await self.session(ws, seq)
                except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                    await asyncio.sleep(0.2)
                if self.rig.halt:
                    return
            first = False

    async def session(self, ws, seq):
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": self.e, "tab_id": self.tab,
                                  "mode": "edit"}))
        # what it may still hold from a connection that died: let it go
        await ws.send(json.dumps({"type": "UNLOCK", "field": "amount", "request_id": f"u{seq}"}))
        self.release(time.monotonic())
        last_hb = time.monotonic()
        while not self.rig.halt:
            seq += 1
            rid, sent = f"l{seq}", time.monotonic()
            self.outcomes[rid] = "LOST"
            await ws.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": rid}))
            m = await self.outcome(ws, rid)
            now = time.monotonic()
            if m.get("type") == "LOCK_ACK":
                self.outcomes[rid] = "ACK"
                self.acks.append((sent, now))
                if m.get("success"):
                    self.holds.append([now, None])
                    await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            else:
                self.outcomes[rid] = m.get("code")
                await asyncio.sleep(0.3)  # an ERROR (TIMEOUT, UNAVAILABLE): not in a tight loop
            # after a grant, or an outcome not known (TIMEOUT: it may be granted)
            if self.holds and self.holds[-1][1] is None or m.get("type") != "LOCK_ACK":
                await ws.send(json.dumps({"type": "UNLOCK", "field": "amount", "request_id": f"u{seq}"}))
                self.release(time.monotonic())
            if time.monotonic() - last_hb > 2:
                last_hb = time.monotonic()
                await ws.send(json.dumps({"type": "HB"}))
            await asyncio.sleep(self.rng.uniform(0.05, 0.2))
        return seq

    async def outcome(self, ws, rid):
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if m.get("request_id") == rid and m.get("type") in ("LOCK_ACK", "ERROR"):
                return m

    def release(self, t):
        if self.holds and self.holds[-1][1] is None:
            self.holds[-1][1] = t


class Rig:
    """The clients (on an asyncio loop of their own thread) and the
    samplers: each processor's /readyz and each locks partition's
    committed offset and end, every 0.25 s."""

    def __init__(self, stack, tenant, gw_urls, procs):
        self.stack, self.procs = stack, procs
        self.halt = False
        ids, per = [], {}
        for i in range(1000):  # entity ids spread evenly over the partitions
            p = partition_of(f"{tenant}:order:e{i}")
            if per.get(p, 0) < ENTITIES // PARTITIONS:
                per[p] = per.get(p, 0) + 1
                ids.append(f"e{i}")
        self.racers = [Racer(self, e, t, gw_urls[t:] + gw_urls[:t]) for e in ids for t in range(2)]
        self.ready = []    # (t, name, answered, ready, body)
        self.offsets = []  # (t, partition, committed, end)
        self.threads = [threading.Thread(target=self._clients, daemon=True),
                        threading.Thread(target=self._sample, daemon=True)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def stop(self):
        self.halt = True
        for t in self.threads:
            t.join(60)

    def _clients(self):
        async def all_():
            await asyncio.gather(*(r.run() for r in self.racers))
        asyncio.run(all_())

    def _sample(self):
        locks = self.stack.topic("presence.locks")
        c = Consumer({"bootstrap.servers": self.stack.env["KAFKA_BOOTSTRAP"], "group.id": self.stack.group,
                      "isolation.level": "read_uncommitted", "enable.auto.commit": False})
        ends = Consumer({"bootstrap.servers": self.stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("e-"),
                         "isolation.level": "read_committed", "enable.auto.commit": False})
        tps = [TopicPartition(locks, p) for p in range(PARTITIONS)]
        while not self.halt:
            now = time.monotonic()
            for name, port in list(self.procs.items()):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                        self.ready.append((now, name, True, True, r.read().decode()))
                except urllib.error.HTTPError as e:
                    self.ready.append((now, name, True, False, e.read().decode()))
                except OSError:
                    self.ready.append((now, name, False, False, ""))
            try:
                for tp in c.committed(tps, timeout=2):
                    end = ends.get_watermark_offsets(TopicPartition(locks, tp.partition), timeout=2, cached=False)
                    self.offsets.append((now, tp.partition, tp.offset, end[1] if end else -1))
            except Exception:  # a leader or the coordinator away: no sample
                pass
            time.sleep(0.25)
        c.close()
        ends.close()

    # --- what the clients saw ------------------------------------------------
    def recovery(self, t_fault, on=None):
        """Per entity: seconds from t_fault to the first LOCK_ACK of a LOCK
        sent at or after it (None: none yet), over the clients whose own
        gateway is `on` (None: all)."""
        out = {}
        for r in self.racers:
            if on is not None and not r.urls[0].startswith(on):
                continue
            firsts = [got - t_fault for sent, got in list(r.acks) if sent >= t_fault]
            best = min(firsts) if firsts else None
            prev = out.get(r.e)
            out[r.e] = best if prev is None else prev if best is None else min(prev, best)
        return out

    def wait_recovered(self, t_fault, on=None, timeout=90, supervise=None):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if supervise:
                supervise()
            rec = self.recovery(t_fault, on)
            if all(v is not None for v in rec.values()):
                return rec
            time.sleep(0.2)
        raise AssertionError(f"entities not answered {timeout} s after a fault: "
                             f"{[e for e, v in self.recovery(t_fault, on).items() if v is None]}")

    def two_holders(self):
        by_entity = {}
        for r in self.racers:
            for a, b in r.holds:
                by_entity.setdefault(r.e, []).append((a, b if b is not None else time.monotonic(), r.tab))
        bad = []
        for e, hs in by_entity.items():
            hs.sort()
            for (a1, b1, t1), (a2, b2, t2) in zip(hs, hs[1:]):
                if t1 != t2 and a2 < b1:
                    bad.append((e, t1, t2, round(a2 - T0, 3), round(b1 - T0, 3)))
        return bad, sum(len(h) for h in by_entity.values())

    def owners(self, p, t_from, t_to):
        """The processors whose /readyz named partition p between the times."""
        out = set()
        for t, name, answered, _, body in self.ready:
            m = re.search(r"partitions=([0-9,]+)", body)
            if t_from <= t <= t_to and m and str(p) in m.group(1).split(","):
                out.add(name)
        return out

    def stalls(self):
        """Partitions of the locks topic with records waiting and a
        committed offset that did not move for STALL_MS + the slack:
        (partition, from, to)."""
        out = []
        for p in range(PARTITIONS):
            samples = [(t, c, e) for t, q, c, e in self.offsets if q == p]
            since = None
            for (t, c, e), nxt in zip(samples, samples[1:] + [None]):
                waiting = e > c + 1 and c >= 0
                moved = nxt is not None and nxt[1] != c
                if waiting and since is None:
                    since = t
                if since is not None and (moved or not waiting or nxt is None):
                    if t - since > STALL_MS / 1000 + STALL_SLACK_S:
                        out.append((p, since, t))
                    since = None
        return out


async def main_async(stack, kc):
    stack.tenant = pxtest.unique("t")
    common = ["--set", f"processor.stall_ms={STALL_MS}"]
    procs, ports = {}, {"p1": pxtest.free_port(), "p2": pxtest.free_port()}
    starts = [0]

    def start_processor(name):
        starts[0] += 1
        procs[name] = stack.start_processor(*common, "--set", f"ops.port={ports[name]}",
                                            name=f"processor-{name}-{starts[0]}", instance=name)

    exits = []
    current = ["start"]

    def supervise():
        """What a supervisor does: a processor that exited is started
        again under its name (counted, and printed with the fault)."""
        for name, d in list(procs.items()):
            if d.proc.poll() is not None:
                exits.append((current[0], name, d.proc.returncode))
                say(f"  processor {name} EXITED with {d.proc.returncode} during {current[0]}: started again")
                stack.retire(d)
                start_processor(name)

    def kill_processor(name):
        supervise()
        d = procs.pop(name)
        t = time.monotonic()
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        stack.retire(d)
        return t

    start_processor("p1")
    start_processor("p2")
    gw_ports = [stack.http_port, pxtest.free_port()]
    gws = [stack.start_gateway(name=f"gateway-{i + 1}", port=gw_ports[i]) for i in range(2)]
    for port in gw_ports:
        stack.wait_ready(port=port)
    tenant = pxtest.unique("r")  # the clients' own tenant: the workload's LOCKs never hold their field
    tok = lambda i: pxtest.token(f"u{i}", tenant, f"U{i}")  # noqa: E731
    urls = [f"ws://127.0.0.1:{p}/ws/presence?access_token=" for p in gw_ports]
    stop, counts = threading.Event(), {"produced": 0}
    load = threading.Thread(target=test_eos.workload, args=(stack, stop, counts), daemon=True)
    rig = Rig(stack, tenant, urls, ports)
    for r in rig.racers:  # each client its own user
        r.urls = [u + tok(hash(r.tab) % 1000) for u in r.urls]
    load.start()
    rig.start()
    say(f"2 processors, 2 gateways, {len(rig.racers)} clients on {ENTITIES} entities "
        f"(partitions {sorted(partition_of(f'{tenant}:order:{r.e}') for r in rig.racers[::2])})")
    rig.wait_recovered(time.monotonic() - 0.01, timeout=120)
    say("every entity answered: faults begin")
    figures = {}

    def measure(fault, t_fault, on=None):
        current[0] = fault
        rec = rig.wait_recovered(t_fault, on, supervise=supervise)
        affected = sorted(v for v in rec.values() if v > AFFECTED_S)
        figures[fault] = (len(affected), affected[0] if affected else None, affected[-1] if affected else None,
                          max(rec.values()))
        say(f"{fault}: first LOCK_ACK after the fault on every entity within {max(rec.values()):.2f} s; "
            f"affected (over {AFFECTED_S} s) {len(affected)} of {len(rec)}"
            + (f": first {affected[0]:.2f} s, last {affected[-1]:.2f} s" if affected else ""))
        supervise()

    locks = stack.topic("presence.locks")
    watched = [locks, stack.topic("presence.heartbeats"), "__consumer_offsets", "__transaction_state"]
    ctrl, _ = kc.wait_controller()
    parts = kc.partitions(locks)
    follower = max((n for n in kc.nodes() if n != ctrl), key=lambda n: sum(1 for v in parts.values() if v[0] == n))
    say(f"follower: node {follower} (controller {ctrl}) leads {locks} {[p for p, v in parts.items() if v[0] == follower]}")
    measure("follower", kc.kill(follower))
    say(f"  node {follower} back in {kc.restart(follower):.1f} s, full ISR {kc.wait_isr(watched, 120):.1f} s later")

    ctrl, _ = kc.wait_controller()
    say(f"controller: node {ctrl} leads {[p for p, v in kc.partitions(locks).items() if v[0] == ctrl]}")
    measure("controller", kc.kill(ctrl))
    say(f"  node {ctrl} back in {kc.restart(ctrl):.1f} s, full ISR {kc.wait_isr(watched, 120):.1f} s later")

    t = time.monotonic()
    took = kc.elect_preferred(locks)
    say(f"election: {locks} leaders back to their preferred replicas in {took:.1f} s (the tool's JVM included)")
    measure("election", t)

    t = kill_processor("p1")
    start_processor("p1")
    measure("restart", t)
    t = kill_processor("p2")
    del ports["p2"]
    measure("dead", t)
    t = time.monotonic()
    gws[1].proc.send_signal(signal.SIGKILL)
    gws[1].proc.wait()
    stack.retire(gws[1])
    measure("gateway", t, on=urls[1])
    time.sleep(2)

    supervise()
    stop.set()
    load.join(60)
    rig.stop()
    say(f"workload: {counts['produced']} records produced beside the clients")
    bad, holds = rig.two_holders()
    assert not bad, f"two holders of one field as the clients saw them: {bad[:5]}"
    outcomes = {}
    for r in rig.racers:
        for o in r.outcomes.values():
            outcomes[o] = outcomes.get(o, 0) + 1
    say(f"{holds} holds, none overlapping; LOCK outcomes {outcomes}")
    undocumented = {o: n for o, n in outcomes.items() if o not in DOCUMENTED | {"ACK", "LOST"}}
    assert not undocumented, f"LOCKs ended in undocumented outcomes: {undocumented}"
    stalls = rig.stalls()
    for p, t_from, t_to in stalls:
        owners = rig.owners(p, t_from, t_from + STALL_MS / 1000)
        seen = [(t, name, ans, ok) for t, name, ans, ok, _ in rig.ready
                if name in owners and t_from + STALL_MS / 1000 + STALL_SLACK_S <= t <= t_to]
        say(f"stall of {locks} [{p}] {t_from - T0:.1f}-{t_to - T0:.1f} s: owners {sorted(owners) or 'none'}, "
            f"not ready in {sum(1 for s in seen if not s[3])} of {len(seen)} samples")
        for name in owners:
            mine = [s for s in seen if s[1] == name]
            assert not mine or any(not ok for _, _, _, ok in mine), \
                f"{name} owned {locks} [{p}], stalled {t_from - T0:.1f}-{t_to - T0:.1f} s, and said ready throughout"
    say(f"{len(stalls)} stalls over {STALL_MS} ms + {STALL_SLACK_S} s seen in {locks}")
    test_eos.settle_and_verify(stack, ttls=())
    say("verify: EQUAL")
    say(f"processor exits (restarted as a supervisor would): {exits or 'none'}")
    fenced = [e for e in exits if e[0] in ("follower", "controller", "election")]
    print(f"processor exits on a broker's failure: {len(fenced)}", flush=True)
    print("figures (seconds from the fault to the first LOCK_ACK; affected entities, first, last, slowest entity):")
    for fault, (n, first, last, worst) in figures.items():
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        print(f"  {fault:10s} affected {n} first {fmt(first)} last {fmt(last)} slowest {worst:.2f}", flush=True)


def main():
    kc = pxcluster.KafkaCluster(os.path.join(WORKDIR, "stack"), brokers=3, partitions=PARTITIONS)
    say(f"stack.sh up --brokers 3: {kc.start():.1f} s")
    os.environ.update(PX_STACK_DIR=kc.state, PX_BUILD_DIR=BUILD,
                      PX_SOURCE_DIR=os.path.dirname(os.path.dirname(HERE)))
    stack = pxtest.Stack("test_cluster_kafka")
    ok = False
    try:
        asyncio.run(main_async(stack, kc))
        ok = True
    finally:
        ok = pxtest.finish(stack, ok)
        say(f"stack.sh down: {kc.stop():.1f} s")
    print(f"test_cluster_kafka: {'1 passed, 0 failed' if ok else '0 passed, 1 failed'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
