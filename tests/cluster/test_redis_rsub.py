"""The asynchronous subscriber (core/px_rsub.c) on real servers started by
the fault harness (pxcluster.py), driven by rsub_probe (publisher threads
SPUBLISH or PUBLISH on every channel every 20 ms):

  - a 3 + 3 Redis Cluster: 3 channels on each master, each SSUBSCRIBEd on
    the owner of its slot (PUBSUB SHARDNUMSUB there) and receiving, and
    1000 more that are never published on, through an 8 KiB write buffer;
  - a slot migrated: the old owner's `sunsubscribe`, the channel subscribed
    again on the new owner (on_subscribed again=1), messages from there,
    no other channel touched;
  - a master SIGKILLed: its channels subscribed again on the promoted
    replica and messages flowing; the gap is printed;
  - CLUSTER FAILOVER: likewise;
  - then every one of the 1009 channels is subscribed on a master and on no
    other node (PUBSUB SHARDCHANNELS on every node), 500 unsubscribed and
    subscribed again likewise;
  - a single plain Redis (classic SUBSCRIBE/PUBLISH, 1004 channels),
    SIGKILLed and restarted on its port, the same churn; then over its
    Unix socket.

Usage: test_redis_rsub.py PROBE WORKDIR  (ctest passes both)
"""
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pxcluster  # noqa: E402

PROBE, WORKDIR = sys.argv[1], sys.argv[2]


def now_ms():
    return int(time.monotonic() * 1000)  # CLOCK_MONOTONIC in whole ms, as the probe's t=


class Probe:
    """rsub_probe in the background; its lines parsed as they come."""
    last = None  # the probe a failure is reported with

    def __init__(self, *args):
        Probe.last = self
        self.args = args
        self.p = subprocess.Popen([PROBE, *map(str, args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.lines, self.log = [], []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, args=(self.p.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.p.stderr, self.log), daemon=True).start()

    def _read(self, f, into):
        for raw in f:
            words = raw.split()
            if not words:
                continue
            d = {"kind": words[0], "args": [w for w in words[1:] if "=" not in w]}
            d.update(w.split("=", 1) for w in words[1:] if "=" in w)
            with self.cv:
                into.append(d)
                self.cv.notify_all()
        with self.cv:
            into.append({"kind": "EOF", "args": []})
            self.cv.notify_all()

    def find(self, pred):
        with self.cv:
            return [d for d in self.lines if pred(d)]

    def wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                hit = next((d for d in self.lines if pred(d)), None)
                if hit:
                    return hit
                if self.lines and self.lines[-1]["kind"] == "EOF":
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cv.wait(left)
        self.dump()
        raise AssertionError(f"rsub_probe {self.args}: no {what} within {timeout} s")

    def dump(self):
        with self.cv:
            for d in self.lines[-40:]:
                print("probe:", d, file=sys.stderr)
            for d in self.log[-40:]:
                print("log:", " ".join([d["kind"], *d["args"]] + [f"{k}={v}" for k, v in d.items()
                                                                    if k not in ("kind", "args")]),
                      file=sys.stderr)

    def send(self, cmd):
        self.p.stdin.write(cmd + "\n")
        self.p.stdin.flush()

    def stats(self):
        t = now_ms()
        self.send("stats")
        return self.wait(lambda d: d["kind"] == "stats" and int(d["t"]) >= t, 10, "stats")

    def command(self, cmd):
        t = now_ms()
        self.send(cmd)
        self.wait(lambda d: d["kind"] == "done" and d["args"] == [cmd.split()[0]] and int(d["t"]) >= t, 10, cmd)

    def quit(self):
        self.p.stdin.write("quit\n")
        self.p.stdin.flush()
        self.p.wait(timeout=30)
        final = self.wait(lambda d: d["kind"] == "final", 5, "final line")
        return self.p.returncode, {k: v for k, v in final.items() if k not in ("kind", "args")}

    def resubscribed(self, chs, since, timeout, what):
        """Wait until every channel of chs was subscribed again after
        `since` (ms) and a message came after that; returns the latest
        confirmation time (ms)."""
        latest = 0
        for ch in chs:
            sub = self.wait(lambda d: d["kind"] == "sub" and d["ch"] == ch and d["again"] == "1"
                            and int(d["t"]) >= since, timeout, f"resubscription of {ch} ({what})")
            t = int(sub["t"])
            self.wait(lambda d: d["kind"] == "msg" and d["ch"] == ch and int(d["t"]) >= t, 10,
                      f"message on {ch} after its resubscription ({what})")
            latest = max(latest, t)
        return latest

    def gap(self, chs, since):
        """The longest message gap (ms) and the sequence numbers lost on chs
        after `since`."""
        gaps = self.find(lambda d: d["kind"] == "gap" and d["ch"] in chs and int(d["t"]) >= since)
        return max([int(g["ms"]) for g in gaps] + [0]), sum(int(g["lost"]) for g in gaps)


def wait_for(fn, want, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got == want:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {got}, not {want} after {timeout} s")
        time.sleep(0.1)


def churn(pr, total, count_on_servers, what):
    """Unsubscribe 500 of the extra channels and subscribe them again;
    the servers' own count follows."""
    pr.command("del 100 600")
    wait_for(count_on_servers, total - 500, 10, f"{what}: subscriptions on the servers after 500 unsubscribes")
    pr.command("add 100 600")
    wait_for(lambda: pr.stats()["live"], str(total), 10, f"{what}: channels confirmed after 500 subscribes")
    wait_for(count_on_servers, total, 10, f"{what}: subscriptions on the servers after 500 subscribes")


def shard_subscribers(rc, node, ch):
    out = rc.cli(node, "PUBSUB", "SHARDNUMSUB", ch).split()
    return int(out[1])


def cluster_phase():
    rc = pxcluster.RedisCluster(os.path.join(WORKDIR, "cluster"), masters=3, replicas=1).start()
    pr = Probe("cluster", rc.seeds(), 3, 150, 1000, 8192)
    pr.wait(lambda d: d["kind"] == "ready", 20, "ready")
    chans = {d["ch"]: (int(d["slot"]), d["node"]) for d in pr.find(lambda d: d["kind"] == "channel")}

    def on_servers():
        """Sharded subscriptions on every live node: masters only, once each."""
        return sum(len(rc.cli(n, "PUBSUB", "SHARDCHANNELS").split()) for n in rc._live())
    assert len(chans) == 9 and len({n for _, n in chans.values()}) == 3, chans
    for ch in chans:
        pr.wait(lambda d: d["kind"] == "msg" and d["ch"] == ch, 10, f"a message on {ch}")
    for ch, (slot, node) in chans.items():
        owner = rc.master_of(slot)
        assert owner.addr == node, (ch, owner, node)
        assert shard_subscribers(rc, owner, ch) == 1, (ch, owner)
        assert rc.cli(owner, "SPUBLISH", ch, "from redis-cli") == "1", ch  # one receiver: the probe
    assert on_servers() == 1009
    print(f"{len(chans)} channels on 3 masters: each SSUBSCRIBEd on its owner, receiving; "
          f"1009 subscriptions in all", flush=True)

    # 1. A slot migrated to another master.
    ch0 = next(iter(chans))
    slot0 = chans[ch0][0]
    src = rc.master_of(slot0)
    dst = next(m for m in rc.masters() if m.port != src.port)
    t0 = now_ms()
    rc.migrate_slot(slot0, dst)
    t_sub = pr.resubscribed([ch0], t0, 10, "slot move")
    assert shard_subscribers(rc, dst, ch0) == 1 and shard_subscribers(rc, src, ch0) == 0
    others = pr.find(lambda d: d["kind"] == "sub" and d["again"] == "1" and d["ch"] != ch0)
    assert not others, others
    down = pr.find(lambda d: d["kind"] == "state" and d["args"] == ["down"] and int(d["t"]) >= t0)
    assert down, "the sunsubscribe did not make the state down"
    first = pr.find(lambda d: d["kind"] == "msg" and d["ch"] == ch0 and int(d["t"]) >= t_sub)[0]
    print(f"slot {slot0} moved {src.port} -> {dst.port}: sunsubscribe from {src.port}, subscribed again on "
          f"{dst.port} {t_sub - int(down[0]['t'])} ms later; message gap {first['gap']} ms "
          f"({first['lost']} lost); the 8 other channels untouched", flush=True)

    # 2. A master killed with SIGKILL: its replica takes over.
    victim = rc.master_of(chans[ch0][0])  # dst: now 4 channels
    vch = [ch for ch, (slot, _) in chans.items() if rc.master_of(slot).port == victim.port]
    t_kill = int(rc.kill(victim) * 1000)
    waited = rc.wait_ok(timeout=40)
    t_sub = pr.resubscribed(vch, t_kill, 30, "SIGKILL")
    for ch in vch:
        assert shard_subscribers(rc, rc.master_of(chans[ch][0]), ch) == 1, ch
    gap, lost = pr.gap(vch, t_kill)
    assert gap > 0, "no gap measured across a master's death"
    print(f"master {victim.port} SIGKILLed: cluster ok again {waited:.1f} s after; its {len(vch)} channels "
          f"subscribed again on the promoted replica {(t_sub - t_kill) / 1000:.1f} s after the kill; "
          f"longest message gap {gap / 1000:.1f} s ({lost} messages lost)", flush=True)
    rc.restart(victim)  # rejoins as a replica
    rc.wait_ok()
    rc.wait_replicas()

    # 3. CLUSTER FAILOVER on a replica of a master that holds channels.
    m = next(rc.master_of(slot) for slot, _ in chans.values() if rc.replicas_of(rc.master_of(slot)))
    rep = rc.replicas_of(m)[0]
    fch = [ch for ch, (slot, _) in chans.items() if rc.master_of(slot).port == m.port]
    t0 = now_ms()
    took = rc.failover(rep)
    t_sub = pr.resubscribed(fch, t0, 20, "CLUSTER FAILOVER")
    for ch in fch:
        assert shard_subscribers(rc, rep, ch) == 1, ch
    gap, lost = pr.gap(fch, t0)
    print(f"CLUSTER FAILOVER {m.port} -> {rep.port} took {took:.1f} s; its {len(fch)} channels subscribed "
          f"again {(t_sub - t0) / 1000:.1f} s after it began; longest message gap {gap / 1000:.2f} s "
          f"({lost} lost)", flush=True)

    wait_for(lambda: pr.stats()["live"], "1009", 10, "channels confirmed after the faults")
    wait_for(on_servers, 1009, 10, "subscriptions on the cluster after the faults")
    churn(pr, 1009, on_servers, "cluster")
    print("after the faults: 1009 channels, each subscribed on its master and nowhere else; "
          "500 unsubscribed and subscribed again", flush=True)

    time.sleep(0.3)
    rc_, f = pr.quit()
    assert rc_ == 0, (rc_, f)
    assert f["live"] == "1009" and f["channels"] == "1009" and f["up"] == "1", f
    assert f["protocol_errors"] == "0" and f["stray"] == "0" and f["errors"] == "0", f
    assert int(f["drops"]) >= 1 and int(f["unsubscribed"]) >= 1 + len(fch), f
    assert int(f["resubscribes"]) >= 1 + len(vch) + len(fch), f
    print("subscriber: " + " ".join(f"{k}={f[k]}" for k in (
        "messages", "subscribes", "resubscribes", "unsubscribed", "moved", "refreshes", "connects",
        "connect_failures", "drops", "protocol_errors", "published", "pub_failed")), flush=True)
    rc.stop()


def single_phase():
    rs = pxcluster.RedisServer(os.path.join(WORKDIR, "single")).start()
    pr = Probe("single", rs.addr, 4, 60, 1000, 4096)
    pr.wait(lambda d: d["kind"] == "ready", 10, "ready")

    def on_server():
        return len(rs.cli("PUBSUB", "CHANNELS").split())

    assert on_server() == 1004
    chans = [d["ch"] for d in pr.find(lambda d: d["kind"] == "channel")]
    for ch in chans:
        pr.wait(lambda d: d["kind"] == "msg" and d["ch"] == ch, 10, f"a message on {ch}")
        assert rs.cli("PUBSUB", "NUMSUB", ch).split()[1] == "1", ch
    t_kill = int(rs.kill() * 1000)
    time.sleep(0.5)
    t_start = now_ms()
    rs.restart()
    t_sub = pr.resubscribed(chans, t_kill, 15, "restart")
    gap, lost = pr.gap(chans, t_kill)
    assert gap >= 500, gap
    print(f"single Redis SIGKILLed, started again {(t_start - t_kill) / 1000:.1f} s later: 1004 channels "
          f"subscribed again {(t_sub - t_kill) / 1000:.2f} s after the kill; longest message gap "
          f"{gap / 1000:.1f} s ({lost} lost)", flush=True)
    wait_for(lambda: pr.stats()["live"], "1004", 10, "channels confirmed after the restart")
    wait_for(on_server, 1004, 10, "subscriptions on the server after the restart")
    churn(pr, 1004, on_server, "single")
    rc_, f = pr.quit()
    assert rc_ == 0 and f["live"] == "1004" and f["protocol_errors"] == "0" and f["resubscribes"] == "1004", f
    assert int(f["drops"]) >= 1, f  # 2 when the first retry is accepted by the dying server's backlog

    pr = Probe("single", rs.socket, 2, 30)
    pr.wait(lambda d: d["kind"] == "ready", 10, "ready (Unix socket)")
    for ch in [d["ch"] for d in pr.find(lambda d: d["kind"] == "channel")]:
        pr.wait(lambda d: d["kind"] == "msg" and d["ch"] == ch, 10, f"a message on {ch} (Unix socket)")
    time.sleep(0.5)
    rc_, f = pr.quit()
    assert rc_ == 0 and f["live"] == "2" and int(f["messages"]) >= 20 and f["lost"] == "0", f
    print(f"over the Unix socket {rs.socket}: {f['messages']} messages on 2 channels", flush=True)
    rs.stop()


def main():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    t0 = time.monotonic()
    try:
        cluster_phase()
        single_phase()
    except BaseException:
        if Probe.last:
            Probe.last.dump()
        raise
    print(f"test_redis_rsub: PASS ({time.monotonic() - t0:.0f} s)")


if __name__ == "__main__":
    main()
