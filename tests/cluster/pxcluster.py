"""pxcluster.py - the fault harness of the cluster tests: real servers on
loopback ports, started, killed and restarted by role, with failovers and
slot moves forced on demand and each gap timed.

    rc = RedisCluster(workdir, masters=3, replicas=1)   # 3 + 3 nodes
    rc.start()                       # free ports, cluster create, wait ok
    rc.master_of(slot) / rc.masters() / rc.replicas_of(node)
    rc.kill(node) / rc.restart(node) # SIGKILL, then the same port and dir
    rc.failover(replica)             # CLUSTER FAILOVER on a replica
    rc.migrate_slot(slot, to, keys=None)  # move one slot (or begin to)
    rc.wait_ok()                     # cluster_state:ok on every live node
    rc.wait_replicas()               # every replica's link up, roles agreed
    rc.stop()                        # also at exit

    rs = RedisServer(workdir).start() # one plain server (no cluster)
    rs.addr / rs.socket              # "127.0.0.1:port" and its Unix socket
    rs.kill() / rs.restart() / rs.cli(...) / rs.role()

    st = RedisSentinel(workdir, replicas=1, sentinels=3)  # Sentinel-watched master
    st.start()                       # master, replicas, Sentinels; all agreed
    st.sentinels / st.name           # "127.0.0.1:p,..." and the master's name
    st.master() / st.replicas()      # servers by their own ROLE
    st.named_master()                # the server the live Sentinels all name
    st.detach(replica)               # REPLICAOF NO ONE: it keeps what it has
                                     # (detachable=True: the Sentinels cannot undo it)
    st.kill(server) / st.restart(server)      # SIGKILL; same port and dir
    st.wait_master(other_than=srv)   # until the Sentinels name a new master
    st.failover()                    # SENTINEL FAILOVER (no kill)
    st.kill_sentinel(i) / st.stop()

    kc = KafkaCluster(state_dir, brokers=3)  # scripts/stack.sh up --brokers 3
    kc.start()                       # N KRaft nodes (broker + controller) and a Redis
    kc.nodes() / kc.addr(n) / kc.alive(n) / kc.bootstrap
    kc.controller_leader()           # the KRaft quorum's leader (quorum-state files)
    kc.describe_quorum()             # the same from MetadataQuorumCommand
    kc.leader_of(topic, p) / kc.partitions(topic)
    kc.kill(n, sig="KILL") / kc.restart(n)   # stack.sh kill-node / start-node
    kc.wait_controller(other_than=n) # until the live nodes agree on a new leader
    kc.wait_isr(topics)              # every partition with its full ISR
    kc.elect_preferred(topic=None)   # LeaderElectionCommand, PREFERRED
    kc.stop()                        # stack.sh down; also at exit

    h = NetHost("p1", links=("kafka", "redis")).start()   # pxnet.py
    kc = KafkaCluster(state, kafka_address=h.links["kafka"].root,
                      redis_address=h.links["redis"].root)
    kc.external_bootstrap / kc.external_redis  # what h reaches across its links
    h.cmd(argv) / h.popen(argv)      # run inside the host's namespace
    h.cut("kafka") / h.heal("kafka") # the host loses Kafka, keeps Redis
    h.stop()                         # also at exit; stale hosts swept at start

Every server gets its own directory and port; nothing outside loopback and
the hosts' own links is touched. Times are measured with time.monotonic() and returned to the
caller, which prints them.

The Redis side lives in pxcluster_redis.py and NetHost in pxnet.py; this
module re-exports both, so `import pxcluster` is all a test needs.
"""
import atexit
import json
import os
import re
import subprocess
import time

from pxnet import NetHost, sweep_stale  # noqa: F401  (part of the harness)
from pxcluster_redis import (  # noqa: F401  (part of the harness)
    REDIS_CLI, REDIS_SENTINEL, REDIS_SERVER, Node, RedisCluster, RedisSentinel, RedisServer, SentinelProc,
    free_ports, key_slot, redis_cli)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STACK_SH = os.path.join(REPO, "scripts", "stack.sh")
KAFKA_LIBS = os.path.join(os.environ.get("PRESENCE_CACHE", os.path.expanduser("~/.cache/presence")),
                          "kafka-3.9.1", "libs")


class KafkaCluster:
    """A KRaft cluster of N combined nodes (broker and controller) run by
    scripts/stack.sh up --brokers N in state_dir (with the stack's Redis),
    killed and restarted node by node through stack.sh kill-node and
    start-node (same config, same data). Kafka's own tools answer what
    the metadata does not: MetadataQuorumCommand (the quorum's leader) and
    LeaderElectionCommand (a preferred-leader election now instead of the
    broker's check every 5 minutes). Metadata comes from confluent-kafka
    (Debian's python3-confluent-kafka, /usr/bin/python3). kafka_address
    and redis_address: the root side of a NetHost's links, where the
    brokers (listener EXTERNAL) and Redis also listen."""

    def __init__(self, state_dir, brokers=3, partitions=3, kafka_address=None, redis_address=None):
        self.state = os.path.abspath(state_dir)
        self.brokers, self.partitions_n = brokers, partitions
        self.extra = ((["--kafka-address", kafka_address] if kafka_address else [])
                      + (["--redis-address", redis_address] if redis_address else []))
        self.env = {}
        atexit.register(self.stop)

    # --- stack.sh ------------------------------------------------------
    def _stack(self, *args, timeout=180):
        out = subprocess.run(["bash", STACK_SH, *map(str, args), "--state", self.state],
                             capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"stack.sh {' '.join(map(str, args))} failed ({out.returncode}): "
                               f"{out.stdout[-3000:]} {out.stderr[-3000:]}")
        return out.stdout

    def _read_env(self):
        env = {}
        with open(os.path.join(self.state, "stack.env")) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    env[k] = v
        self.env = env

    def start(self):
        """stack.sh down, then up --brokers N (ready: every broker in the
        metadata, the group and transaction logs with their full ISR).
        Returns the seconds it took."""
        t0 = time.monotonic()
        self._stack("down", timeout=120)
        self.log = self._stack("up", "--brokers", self.brokers, "--partitions", self.partitions_n, *self.extra,
                               timeout=300)
        self._read_env()
        return time.monotonic() - t0

    def stop(self):
        """stack.sh down (every node, Redis). Returns the seconds it took."""
        if not os.path.exists(self.state):
            return 0.0
        t0 = time.monotonic()
        self._stack("down", timeout=120)
        return time.monotonic() - t0

    # --- nodes ---------------------------------------------------------
    def nodes(self):
        """The node ids, 1..N."""
        return [int(n) for n in self.env["KAFKA_NODES"].split(",")]

    def addr(self, n):
        return self.env[f"KAFKA_NODE_{n}"]

    def node_dir(self, n):
        return self.env[f"KAFKA_NODE_{n}_DIR"]

    @property
    def bootstrap(self):
        return self.env["KAFKA_BOOTSTRAP"]

    @property
    def external_bootstrap(self):
        """The brokers' EXTERNAL listeners (kafka_address:port each)."""
        return self.env["KAFKA_EXTERNAL_BOOTSTRAP"]

    @property
    def external_redis(self):
        """(host, port) of the stack's Redis on redis_address."""
        return self.env["REDIS_EXTERNAL_HOST"], int(self.env["REDIS_PORT"])

    def pid(self, n):
        path = os.path.join(self.node_dir(n), "kafka.pid") if self.brokers > 1 else \
            os.path.join(self.state, "kafka.pid")
        try:
            return int(open(path).read().strip())
        except (OSError, ValueError):
            return None

    def alive(self, n):
        pid = self.pid(n)
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return b"kafka.Kafka" in f.read()
        except OSError:
            return False

    def live(self):
        return [n for n in self.nodes() if self.alive(n)]

    def kill(self, n, sig="KILL"):
        """stack.sh kill-node N --signal SIG (waits until the process is
        gone). Returns the time of the signal (time.monotonic()'s clock),
        from the epoch time stack.sh prints."""
        out = self._stack("kill-node", n, "--signal", sig)
        now_mono, now_wall = time.monotonic(), time.time()
        m = re.search(r"signalled at (\d+) ms", out)
        if not m:
            raise RuntimeError(f"stack.sh kill-node {n}: no signal time in {out!r}")
        return now_mono - (now_wall - int(m.group(1)) / 1000)

    def restart(self, n):
        """stack.sh start-node N: the same config and data; ready when the
        node lists itself in its metadata (registered, unfenced). Returns
        the seconds it took."""
        t0 = time.monotonic()
        self._stack("start-node", n)
        return time.monotonic() - t0

    # --- the controller quorum -------------------------------------------
    def _quorum_state(self, n):
        path = os.path.join(self.node_dir(n), "data", "__cluster_metadata-0", "quorum-state")
        try:
            with open(path) as f:
                d = json.load(f)
            return d.get("leaderEpoch", -1), d.get("leaderId", -1)
        except (OSError, ValueError):
            return None

    def controller_leader(self):
        """The quorum's leader as every live node's quorum-state file
        names it (epoch and leader agreed, the leader alive), or None
        while they disagree or vote."""
        live = self.live()
        states = {self._quorum_state(n) for n in live}
        if len(states) != 1 or None in states:
            return None
        epoch, leader = next(iter(states))
        return leader if leader in live else None

    def wait_controller(self, other_than=None, timeout=60):
        """Until the live nodes agree on a live leader (not other_than).
        Returns (leader, seconds)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            leader = self.controller_leader()
            if leader is not None and leader != other_than:
                return leader, time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"no controller leader (other than {other_than}) after {timeout}s")

    def tool(self, cls, *args, timeout=120):
        """Runs one of Kafka's command-line tools (a JVM); returns stdout."""
        log4j = os.path.join(self.state, "tools-log4j.properties")
        out = subprocess.run(["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
                              f"-Dlog4j.configuration=file:{log4j}", "-cp", os.path.join(KAFKA_LIBS, "*"),
                              cls, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{cls} {args}: exit {out.returncode}: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        return out.stdout

    def live_bootstrap(self):
        return ",".join(self.addr(n) for n in self.live())

    def describe_quorum(self):
        """MetadataQuorumCommand describe --status as a dict (LeaderId,
        LeaderEpoch, HighWatermark, MaxFollowerLag, ...)."""
        out = self.tool("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server",
                        self.live_bootstrap(), "describe", "--status")
        d = {}
        for line in out.splitlines():
            k, sep, v = line.partition(":")
            if sep:
                d[k.strip()] = v.strip()
        return d

    # --- partitions ------------------------------------------------------
    def _admin(self, via=None):
        from confluent_kafka.admin import AdminClient
        return AdminClient({"bootstrap.servers": self.addr(via) if via else self.live_bootstrap()})

    def partitions(self, topic, via=None):
        """{partition: (leader, replicas, isrs)} from the metadata of node
        via (any live node when None: brokers learn a change one by one)."""
        md = self._admin(via).list_topics(topic, timeout=10)
        tm = md.topics[topic]
        if tm.error is not None:
            raise RuntimeError(f"{topic}: {tm.error}")
        return {p: (pm.leader, list(pm.replicas), list(pm.isrs)) for p, pm in tm.partitions.items()}

    def leader_of(self, topic, partition):
        return self.partitions(topic)[partition][0]

    def wait_isr(self, topics, timeout=60):
        """Until every partition of every topic (a name or a list) has a
        leader and all its replicas in sync in every live node's metadata.
        Returns the seconds waited."""
        topics = [topics] if isinstance(topics, str) else list(topics)
        t0, last = time.monotonic(), None
        while time.monotonic() - t0 < timeout:
            try:
                short = [(n, t, p, v) for n in self.live() for t in topics
                         for p, v in self.partitions(t, via=n).items()
                         if v[0] < 0 or sorted(v[1]) != sorted(v[2])]
            except Exception as e:  # a metadata request during a failover
                short = [str(e)]
            if not short:
                return time.monotonic() - t0
            last = short
            time.sleep(0.1)
        raise RuntimeError(f"ISR not full after {timeout}s: {last}")

    def elect_preferred(self, topic=None, timeout=60):
        """A preferred-leader election (LeaderElectionCommand) for every
        partition of topic (all topics when None); waits until each of
        them is led by its preferred replica (the first) in every live
        node's metadata. Returns the seconds it took, the tool's JVM start
        included."""
        t0 = time.monotonic()
        args = ["--bootstrap-server", self.live_bootstrap(), "--election-type", "PREFERRED"]
        path = None
        if topic is None:
            args.append("--all-topic-partitions")
        else:
            path = os.path.join(self.state, f"elect-{os.getpid()}.json")
            with open(path, "w") as f:
                json.dump({"partitions": [{"topic": topic, "partition": p} for p in self.partitions(topic)]}, f)
            args += ["--path-to-json-file", path]
        try:
            self.tool("org.apache.kafka.tools.LeaderElectionCommand", *args)
        finally:
            if path:
                os.unlink(path)
        topics = [topic] if topic else [t for t in self._admin().list_topics(timeout=10).topics]
        while time.monotonic() - t0 < timeout:
            if all(v[0] == v[1][0] for n in self.live() for t in topics
                   for v in self.partitions(t, via=n).values()):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"preferred leaders not in place after {timeout}s")
