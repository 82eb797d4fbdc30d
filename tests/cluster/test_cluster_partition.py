#!/usr/bin/python3
"""A network partition: a processor on a host of its own is cut off from
Kafka while it still reaches Redis, and the zombie it becomes is fenced.

A 3-broker cluster (RF 3, min ISR 2; pxcluster.KafkaCluster) listens on
loopback and on the root side of one link of a host (pxcluster.NetHost: a
network namespace with two veth links, one to the brokers, one to Redis).
Processor A runs on that host, processor B beside the brokers, in one
group, while a random workload (test_eos's: every record kind, poison
records, short ttls) runs. Then:

1. A's Kafka link is cut while it folds (batches open, transactions in
   flight); it still reaches Redis.
2. B takes every partition (A's session times out) and commits past
   where A stood on every partition.
3. A waits for its transaction in flight (in the revoke of its lost
   partitions) until it has been in flight for processor.commit_wait_ms,
   then exits 1 and its supervisor (Supervised) restarts it, still cut
   off. Meanwhile A's /readyz, probed every 0.2 s, answers
   within PROBE_BOUND_S each time: not-ready with the reason.
4. The link is healed; A rejoins the group and owns partitions again.
5. The workload stops; when the group has caught up, both stop cleanly.

Asserted: no committed change event twice in presence.changes
(read_committed); no entity's state in Redis ever went back (its
watermark vector, polled all along, always dominates what it was; its
view's version never falls); A's /readyz answered promptly and not
ready through the cut; A exited 1 by processor.commit_wait_ms (or, with
no transaction in flight, did not exit), never by its guard; A rejoined;
`presencectl verify` says EQUAL (Redis and the committed changes are an
offline fold of the input log). Printed: the times of each step and
what A logged about its exit.

Usage: test_cluster_partition.py WORKDIR (ctest sets PX_BUILD_DIR and
PX_SOURCE_DIR; the test sets PX_STACK_DIR to its cluster's state dir)
"""
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pxcluster  # noqa: E402
import pxtest  # noqa: E402
import test_eos  # noqa: E402  (its workload and its settle-and-verify)

WORKDIR = os.path.abspath(sys.argv[1])
T0 = time.monotonic()
REJOIN_HOLD_S = 5
CUT_READY_BOUND_S = 10  # a session timeout (6 s), or the loop blocked for 5 s, and a margin
PROBE_BOUND_S = 2  # each /readyz of A answers within this, cut off or not
COMMIT_WAIT_S = 30  # processor.commit_wait_ms's default
CUT_EXIT_BOUND_S = COMMIT_WAIT_S + 20  # a transaction dispatched after the cut, a margin for a loaded machine
ASSIGNED_RE = re.compile(r'msg="partitions assigned" count=(\d+)')


def say(msg):
    print(f"[{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def log_of(d, since=0):
    """The daemon's log from byte offset since."""
    d.log.flush()
    with open(d.log_path, "rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace")


def log_size(d):
    d.log.flush()
    return os.path.getsize(d.log_path)


class Supervised:
    """A processor restarted under its name whenever it exits, as its
    supervisor (systemd's Restart=, compose's restart policy) does: the
    processor ends itself, non-zero, in a state it cannot leave."""

    def __init__(self, stack, start):
        self.stack, self.start, self.exits = stack, start, []
        self.d = start(1)
        self.mark_d, self.mark_at = self.d, 0

    def check(self):
        if self.d.proc.poll() is not None:
            self.exits.append((time.monotonic() - T0, self.d.proc.returncode, self.d))
            say(f"{self.d.name} exited with {self.d.proc.returncode}: restarted under its name")
            self.stack.retire(self.d)
            self.d = self.start(len(self.exits) + 1)

    def mark(self):
        self.mark_d, self.mark_at = self.d, log_size(self.d)

    def log_since_mark(self):
        """What it logged since mark(), a restarted process's whole log."""
        return log_of(self.d, self.mark_at if self.d is self.mark_d else 0)


def wait_for(what, pred, timeout=60, daemons=(), supervised=()):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        for s in supervised:
            s.check()
        for d in daemons:
            assert d.proc.poll() is None, f"{d.name} exited with {d.proc.returncode} while waiting for {what}"
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")


class Watch(threading.Thread):
    """Polls every entity state of one tenant in Redis (one script: its
    watermark vector and its view's version, read together) and keeps
    each one that went back: a vector that does not dominate the last one
    seen, or a lower version."""

    SCRIPT = """
local out, cur = {}, "0"
repeat
  local r = redis.call("SCAN", cur, "MATCH", ARGV[1], "COUNT", 1000)
  cur = r[1]
  for _, k in ipairs(r[2]) do
    local view = redis.call("GET", string.sub(k, 1, -7) .. ":view")
    local v = -1
    if view then v = cjson.decode(view).version or -1 end
    out[#out + 1] = k
    out[#out + 1] = redis.call("HGET", k, "wm") or "-"
    out[#out + 1] = tostring(v)
  end
until cur == "0"
return out
"""

    def __init__(self, port, tenant):
        super().__init__(daemon=True)
        self.port, self.pattern = port, f"presence:{{{tenant}:*}}:state"
        self.last, self.regressions, self.polls, self.errors = {}, [], 0, []
        self.halt = threading.Event()

    def poll(self):
        out = subprocess.run(["redis-cli", "-p", str(self.port), "EVAL", self.SCRIPT, "0", self.pattern],
                             capture_output=True, text=True, timeout=10)
        rows = [r for r in out.stdout.splitlines() if r]
        if out.returncode != 0 or len(rows) % 3:
            self.errors.append(out.stdout[-200:] + out.stderr[-200:])
            return
        for k, wm, v in zip(rows[0::3], rows[1::3], rows[2::3]):
            if wm == "-":
                continue
            vec, ver = [int(x) for x in wm.split(",")], int(v)
            prev = self.last.get(k)
            if prev and (any(a < b for a, b in zip(vec, prev[0])) or (ver >= 0 and ver < prev[1])):
                self.regressions.append((time.monotonic() - T0, k, prev, (vec, ver)))
            if not prev or all(a >= b for a, b in zip(vec, prev[0])):
                self.last[k] = (vec, max(ver, prev[1]) if prev else ver)
        self.polls += 1

    def run(self):
        while not self.halt.is_set():
            self.poll()
            time.sleep(0.05)

    def stop(self):
        self.halt.set()
        self.join(30)
        self.poll()


def committed(stack):
    """The group's committed offset per (topic, partition) of the inputs."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": stack.group,
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(stack.topic(t), p) for t in ("presence.heartbeats", "presence.locks") for p in range(3)]
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()


class ReadyProbe(threading.Thread):
    """Asks a processor's /readyz every 0.2 s and keeps (time, answered
    ready, what it said, seconds it took, whether HTTP answered); a
    /readyz that does not answer is not ready."""

    def __init__(self, addr, port):
        super().__init__(daemon=True)
        self.addr, self.port, self.seen = addr, port, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            t = time.monotonic()
            ok, text, http = ready(self.addr, self.port, with_http=True)
            self.seen.append((t, ok, text, time.monotonic() - t, http))
            time.sleep(0.2)

    def stop(self):
        self.halt.set()
        self.join(30)


class Held:
    """A predicate that holds once pred() held and, `hold` seconds later,
    the same process of a Supervised still runs (a restart starts again).
    pred() need not hold all along: a loaded machine's /readyz may take
    over the probe's timeout to answer."""

    def __init__(self, pred, hold, sup):
        self.pred, self.hold, self.sup, self.since, self.d = pred, hold, sup, None, None

    def __call__(self):
        now = time.monotonic()
        if self.sup.d is not self.d:
            self.since, self.d = None, self.sup.d
        if self.since is None:
            self.since = now if self.pred() else None
            return False
        return now - self.since >= self.hold and self.d.proc.poll() is None


def owns_ready(addr, port):
    """/readyz says ready and names the partitions it owns
    (`partitions=0,2`; `partitions=none` when it owns none)."""
    ok, text = ready(addr, port)
    m = re.search(r"partitions=([0-9,]+)(\s|$)", text)
    return ok and m is not None


def ready(addr, port, with_http=False):
    """(ready, what it said), and with_http whether HTTP answered (False:
    refused, timed out)."""
    try:
        with urllib.request.urlopen(f"http://{addr}:{port}/readyz", timeout=5) as r:
            out = r.status == 200, r.read().decode().strip(), True
    except urllib.error.HTTPError as e:
        out = False, e.read().decode().strip(), True
    except OSError as e:
        out = False, str(e), False
    return out if with_http else out[:2]


class Run:
    """The processors, the workload and the watch of one test run."""

    def __init__(self, stack):
        self.stack, self.host, self.kc = stack, HOST, KC
        stack.tenant = pxtest.unique("t")
        self.common = test_eos.TTLS  # the group's timeouts and static membership: the defaults
        self.a_ops, self.a_port = self.host.links["redis"].addr, stack.proc_port
        self.redis_host, self.redis_port = self.kc.external_redis
        self.a = Supervised(stack, self.start_a)
        wait_for("A owns every partition", lambda: ASSIGNED_RE.search(log_of(self.a.d)), 60, supervised=[self.a])
        self.total = int(ASSIGNED_RE.search(log_of(self.a.d)).group(1))
        self.b = stack.start_processor(*self.common, "--set", f"ops.port={pxtest.free_port()}",
                                       name="processor-b", instance="pb")
        self.stop, self.counts = threading.Event(), {"produced": 0}
        self.load = threading.Thread(target=test_eos.workload, args=(stack, self.stop, self.counts))
        self.watch = Watch(int(stack.env["REDIS_PORT"]), stack.tenant)
        self.load.start()
        self.watch.start()

    def start_a(self, n):
        kc = self.kc
        return self.stack.start_processor(
            *self.common, "--set", f"kafka.bootstrap.servers={kc.external_bootstrap}",
            "--set", f"redis.host={self.redis_host}", "--set", f"redis.port={self.redis_port}",
            "--set", f"ops.host={self.a_ops}", "--set", f"ops.port={self.a_port}",
            name=f"processor-a{n}", instance="pa", host=self.host)

    def wait(self, what, pred, timeout):
        return wait_for(what, pred, timeout, [self.b], [self.a])

    def a_ready(self):
        return ready(self.a_ops, self.a_port)

    def steady(self):
        """Both own partitions, fold and have committed on every partition."""
        a, b, total = self.a, self.b, self.total
        self.wait("A and B share the partitions", lambda: all(
            any(0 < int(n) < total for n in ASSIGNED_RE.findall(log_of(d))) for d in (a.d, b)), 60)
        self.wait("A ready", lambda: self.a_ready()[0], 60)
        self.wait("offsets committed on every partition", lambda: all(
            o >= 0 for o in committed(self.stack).values()), 60)
        time.sleep(2)
        say(f"A (on {self.host.ns}) and B share {total} partitions; {self.counts['produced']} records produced; "
            f"A: {self.a_ready()[1]}")

    def cut(self):
        """1. A loses Kafka, keeps Redis, while it folds; 2. B takes every
        partition and commits past A's last offsets."""
        host, b = self.host, self.b
        before = committed(self.stack)
        b_at = log_size(b)
        self.probe = ReadyProbe(self.a_ops, self.a_port)
        self.t_cut = t_cut = host.cut("kafka")
        self.probe.start()
        assert host.reaches(self.redis_host, self.redis_port), "the host lost Redis with Kafka"
        broker = self.kc.external_bootstrap.split(",")[0].rsplit(":", 1)
        assert not host.reaches(*broker), "the host still reaches Kafka"
        say(f"A's Kafka link cut (Redis still reachable); committed offsets {sorted(before.values())}")
        self.wait("B owns every partition", lambda: any(
            int(n) == self.total for n in ASSIGNED_RE.findall(log_of(b, b_at))), 60)
        say(f"B owns every partition {time.monotonic() - t_cut:.1f} s after the cut; A: {self.a_ready()[1]}")
        self.wait("B commits past A's offsets on every partition", lambda: all(
            o > before[k] for k, o in committed(self.stack).items()), 90)
        say(f"B committed past A's offsets on every partition {time.monotonic() - t_cut:.1f} s after the cut; "
            f"A: {self.a_ready()[1]}")
        for line in log_of(b, b_at).splitlines():
            if "fenced a departed instance" in line:
                print("  B: " + line[line.index("msg="):])
        self.cut_exit()
        time.sleep(2)

    def cut_exit(self):
        """3. A, cut off, exits by processor.commit_wait_ms and is restarted;
        its restart's /readyz answers (not ready) while it is still cut
        off."""
        a, t_cut = self.a, self.t_cut
        left = max(1.0, t_cut + CUT_EXIT_BOUND_S - time.monotonic())
        try:
            self.wait("A exits, cut off", lambda: a.exits, left)
        except AssertionError:
            text = log_of(a.d)
            assert 'msg="partitions revoked"' in text, f"A neither exited nor gave up its partitions:\n{text[-3000:]}"
            say(f"A did not exit in the cut: its revoke found no transaction in flight; A: {self.a_ready()[1]}")
            return
        t, rc, d = a.exits[0]
        text = log_of(d)
        assert rc == 1 and "processor.commit_wait_ms" in text, f"A exited {rc}, not by commit_wait_ms:\n" \
            f"{text[-3000:]}"
        why = re.search(r'why="([^"]*)"', text[text.index("processor.commit_wait_ms") - 300:])
        say(f"A exited 1 {t - (t_cut - T0):.1f} s after the cut, restarted under its name; it said: "
            f"{why.group(1) if why else '?'}")
        self.wait("A's restart answers /readyz, cut off", lambda: "not-ready" in self.a_ready()[1], 30)
        say(f"A restarted, cut off: {self.a_ready()[1]}")

    def heal(self):
        """4. Healed: A rejoins (itself, or restarted by its supervisor)."""
        a, probe, t_cut = self.a, self.probe, self.t_cut
        a.mark()
        probe.stop()
        t_heal = self.host.heal("kafka")
        seen = probe.seen
        late = [(round(t - t_cut, 1), text) for t, ok, text, _, _ in seen if ok and t > t_cut + CUT_READY_BOUND_S]
        answered = [(t, text, took) for t, _, text, took, http in seen if http]
        slow = [(round(t - t_cut, 1), round(took, 2), text) for t, text, took in answered if took > PROBE_BOUND_S]
        refused = [round(t - t_cut, 1) for t, _, _, _, http in seen if not http]
        why = collections.Counter(re.sub(r"[0-9.]+s\b", "Ns", text) for t, text, _ in answered
                                  if t > t_cut + CUT_READY_BOUND_S)
        last_ready = max((t - t_cut for t, ok, _, _, _ in seen if ok), default=None)
        first_blocked = min((t - t_cut for t, text, _ in answered if "blocked=" in text), default=None)
        say(f"A's /readyz in the cut: {len(seen)} asked, {len(answered)} answered (slowest "
            f"{max((took for _, _, took in answered), default=0):.2f} s), ready "
            f"{sum(ok for _, ok, _, _, _ in seen)} times (the last {last_ready and round(last_ready, 1)} s after "
            f"the cut), blocked from {first_blocked and round(first_blocked, 1)} s, not answered at {refused} "
            f"(its restart)")
        for text, n in why.most_common(6):
            print(f"  {n:4d} x {text}")
        assert not late, f"A said ready while cut off, over {CUT_READY_BOUND_S} s after the cut: {late[:3]}"
        assert not slow, f"A's /readyz took over {PROBE_BOUND_S} s in the cut: {slow[:3]}"
        assert len(answered) >= len(seen) - 15, f"A's /readyz did not answer {len(refused)} times: {refused}"
        assert why and all("not-ready" in text for text in why), why
        say(f"A's Kafka link healed {t_heal - t_cut:.1f} s after the cut")
        self.wait("A owns partitions again", lambda: any(
            0 < int(n) < self.total for n in ASSIGNED_RE.findall(a.log_since_mark())), 90)
        say(f"A owns partitions again {time.monotonic() - t_heal:.1f} s after the heal")
        held = Held(lambda: owns_ready(self.a_ops, self.a_port), REJOIN_HOLD_S, a)
        self.wait(f"A ready with partitions, the same process running {REJOIN_HOLD_S} s later", held, 90)
        say(f"A ready with partitions {held.since - t_heal:.1f} s after the heal, and still running "
            f"{REJOIN_HOLD_S} s later: {self.a_ready()[1]}")
        a.check()

    def end_load(self):
        self.stop.set()
        self.load.join()
        say(f"{self.counts['produced']} records produced")
        for t, rc, d in self.a.exits:
            say(f"{d.name} exited with {rc} at {t:.1f} s; it said:")
            for line in log_of(d).splitlines():
                if "level=error" in line or "stopping" in line or "failed" in line:
                    print("    " + line[:300])

    def check(self):
        """5. Both stop cleanly once the group has caught up; verify; no
        change event twice, no entity state went back."""
        stack, watch = self.stack, self.watch
        test_eos.settle_and_verify(stack)
        watch.stop()
        changes = stack.changes(stack.tenant, timeout=120, to_end=True)
        twice = [(k, n) for k, n in collections.Counter(tuple(sorted(c.items())) for c in changes).items() if n > 1]
        say(f"{len(changes)} committed change events, {len(twice)} twice; {watch.polls} polls of "
            f"{len(watch.last)} entity states, {len(watch.regressions)} regressions")
        assert not watch.errors, watch.errors[:3]
        assert watch.polls > 100 and len(watch.last) > 50, (watch.polls, len(watch.last))
        assert not twice, f"change events committed twice: {twice[:5]}"
        assert not watch.regressions, f"entity states that went back: {watch.regressions[:5]}"
        assert all(rc != 0 for _, rc, _ in self.a.exits), f"A exited 0 without being asked: {self.a.exits}"
        guarded = [d.name for _, _, d in self.a.exits if "the loop thread has not come back" in log_of(d)]
        assert not guarded, f"A sat blocked until its guard ended it: {guarded}"


async def test(stack):
    run = Run(stack)
    try:
        run.steady()
        run.cut()
        run.heal()
    finally:
        run.end_load()
    run.check()
    say("ok")


def main():
    global HOST, KC
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    HOST = pxcluster.NetHost("pa").start()
    say(f"host {HOST.ns}: links {list(HOST.links.values())}")
    KC = pxcluster.KafkaCluster(os.path.join(WORKDIR, "stack"), brokers=3, partitions=3,
                                kafka_address=HOST.links["kafka"].root, redis_address=HOST.links["redis"].root)
    say(f"stack.sh up --brokers 3: {KC.start():.1f} s ({KC.bootstrap}; across the link {KC.external_bootstrap})")
    os.environ["PX_STACK_DIR"] = KC.state
    pxtest.run(test, "test_cluster_partition")


if __name__ == "__main__":
    main()
