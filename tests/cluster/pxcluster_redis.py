"""pxcluster_redis.py - the Redis side of the fault harness (pxcluster.py,
which re-exports all of it; its docstring shows the use): real
redis-server and redis-sentinel processes on free loopback ports, each in
its own directory under the caller's workdir.

    RedisCluster   a Redis Cluster of masters and replicas (Node each):
                   kill, restart, CLUSTER FAILOVER, slot moves
    RedisServer    one plain server (cluster off), with a Unix socket
    RedisSentinel  a master, its replicas (RedisServer) and Sentinels
                   (SentinelProc) that fail it over
    key_slot(key)  the cluster slot of a key; free_ports(n); redis_cli(port, ...)
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import time

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
REDIS_SENTINEL = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def key_slot(key):
    """The Redis Cluster slot of a key: CRC16 (XModem) of its hash tag (the
    bytes between the first '{' and the next '}', when not empty), or of
    the whole key."""
    b = key.encode() if isinstance(key, str) else key
    lo = b.find(b"{")
    hi = b.find(b"}", lo + 1) if lo >= 0 else -1
    if lo >= 0 and hi > lo + 1:
        b = b[lo + 1:hi]
    crc = 0
    for x in b:
        crc ^= x << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc & 16383


def redis_cli(port, *args, check=True):
    """redis-cli against 127.0.0.1:port; its output, stripped. check: a
    failure to connect raises (an error reply is output, not a failure)."""
    out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *map(str, args)],
                         capture_output=True, text=True, timeout=10)
    if check and out.returncode != 0:
        raise RuntimeError(f"redis-cli {port} {args}: {out.stderr}")
    return out.stdout.strip()


class Node:
    def __init__(self, port, bus_port, workdir):
        self.port = port
        self.bus_port = bus_port  # the cluster bus, named (port + 10000 may be out of range or taken)
        self.dir = os.path.join(workdir, f"redis-{port}")
        self.proc = None

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def __repr__(self):
        return f"Node({self.port})"


class RedisCluster:
    def __init__(self, workdir, masters=3, replicas=1, node_timeout_ms=2000):
        self.workdir = workdir
        self.nmasters, self.nreplicas = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        n = masters * (1 + replicas)
        ports = free_ports(2 * n)
        self.nodes = [Node(ports[i], ports[n + i], workdir) for i in range(n)]
        atexit.register(self.stop)

    # --- processes -----------------------------------------------------
    def _spawn(self, n):
        os.makedirs(n.dir, exist_ok=True)
        log = open(os.path.join(n.dir, "redis.log"), "ab")
        n.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(n.port), "--cluster-port", str(n.bus_port), "--bind", "127.0.0.1",
             "--dir", n.dir,
             "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{n.port}.conf",
             "--cluster-node-timeout", str(self.node_timeout_ms), "--appendonly", "no", "--save", "",
             "--repl-diskless-sync-delay", "0",
             "--protected-mode", "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli(n, "PING", check=False) == "PONG":
                return
            if n.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {n.port} exited: see {n.dir}/redis.log")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {n.port} did not answer")

    def start(self):
        for n in self.nodes:
            self._spawn(n)
        out = subprocess.run([REDIS_CLI, "--cluster", "create", *[n.addr for n in self.nodes],
                              "--cluster-replicas", str(self.nreplicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"cluster create failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
        self.wait_ok()
        self.wait_replicas()
        return self

    def stop(self):
        for n in self.nodes:
            if n.proc and n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()

    def kill(self, n):
        """SIGKILL; returns the time of the kill (monotonic)."""
        t = time.monotonic()
        n.proc.send_signal(signal.SIGKILL)
        n.proc.wait()
        return t

    def restart(self, n):
        self._spawn(n)

    def alive(self, n):
        return n.proc is not None and n.proc.poll() is None

    # --- commands ------------------------------------------------------
    def cli(self, n, *args, check=True):
        return redis_cli(n.port, *args, check=check)

    def info(self, n, section="replication"):
        """INFO section as a dict; section "cluster" reads CLUSTER INFO."""
        d = {}
        text = self.cli(n, "CLUSTER", "INFO") if section == "cluster" else self.cli(n, "INFO", section)
        for line in text.splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                d[k] = v.strip()
        return d

    def node_id(self, n):
        return self.cli(n, "CLUSTER", "MYID")

    def _slots_of(self, via):
        """[(lo, hi, master_port, [replica ports])] from CLUSTER SHARDS-free parsing of CLUSTER NODES."""
        out = []
        for line in self.cli(via, "CLUSTER", "NODES").splitlines():
            f = line.split()
            if "master" not in f[2] or "fail" in f[2]:
                continue
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            for r in f[8:]:
                if r.startswith("["):
                    continue
                lo, _, hi = r.partition("-")
                out.append((int(lo), int(hi or lo), port))
        return out

    def _live(self):
        return [n for n in self.nodes if self.alive(n)]

    def master_of(self, slot):
        for lo, hi, port in self._slots_of(self._live()[0]):
            if lo <= slot <= hi:
                return self.by_port(port)
        return None

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == port)

    def masters(self):
        return [n for n in self._live() if self.info(n).get("role") == "master"]

    def replicas_of(self, m):
        mid = self.node_id(m)
        res = []
        for line in self.cli(m, "CLUSTER", "NODES").splitlines():
            f = line.split()
            if "slave" in f[2] and f[3] == mid and "fail" not in f[2]:
                res.append(self.by_port(int(f[1].split("@")[0].rsplit(":", 1)[1])))
        return res

    def wait_ok(self, timeout=30):
        """Until every live node says cluster_state:ok, they agree on the
        owner of every slot and every owner is alive (a killed master's
        replica took over). Returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            live = self._live()
            try:
                ok = all(self.info(n, "cluster").get("cluster_state") == "ok" for n in live)
                views = {tuple(sorted(self._slots_of(n))) for n in live}
            except RuntimeError:
                ok, views = False, set()
            live_ports = {n.port for n in live}
            if (ok and len(views) == 1 and sum(hi - lo + 1 for lo, hi, _ in next(iter(views))) == 16384
                    and all(port in live_ports for _, _, port in next(iter(views)))):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"cluster not ok after {timeout}s")

    def _roles_agree(self, live):
        """Every live node's CLUSTER NODES calls each live node what that
        node says it is (a restarted master is a replica by its own account
        before the others learn it, and they deny its manual failover)."""
        own = {n.port: self.info(n).get("role") == "slave" for n in live}
        for via in live:
            for line in self.cli(via, "CLUSTER", "NODES").splitlines():
                f = line.split()
                port = int(f[1].split("@")[0].rsplit(":", 1)[1])
                if port in own and ("slave" in f[2]) != own[port]:
                    return False
        return True

    def wait_replicas(self, timeout=30):
        """Until every live replica's link to its master is up (a replica
        that never synced cannot be promoted when its master dies) and
        every node agrees on who is a replica. Returns the seconds waited."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            live = self._live()
            try:
                roles = [self.info(n) for n in live]
                agree = self._roles_agree(live)
            except RuntimeError:
                roles, agree = None, False
            if roles and agree and all(r.get("master_link_status") == "up"
                                       for r in roles if r.get("role") == "slave"):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"replicas not in sync after {timeout}s")

    def failover(self, replica, mode=None):
        """CLUSTER FAILOVER [FORCE|TAKEOVER] on a replica; waits until it is
        master. Returns the seconds it took."""
        t0 = time.monotonic()
        self.cli(replica, "CLUSTER", "FAILOVER", *([mode] if mode else []))
        while time.monotonic() - t0 < 30:
            if self.info(replica).get("role") == "master":
                self.wait_ok()
                return time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"{replica} did not become master")

    def migrate_slot(self, slot, dst, finish=True, keys=None):
        """Move slot to master dst: IMPORTING/MIGRATING, MIGRATE its keys
        (only `keys` of them when given), then (finish) SETSLOT NODE on
        every master. Returns the source master."""
        src = self.master_of(slot)
        if src.port == dst.port:
            raise ValueError("slot already on dst")
        self.cli(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(src))
        self.cli(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(dst))
        names = keys
        if names is None:
            names = []
            while True:
                batch = self.cli(src, "CLUSTER", "GETKEYSINSLOT", slot, 1000).split()
                if not batch:
                    break
                self.cli(src, "MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *batch)
        elif names:
            self.cli(src, "MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *names)
        if finish:
            for m in self.masters():
                self.cli(m, "CLUSTER", "SETSLOT", slot, "NODE", self.node_id(dst))
        return src

    def seeds(self):
        return ",".join(n.addr for n in self._live())

    def keys(self, pattern="*"):
        """{master: [key, ...]}: every key matching pattern, per live master."""
        res = {}
        for m in self.masters():
            out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(m.port), "--scan", "--pattern", pattern],
                                 capture_output=True, text=True, timeout=60, check=True)
            res[m] = out.stdout.split()
        return res

    def copy_to(self, server, pattern="*"):
        """Copy every key matching pattern from every master into one plain
        server (MIGRATE COPY REPLACE, TTLs kept), so tools that read one
        server can read the cluster's data. Returns how many were copied."""
        n = 0
        for m, names in self.keys(pattern).items():
            if not names:
                continue
            cmds = "".join(f"MIGRATE 127.0.0.1 {server.port} {k} 0 10000 COPY REPLACE\n" for k in names)
            out = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(m.port)], input=cmds,
                                 capture_output=True, text=True, timeout=120)
            bad = [line for line in out.stdout.splitlines() if line.strip() not in ("OK", "NOKEY")]
            if out.returncode != 0 or bad:
                raise RuntimeError(f"copy from {m.port}: {bad[:5]} {out.stderr[-500:]}")
            n += len(names)
        return n


class RedisServer:
    """One plain redis-server (cluster off) on a free loopback port, with a
    Unix socket in its directory: the single-server side of the tests.
    args are more redis-server options (a replica's --replicaof ...)."""

    def __init__(self, workdir, port=None, args=()):
        self.port = port or free_ports(1)[0]
        self.dir = os.path.join(workdir, f"redis-single-{self.port}")
        self.socket = os.path.join(self.dir, "redis.sock")
        self.args = list(args)
        self.proc = None
        atexit.register(self.stop)

    def __repr__(self):
        return f"RedisServer({self.port})"

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        log = open(os.path.join(self.dir, "redis.log"), "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--unixsocket", self.socket, "--unixsocketperm", "700", "--appendonly", "no", "--save", "",
             "--protected-mode", "no", "--daemonize", "no", *map(str, self.args)],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli("PING", check=False) == "PONG":
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server on {self.port} exited: see {self.dir}/redis.log")
            time.sleep(0.05)
        raise RuntimeError(f"redis-server on {self.port} did not answer")

    def restart(self):
        return self.start()

    def kill(self):
        """SIGKILL; returns the time of the kill (monotonic)."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return t

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args, check=True):
        return redis_cli(self.port, *args, check=check)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def role(self):
        """"master" or "slave" as the server's ROLE says; None when it
        does not answer."""
        if not self.alive():
            return None
        out = self.cli("ROLE", check=False)
        return out.splitlines()[0] if out else None

    def info(self, section="replication"):
        d = {}
        for line in self.cli("INFO", section, check=False).splitlines():
            k, sep, v = line.partition(":")
            if sep:
                d[k] = v.strip()
        return d


class SentinelProc:
    """One redis-sentinel on a free loopback port, its config (which
    Sentinel rewrites) and log in its own directory."""

    def __init__(self, workdir, port):
        self.port = port
        self.dir = os.path.join(workdir, f"sentinel-{port}")
        self.proc = None

    def __repr__(self):
        return f"Sentinel({self.port})"

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def start(self, name, master_port, quorum, down_after_ms, failover_timeout_ms):
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "sentinel.conf")
        if not os.path.exists(conf):  # a restart keeps what Sentinel learnt
            with open(conf, "w") as f:
                f.write(f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n"
                        f"dir {self.dir}\nsentinel resolve-hostnames no\n"
                        f"sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n"
                        f"sentinel down-after-milliseconds {name} {down_after_ms}\n"
                        f"sentinel failover-timeout {name} {failover_timeout_ms}\n"
                        f"sentinel parallel-syncs {name} 1\n")
        log = open(os.path.join(self.dir, "sentinel.log"), "ab")
        self.proc = subprocess.Popen([REDIS_SENTINEL, conf], stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def cli(self, *args, check=True):
        return redis_cli(self.port, *args, check=check)

    def master_addr(self, name):
        """(host, port) SENTINEL get-master-addr-by-name answers, or None."""
        out = self.cli("SENTINEL", "get-master-addr-by-name", name, check=False).split()
        return (out[0], int(out[1])) if len(out) == 2 and out[1].isdigit() else None

    def master_info(self, name):
        """SENTINEL MASTER as a dict (num-slaves, num-other-sentinels, flags...)."""
        out = self.cli("SENTINEL", "MASTER", name, check=False).splitlines()
        return dict(zip(out[0::2], out[1::2]))


class RedisSentinel:
    """One master, `replicas` replicas of it and `sentinels` Sentinels
    (Debian's redis-sentinel) watching it as `name` with a majority
    quorum: the single-Redis-with-failover side of the tests. Servers are
    RedisServer objects (cli, role, kill, restart); a failover is made by
    killing the master (the Sentinels agree and promote a replica) or asked
    for with SENTINEL FAILOVER. detach() makes a replica that lacks the
    master's next writes (REPLICAOF NO ONE: it keeps what it has). The
    Sentinels turn such a server back into a replica about 8-18 s later
    while its master still runs, unless the set-up is detachable: the
    replicas' REPLICAOF and SLAVEOF are then renamed, so no Sentinel can
    reconfigure them (detach() uses the new name); a failover then promotes
    only a replica already detached."""

    DETACH_CMD = "px-detach-replicaof"

    def __init__(self, workdir, replicas=1, sentinels=3, name="presence", down_after_ms=1000,
                 failover_timeout_ms=5000, detachable=False):
        ports = free_ports(1 + replicas + sentinels)
        rename = (["--rename-command", "REPLICAOF", self.DETACH_CMD, "--rename-command", "SLAVEOF", "px-detach-slaveof"]
                  if detachable else [])
        self.detachable = detachable
        self.name = name
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms
        self.quorum = sentinels // 2 + 1
        self.servers = [RedisServer(workdir, ports[0], ["--repl-diskless-sync-delay", 0])]
        self.servers += [RedisServer(workdir, p, ["--replicaof", "127.0.0.1", ports[0],
                                                  "--repl-diskless-sync-delay", 0, *rename])
                         for p in ports[1:1 + replicas]]
        self.sentinel_procs = [SentinelProc(workdir, p) for p in ports[1 + replicas:]]
        self.first_master_port = ports[0]
        atexit.register(self.stop)

    @property
    def sentinels(self):
        """The Sentinels as redis.sentinels takes them."""
        return ",".join(s.addr for s in self.sentinel_procs)

    def start(self, timeout=30):
        """Starts everything; ready when every replica's link is up and
        every Sentinel knows the master, every replica and the other
        Sentinels. Returns the seconds it took."""
        t0 = time.monotonic()
        for srv in self.servers:
            srv.start()
        for s in self.sentinel_procs:
            s.start(self.name, self.first_master_port, self.quorum, self.down_after_ms, self.failover_timeout_ms)
        nrep, nother = len(self.servers) - 1, len(self.sentinel_procs) - 1
        while time.monotonic() - t0 < timeout:
            links = all(r.info().get("master_link_status") == "up" for r in self.servers[1:])
            views = [s.master_info(self.name) for s in self.sentinel_procs]
            if links and all(v.get("num-slaves") == str(nrep) and v.get("num-other-sentinels") == str(nother)
                             for v in views):
                return time.monotonic() - t0
            for s in self.sentinel_procs:
                if not s.alive():
                    raise RuntimeError(f"{s} exited: see {s.dir}/sentinel.log")
            time.sleep(0.1)
        raise RuntimeError(f"Sentinel set-up not ready after {timeout}s")

    def stop(self):
        for s in self.sentinel_procs:
            s.stop()
        for srv in self.servers:
            srv.stop()

    def by_port(self, port):
        return next(srv for srv in self.servers if srv.port == port)

    def master(self):
        """The live server whose ROLE says master (None, or the first of
        several while they disagree)."""
        return next((srv for srv in self.servers if srv.role() == "master"), None)

    def replicas(self):
        return [srv for srv in self.servers if srv.role() == "slave"]

    def named_master(self):
        """The server every live Sentinel names as the master, or None while
        they disagree."""
        named = {s.master_addr(self.name) for s in self.sentinel_procs if s.alive()}
        if len(named) != 1 or None in named:
            return None
        return self.by_port(next(iter(named))[1])

    def wait_master(self, other_than=None, timeout=30):
        """Until every live Sentinel names one live server, which says it
        is master, other than `other_than`. Returns (server, seconds)."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            m = self.named_master()
            if m is not None and m is not other_than and m.role() == "master":
                return m, time.monotonic() - t0
            time.sleep(0.05)
        raise RuntimeError(f"the Sentinels named no new master (other than {other_than}) after {timeout}s")

    def wait_replica_of(self, srv, master, timeout=30):
        """Until srv replicates master with its link up. Returns seconds."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            i = srv.info()
            if (i.get("role") == "slave" and i.get("master_port") == str(master.port)
                    and i.get("master_link_status") == "up"):
                return time.monotonic() - t0
            time.sleep(0.1)
        raise RuntimeError(f"{srv} is not a replica of {master} in sync after {timeout}s")

    def detach(self, replica):
        """REPLICAOF NO ONE on a replica: it keeps the data it has and
        takes no more of the master's writes. Returns the time (monotonic)."""
        t = time.monotonic()
        out = replica.cli(self.DETACH_CMD if self.detachable else "REPLICAOF", "NO", "ONE")
        if out != "OK":
            raise RuntimeError(f"{replica}: REPLICAOF NO ONE: {out}")
        return t

    def kill(self, srv):
        """SIGKILL; returns the time of the kill (monotonic)."""
        return srv.kill()

    def restart(self, srv):
        """The same port and dir; as a master with no data (no
        persistence): the Sentinels make it a replica of the new master."""
        if "--replicaof" in srv.args:
            i = srv.args.index("--replicaof")
            del srv.args[i:i + 3]
        return srv.start()

    def failover(self, timeout=30):
        """SENTINEL FAILOVER on a live Sentinel (no agreement needed, the
        master stays up); returns (new master, seconds)."""
        t0 = time.monotonic()
        old = self.named_master()
        s = next(s for s in self.sentinel_procs if s.alive())
        s.cli("SENTINEL", "FAILOVER", self.name)
        m, _ = self.wait_master(other_than=old, timeout=timeout)
        return m, time.monotonic() - t0

    def kill_sentinel(self, i):
        self.sentinel_procs[i].stop()
