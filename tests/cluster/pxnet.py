"""pxnet.py - hosts of their own for the fault harness (pxcluster.py, which
exports NetHost): a network namespace joined to the root namespace by one
veth pair per named link, a private /30 on each pair, processes run inside
it, and each link cut and healed on its own.

    h = NetHost("p1", links=("kafka", "redis")).start()
    h.links["kafka"].root / .addr    # the root side's address / the host's
    h.cmd([...]) / h.popen([...])    # argv run inside (ip netns exec)
    t = h.cut("kafka")               # the host's end down; monotonic time
    h.heal("kafka")                  # up again, reachable again
    h.stop()                         # kills what runs inside, deletes it; also at exit

A server in the root namespace that a host must reach listens on the root
side's address of a link as well as on loopback (scripts/stack.sh up
--kafka-address / --redis-address), so two links cut the host off from one
server and leave it the other.

What a cut is: the host's end of the veth goes down. The host's own sends
fail at once (it has no route left: its only routes are the links'), and
the root side's route to it stays on the link (linkdown), so replies to it
are dropped there. Nothing is ever routed anywhere but across the links: a
host has no default route, and the root namespace gets no route of ours but
the links' own /30s.

Names carry the pid of the Python process that made them (namespace
pxnet-PID-NAME, root-side veth ends pxvPIDnK), so the sweep every NetHost
runs first removes what a dead run left (killing the processes still in
its namespaces), and nothing of a live run. Addresses come from
10.250.0.0/16, a /30 per link, the first ones no root interface holds,
picked under a lock file so runs at the same time get different ones.
Needs root (CAP_NET_ADMIN) and iproute2.
"""
import atexit
import fcntl
import ipaddress
import os
import re
import signal
import subprocess
import time

POOL = ipaddress.ip_network("10.250.0.0/16")
LOCK_PATH = "/tmp/pxnet.lock"
NS_RE = re.compile(r"^pxnet-(\d+)-")
VETH_RE = re.compile(r"^pxv(\d+)n\d+$")
_counter = [0]


def ip(*args, check=True):
    """Runs `ip ARGS`; returns stdout (raises with ip's message on failure)."""
    out = subprocess.run(["ip", *map(str, args)], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(map(str, args))}: {out.stderr.strip()}")
    return out.stdout


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _kill_inside(ns):
    """SIGKILLs every process in namespace ns (ip netns pids), waits for them."""
    pids = [int(p) for p in ip("netns", "pids", ns, check=False).split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _pid_alive(p) and not _zombie(p)]
        time.sleep(0.05)


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def sweep_stale():
    """Deletes the namespaces and root veth ends of runs whose process is
    gone (and kills what still runs in those namespaces). Returns the
    names removed."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        m = NS_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_inside(name)
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show").splitlines():
        dev = line.split(":")[1].strip().split("@")[0]
        m = VETH_RE.match(dev)
        if m and not _pid_alive(int(m.group(1))):
            ip("link", "del", dev, check=False)
            removed.append(dev)
    return removed


def _used_blocks():
    """The /30s of POOL that some root interface's address falls in."""
    used = set()
    for line in ip("-4", "-o", "addr", "show").splitlines():
        m = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", line)
        if m and ipaddress.ip_address(m.group(1)) in POOL:
            used.add(ipaddress.ip_network(m.group(1) + "/30", strict=False))
    return used


class Link:
    """One veth pair: `root` on the root namespace's end (dev), `addr` on
    the host's end (peer, inside the namespace)."""

    def __init__(self, name, net, dev, peer):
        self.name, self.net, self.dev, self.peer = name, net, dev, peer
        hosts = list(net.hosts())
        self.root, self.addr = str(hosts[0]), str(hosts[1])
        self.up = False

    def __repr__(self):
        return f"Link({self.name} {self.root}<->{self.addr}, {'up' if self.up else 'cut'})"


class NetHost:
    def __init__(self, name, links=("kafka", "redis")):
        if not re.fullmatch(r"[a-z0-9]{1,12}", name):
            raise ValueError(f"host name {name!r}: 1-12 of [a-z0-9]")
        self.ns = f"pxnet-{os.getpid()}-{name}"
        self.link_names = list(links)
        self.links = {}
        self.procs = []
        self.made = False

    def start(self):
        """Sweeps what dead runs left, then makes the namespace (lo up) and
        one link per name. Returns self."""
        sweep_stale()
        with open(LOCK_PATH, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            atexit.register(self.stop)
            ip("netns", "add", self.ns)
            self.made = True
            ip("-n", self.ns, "link", "set", "lo", "up")
            used = _used_blocks()
            free = (b for b in POOL.subnets(new_prefix=30) if b not in used)
            for lname in self.link_names:
                _counter[0] += 1
                link = Link(lname, next(free), f"pxv{os.getpid()}n{_counter[0]}", lname[:15])
                ip("link", "add", link.dev, "type", "veth", "peer", "name", link.peer, "netns", self.ns)
                self.links[lname] = link
                self._no_ipv6(link)
                ip("addr", "add", f"{link.root}/30", "dev", link.dev)
                ip("-n", self.ns, "addr", "add", f"{link.addr}/30", "dev", link.peer)
                ip("link", "set", link.dev, "up")
                ip("-n", self.ns, "link", "set", link.peer, "up")
                link.up = True
        self._check_routes()
        return self

    def _no_ipv6(self, link):
        """No IPv6 on either end (no link-local chatter on the pair)."""
        for path, ns in ((f"/proc/sys/net/ipv6/conf/{link.dev}/disable_ipv6", None),
                         (f"/proc/sys/net/ipv6/conf/{link.peer}/disable_ipv6", self.ns)):
            if ns is None:
                if os.path.exists(path):
                    with open(path, "w") as f:
                        f.write("1")
            else:
                subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"[ ! -e {path} ] || echo 1 > {path}"],
                               check=True, timeout=10)

    def _check_routes(self):
        """The host routes only across its links: no default route."""
        routes = ip("-n", self.ns, "-4", "route", "show").splitlines()
        nets = {str(l.net) for l in self.links.values()}
        stray = [r for r in routes if r.split()[0] not in nets]
        if stray:
            raise RuntimeError(f"{self.ns}: routes beyond its links: {stray}")

    def stop(self):
        """Kills every process inside, deletes the namespace (its veth ends
        go with it, and so do their root peers)."""
        if not self.made:
            return
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        _kill_inside(self.ns)
        ip("netns", "del", self.ns, check=False)
        for link in self.links.values():
            ip("link", "del", link.dev, check=False)  # gone with its peer already, normally
        self.made = False

    # --- processes -------------------------------------------------------
    def cmd(self, argv):
        """argv wrapped to run inside the namespace (ip netns exec execs the
        program itself: the pid a Popen gets is the program's)."""
        return ["ip", "netns", "exec", self.ns, *map(str, argv)]

    def popen(self, argv, **kw):
        """A process inside, killed at stop()."""
        p = subprocess.Popen(self.cmd(argv), **kw)
        self.procs.append(p)
        return p

    def run(self, argv, **kw):
        return subprocess.run(self.cmd(argv), **kw)

    # --- faults ----------------------------------------------------------
    def cut(self, lname):
        """Takes the host's end of link lname down. Returns the monotonic
        time of the cut."""
        link = self.links[lname]
        ip("-n", self.ns, "link", "set", link.peer, "down")
        link.up = False
        return time.monotonic()

    def heal(self, lname):
        """Brings the host's end up again and waits (10 s at most) until
        the root side answers across it. Returns the monotonic time it is
        up again."""
        link = self.links[lname]
        ip("-n", self.ns, "link", "set", link.peer, "up")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if "state UP" in ip("-n", self.ns, "link", "show", link.peer) and \
                    "linkdown" not in ip("-n", self.ns, "-4", "route", "show", "dev", link.peer):
                link.up = True
                return time.monotonic()
            time.sleep(0.02)
        raise RuntimeError(f"{self.ns}: link {lname} not up 10 s after the heal")

    def reaches(self, addr, port, timeout=1.0):
        """Whether a TCP connection from inside the host to addr:port opens."""
        code = ("import socket,sys\n"
                "s=socket.socket(); s.settimeout(float(sys.argv[3]))\n"
                "try:\n s.connect((sys.argv[1], int(sys.argv[2])))\nexcept OSError:\n sys.exit(1)\n")
        return self.run(["/usr/bin/python3", "-c", code, addr, port, timeout],
                        capture_output=True, timeout=timeout + 10).returncode == 0
