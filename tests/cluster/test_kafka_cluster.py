"""A replicated Kafka (3 KRaft nodes, each broker and controller, started
by scripts/stack.sh up --brokers 3 through the fault harness pxcluster.py)
under broker failures, with the presence topics as presencectl makes them:

1. `presencectl topics create` makes the 13 topics with replication factor
   3 and min.insync.replicas 2, and `topics check` says OK at once;
2. a follower of the test partition SIGKILLed while a producer (acks=all,
   idempotent) writes to every partition: every write is acknowledged,
   each partition's gap is printed, and `topics check` still says OK (the
   topics are configured as wanted) with a note naming the under-replicated
   partitions and the broker that is down;
3. the node restarted (same config and data) and back in every ISR;
4. the controller quorum's leader SIGKILLed: a new leader is elected
   (time printed), the producer's writes go on;
5. the node restarted, every ISR full, then a preferred-leader election
   moves the leaders back to their first replicas;
6. every acknowledged record read back once; `stack.sh down` leaves no
   process of the stack running.

Usage: test_kafka_cluster.py PRESENCECTL WORKDIR  (ctest passes both)
"""
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pxcluster  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

CTL, WORKDIR = sys.argv[1], sys.argv[2]
PREFIX = "kc."
TOPIC = PREFIX + "presence.heartbeats"
PARTITIONS = 3
T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def ctl(kc, *args, want_rc=0):
    out = subprocess.run([CTL, *args, "--set", f"kafka.bootstrap.servers={kc.bootstrap}",
                          "--set", f"topic.prefix={PREFIX}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == want_rc, f"presencectl {args}: exit {out.returncode}, want {want_rc}: " \
                                      f"{out.stdout[-3000:]} {out.stderr[-2000:]}"
    return out.stdout


class Writer(threading.Thread):
    """Produces one record to each partition every 20 ms (acks=all,
    idempotent) and keeps every acknowledgement's time per partition."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                           "linger.ms": 5, "message.timeout.ms": 120000})
        self.run_id = uuid.uuid4().hex[:12]
        self.acks = {p: [] for p in range(PARTITIONS)}
        self.errors, self.sent = [], 0
        self.halt = threading.Event()

    def _done(self, err, msg):
        if err is not None:
            self.errors.append(str(err))
        else:
            self.acks[msg.partition()].append((time.monotonic(), msg.value()))

    def run(self):
        i = 0
        while not self.halt.is_set():
            for p in range(PARTITIONS):
                self.p.produce(TOPIC, key=f"acme:order:{p}".encode(), value=f"{self.run_id}:{i}:{p}".encode(),
                               partition=p, on_delivery=self._done)
                self.sent += 1
            i += 1
            self.p.poll(0.02)
        left = self.p.flush(120)
        if left:
            self.errors.append(f"{left} records not delivered at the end")

    def stop(self):
        self.halt.set()
        self.join(150)

    def gaps(self, t_from, t_to):
        """Per partition: the longest time between two acknowledgements from
        the last one before t_from to the first one after t_to (the writes'
        outage around an event between the two)."""
        res = {}
        for p, acks in self.acks.items():
            ts = [t for t, _ in list(acks)]
            lo = max([i for i, t in enumerate(ts) if t <= t_from], default=None)
            hi = min([i for i, t in enumerate(ts) if t > t_to], default=None)
            assert lo is not None and hi is not None, f"partition {p}: no writes acknowledged around the event"
            res[p] = max(b - a for a, b in zip(ts[lo:hi + 1], ts[lo + 1:hi + 1]))
        return res

    def acked_after(self, t):
        return sum(1 for acks in self.acks.values() for ta, _ in acks if ta > t)


def wait_for(what, pred, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {timeout}s")


def read_back(kc, writer):
    """Every record of this run in the topic, from the beginning."""
    c = Consumer({"bootstrap.servers": kc.bootstrap, "group.id": "kc-" + writer.run_id,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    parts = [TopicPartition(TOPIC, p, 0) for p in range(PARTITIONS)]
    ends = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in range(PARTITIONS)}
    c.assign(parts)
    seen, done = [], {p for p in range(PARTITIONS) if ends[p] == 0}
    deadline = time.monotonic() + 60
    while len(done) < PARTITIONS and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        if m.value().startswith(writer.run_id.encode()):
            seen.append(m.value())
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    return seen


def stack_processes(state):
    """Pids of processes whose command line names the state dir."""
    res = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if state.encode() in f.read():
                        res.append(int(pid))
            except OSError:
                pass
    return res


def main():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    state = os.path.join(WORKDIR, "stack")
    kc = pxcluster.KafkaCluster(state, brokers=3, partitions=PARTITIONS)
    say(f"stack.sh up --brokers 3: {kc.start():.1f} s ({kc.bootstrap})")
    assert kc.nodes() == [1, 2, 3], kc.nodes()
    assert kc.env["KAFKA_REPLICATION_FACTOR"] == "3" and kc.env["KAFKA_MIN_INSYNC_REPLICAS"] == "2", kc.env
    for t in ("__consumer_offsets", "__transaction_state"):
        parts = kc.partitions(t)
        assert len(parts) == 3 and all(len(r) == 3 and sorted(i) == sorted(r) for _, r, i in parts.values()), \
            (t, parts)

    # 1. The topics as presencectl makes them: RF 3, min ISR 2, OK at once.
    t = time.monotonic()
    out = ctl(kc, "topics", "create", "--partitions", str(PARTITIONS))
    assert "OK: 0 of 13 topics differ" in out and \
        "(3 brokers; want replication factor 3, min.insync.replicas 2)" in out, out
    assert out.count("replicas=3  min.insync.replicas=2 ") == 13, out
    say(f"presencectl topics create: 13 topics, RF 3, min ISR 2 in {time.monotonic() - t:.1f} s")
    t = time.monotonic()
    out = ctl(kc, "topics", "check")
    assert out.startswith("ok ") and "OK: 0 of 13 topics differ" in out and "under-replicated" not in out, out
    say(f"presencectl topics check: OK in {time.monotonic() - t:.1f} s")
    kc.wait_isr(TOPIC)

    writer = Writer(kc.bootstrap)
    writer.start()
    wait_for("first writes acknowledged", lambda: all(writer.acks.values()), 30)

    # 2. A follower SIGKILLed: not the leader of partition 0, not the
    # quorum's leader (that is step 4).
    ctrl, _ = kc.wait_controller()
    leader0 = kc.leader_of(TOPIC, 0)
    follower = next(n for n in kc.nodes() if n not in (leader0, ctrl))
    led = [p for p, v in kc.partitions(TOPIC).items() if v[0] == follower]
    say(f"controller leader {ctrl}; partition 0 led by {leader0}; killing follower {follower} "
        f"(leads partitions {led})")
    t_kill = kc.kill(follower)
    fenced = wait_for(f"node {follower} out of every ISR of {TOPIC}",
                      lambda: all(follower not in v[2] for v in kc.partitions(TOPIC).values()), 60)
    say(f"node {follower} out of every ISR {fenced:.1f} s after the kill")
    t_fenced = time.monotonic()
    wait_for("writes acknowledged after the kill", lambda: all(
        any(ta > t_fenced for ta, _ in acks) for acks in writer.acks.values()), 60)
    gaps = writer.gaps(t_kill, t_fenced)
    say("acks=all writes with the follower down: gap per partition " +
        ", ".join(f"{p}: {g:.2f} s" for p, g in sorted(gaps.items())))
    assert not writer.errors, writer.errors[:5]

    # What check says with a broker down: the topics are as wanted (OK,
    # exit 0), the wanted factor stays 3, and a note names the
    # under-replicated partitions and the broker that is down.
    out = ctl(kc, "topics", "check")
    assert "OK: 0 of 13 topics differ" in out and "want replication factor 3, min.insync.replicas 2" in out, out
    assert f"down: {follower}" in out and "under-replicated" in out and "39 of 39 partitions" in out, out
    say("topics check with node down: " + out.strip().splitlines()[-1])
    say("  " + out.strip().splitlines()[-2])

    # 3. The follower back.
    say(f"node {follower} restarted (in the metadata) in {kc.restart(follower):.1f} s")
    say(f"node {follower} back in every ISR in {kc.wait_isr([TOPIC, '__consumer_offsets', '__transaction_state']):.1f} s")

    # 4. The quorum's leader SIGKILLed.
    ctrl, _ = kc.wait_controller()
    led = [p for p, v in kc.partitions(TOPIC).items() if v[0] == ctrl]
    t_kill2 = kc.kill(ctrl)
    new_ctrl, took = kc.wait_controller(other_than=ctrl, timeout=60)
    say(f"controller leader {ctrl} killed (it led partitions {led}): node {new_ctrl} elected "
        f"{time.monotonic() - t_kill2:.2f} s after the kill")
    q = kc.describe_quorum()
    assert q["LeaderId"] == str(new_ctrl), (q, new_ctrl)
    fenced = wait_for(f"node {ctrl} out of every ISR of {TOPIC}",
                      lambda: all(ctrl not in v[2] for v in kc.partitions(TOPIC).values()), 60)
    t_fenced = time.monotonic()
    say(f"node {ctrl} out of every ISR {t_fenced - t_kill2:.1f} s after the kill")
    wait_for("writes acknowledged after the controller's kill", lambda: all(
        any(ta > t_fenced for ta, _ in acks) for acks in writer.acks.values()), 60)
    gaps = writer.gaps(t_kill2, t_fenced)
    say("acks=all writes with the controller leader down: gap per partition " +
        ", ".join(f"{p}: {g:.2f} s" for p, g in sorted(gaps.items())))
    assert not writer.errors, writer.errors[:5]

    # 5. Back, full ISR, leaders moved back by a preferred election.
    say(f"node {ctrl} restarted (in the metadata) in {kc.restart(ctrl):.1f} s")
    say(f"node {ctrl} back in every ISR in {kc.wait_isr([TOPIC, '__consumer_offsets', '__transaction_state']):.1f} s")
    before = {p: v[0] for p, v in kc.partitions(TOPIC).items()}
    not_preferred = [p for p, v in kc.partitions(TOPIC).items() if v[0] != v[1][0]]
    assert not_preferred, f"every leader already preferred after two restarts: {kc.partitions(TOPIC)}"
    took = kc.elect_preferred(TOPIC)
    after = {p: v[0] for p, v in kc.partitions(TOPIC).items()}
    assert all(after[p] == v[1][0] for p, v in kc.partitions(TOPIC).items()), kc.partitions(TOPIC)
    say(f"preferred-leader election: leaders {before} -> {after} in {took:.1f} s (tool's JVM included)")
    out = ctl(kc, "topics", "check")
    assert "OK: 0 of 13 topics differ" in out and "under-replicated" not in out, out

    # 6. Every acknowledged record there once; nothing left running.
    t_stop = time.monotonic()
    writer.stop()
    assert not writer.errors, writer.errors[:5]
    acked = sorted(v for acks in writer.acks.values() for _, v in acks)
    assert len(acked) == writer.sent, (len(acked), writer.sent)
    seen = sorted(read_back(kc, writer))
    assert seen == acked, f"read back {len(seen)} records, {len(acked)} acknowledged " \
                          f"(missing {len(set(acked) - set(seen))}, extra {len(seen) - len(set(seen))})"
    say(f"{len(acked)} records acknowledged, every one read back once "
        f"({writer.acked_after(t_kill)} after the first kill; flushed in {time.monotonic() - t_stop:.1f} s)")
    say(f"stack.sh down: {kc.stop():.1f} s")
    left = stack_processes(state)
    assert not left, f"processes of the stack still running: {left}"
    assert not os.path.exists(os.path.join(state, "stack.env"))
    say("ok")


if __name__ == "__main__":
    main()
