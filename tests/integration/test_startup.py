#!/usr/bin/python3
"""Honest start-up: the daemons and scripts say when something did not
start, and clean up after themselves. Three parts, one ctest each:

  ports  (no Kafka needed) a port that is taken stops the gateway and the
         processor with exit 1 and the reason within a second, whether it
         came from --set or the program's own environment variable, and the
         gateway never says "listening" then; one environment serves both
         daemons: the shared PRESENCE_HTTP_PORT is the gateway's port only
         (the processor lists it as ignored and serves its ops endpoint on
         PRESENCE_PROCESSOR_OPS_PORT).
  reuse_port  (no Kafka needed) http.reuse_port: two gateways listen on
         one port and the kernel spreads connections over both, each
         answering its WebSocket clients; killed with SIGKILL, one leaves
         the other serving every new connection; a port held by a socket
         without SO_REUSEPORT still stops a gateway that sets it, and one
         without the setting cannot join gateways that have it. Which
         gateway took a connection: its /readyz answer on that connection
         (keep-alive, then the WebSocket upgrade) names it.
  up     scripts/up.sh with this build's binaries (--build-dir): a given
         port that is taken is refused before anything starts; a processor
         that cannot start (a typo in its own variable) makes up.sh print
         its log tail, stop what it started (Kafka and Redis included) and
         exit 1; then a run that starts with --gateways 2: the processor and
         both gateways ready, the gateways on one port, the demo page
         served, two clients that landed on different gateways see each
         other's tab and race for the same field locks with exactly one
         winner each time, a second up.sh on the same state dir refused,
         and down.sh stops every process.
  setup  two scripts/setup.sh at once on an empty PRESENCE_CACHE: while
         this test holds the cache's lock both wait; released, one fetches
         the Kafka jars into a private dir and renames it into place, the
         other finds the copy; both succeed and nothing half-made is left.

Environment: PX_BUILD_DIR, PX_SOURCE_DIR (tests/integration/CMakeLists.txt).
"""
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import websockets  # python3-websockets

BUILD = os.environ["PX_BUILD_DIR"]
SRC = os.environ["PX_SOURCE_DIR"]
GATEWAY = os.path.join(BUILD, "gateway", "presence-gateway")
PROCESSOR = os.path.join(BUILD, "processor", "presence-processor")
NOWHERE = ["--set", "kafka.bootstrap.servers=127.0.0.1:1"]  # nothing listens on port 1


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def clean_env(**extra):
    """This process's environment without any PRESENCE_* variable, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCE_")}
    env.update(extra)
    return env


def hold_port():
    """A listening socket on a free loopback port, as another program would
    hold it; returns (socket, port)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s, s.getsockname()[1]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def get(url, timeout=5):
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError:
        return 0, ""


def listening(port):
    """True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def alive(pid):
    """True while pid runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- ports -----------------------------------------------------------------

def refused_fast(argv, env, port, what, limit_s=1.0):
    """Run a daemon that must fail to listen on `port`: exit 1 within
    limit_s, the reason naming the port. Returns its output."""
    t0 = time.monotonic()
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    took = time.monotonic() - t0
    out = r.stdout + r.stderr
    log(f"{what}: exit {r.returncode} in {took:.2f} s")
    assert r.returncode == 1, (what, r.returncode, out[-2000:])
    assert took < limit_s, (what, f"took {took:.2f} s to give up", out[-2000:])
    assert f"cannot listen on 127.0.0.1:{port}" in out and "already in use" in out.lower(), (what, out[-2000:])
    assert 'msg="start-up failed"' in out, (what, out[-2000:])
    return out


def wait_log(path, text, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            if text in f.read():
                return
        assert proc.poll() is None, (path, "exited", proc.returncode, open(path).read()[-2000:])
        time.sleep(0.05)
    raise AssertionError((path, f"no {text!r} after {timeout}s", open(path).read()[-2000:]))


def part_ports():
    held, port = hold_port()
    (nothing,) = free_ports(1)  # a Redis port where nothing listens: not needed to fail
    redis = ["--set", f"redis.port={nothing}"]

    out = refused_fast([GATEWAY, "--set", f"http.port={port}"] + NOWHERE + redis, clean_env(), port,
                       "gateway, --set http.port")
    assert 'msg="listening"' not in out and 'msg="started"' not in out, out[-2000:]
    out = refused_fast([GATEWAY] + NOWHERE + redis, clean_env(PRESENCE_GATEWAY_HTTP_PORT=str(port)), port,
                       "gateway, PRESENCE_GATEWAY_HTTP_PORT")
    assert 'msg="listening"' not in out, out[-2000:]
    out = refused_fast([PROCESSOR, "--set", f"ops.port={port}"] + NOWHERE + redis, clean_env(), port,
                       "processor, --set ops.port")
    assert 'msg="ops endpoint"' not in out and "setting=ops.port" in out, out[-2000:]
    refused_fast([PROCESSOR] + NOWHERE + redis, clean_env(PRESENCE_PROCESSOR_HTTP_PORT=str(port)), port,
                 "processor, PRESENCE_PROCESSOR_HTTP_PORT (old name)")
    refused_fast([PROCESSOR, "--set", f"http.port={port}"] + NOWHERE + redis, clean_env(), port,
                 "processor, --set http.port (old name)")

    # A typo in a program's own variable stops it (exit 2), naming it.
    r = subprocess.run([PROCESSOR] + NOWHERE, env=clean_env(PRESENCE_PROCESSOR_OPS_PROT="1"), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "PRESENCE_PROCESSOR_OPS_PROT" in r.stderr and "ops.prot" in r.stderr, \
        (r.returncode, r.stderr[-1000:])
    held.close()

    # One environment for both: PRESENCE_HTTP_PORT is the gateway's port
    # only; the processor's ops endpoint is PRESENCE_PROCESSOR_OPS_PORT.
    gw_port, ops_port = free_ports(2)
    env = clean_env(PRESENCE_HTTP_PORT=str(gw_port), PRESENCE_PROCESSOR_OPS_PORT=str(ops_port),
                    PRESENCE_REDIS_PORT=str(nothing), PRESENCE_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                    PRESENCE_CACHE="/nonexistent")
    tmp = tempfile.mkdtemp(prefix="px_startup_")
    procs = []
    try:
        pr_log, gw_log = os.path.join(tmp, "processor.log"), os.path.join(tmp, "gateway.log")
        pr = subprocess.Popen([PROCESSOR], env=env, stdout=open(pr_log, "wb"), stderr=subprocess.STDOUT)
        procs.append(pr)
        wait_log(pr_log, 'msg="ops endpoint"', pr)
        text = open(pr_log).read()
        assert f"127.0.0.1:{ops_port}/metrics" in text, text[-2000:]
        ignored = re.search(r'msg="environment variables ignored[^"]*" names="([^"]*)"', text)
        assert ignored and set(ignored.group(1).split()) == {"PRESENCE_HTTP_PORT", "PRESENCE_CACHE"}, text[-2000:]
        # (without a broker the processor answers HTTP only once its
        # Kafka start-up is done: the listener is what counts here)
        assert listening(ops_port), "the processor's ops port is not open"
        assert not listening(gw_port), "the processor took the gateway's port"
        gw = subprocess.Popen([GATEWAY, "--set", "auth.dev_mode=true"], env=env, stdout=open(gw_log, "wb"),
                              stderr=subprocess.STDOUT)
        procs.append(gw)
        wait_log(gw_log, 'msg="listening"', gw)
        assert f'port={gw_port}' in open(gw_log).read()
        status, body = get(f"http://127.0.0.1:{gw_port}/")
        assert status == 200 and "<html" in body.lower(), (status, body[:200])
        assert "kafka=down" in get(f"http://127.0.0.1:{gw_port}/readyz")[1]
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(timeout=30) == 0, gw.returncode
        # the processor may still be in its Kafka start-up (no broker), where
        # SIGTERM's default action ends it
        pr.send_signal(signal.SIGTERM)
        assert pr.wait(timeout=30) in (0, -signal.SIGTERM), pr.returncode
        log(f"one environment: gateway on {gw_port}, processor ops on {ops_port}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for name in ("processor.log", "gateway.log"):
            path = os.path.join(tmp, name)
            if sys.exc_info()[0] and os.path.exists(path):
                print(f"--- {name}\n" + open(path, errors="replace").read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)


# --- reuse_port --------------------------------------------------------------

WS_UPGRADE = ("GET /ws/presence?user=alice HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
              "Sec-WebSocket-Version: 13\r\n\r\n").encode()


def read_head(s, buf=b""):
    """(head, rest): an HTTP response head read from socket s."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, ("closed during a response head", buf)
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def gateway_of(s):
    """The id of the gateway at the other end of socket s (a connection
    with no request yet), from its /readyz answer on that connection; the
    connection stays open for another request (HTTP/1.1 keep-alive)."""
    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head, body = read_head(s)
    n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < n:
        chunk = s.recv(4096)
        assert chunk, ("closed during /readyz", head, body)
        body += chunk
    m = re.search(r" id=(\S+)", body.decode())
    assert m and len(body) == n, (head, body)
    return m.group(1)


def ws_client(port):
    """(socket, gateway id): a connection to 127.0.0.1:port that told which
    gateway took it, was upgraded to a WebSocket and answers a message (a
    bad one gets an ERROR frame back)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    gw = gateway_of(s)
    s.sendall(WS_UPGRADE)
    head, frame = read_head(s)
    assert head.startswith(b"HTTP/1.1 101"), head
    payload, mask = b'{"type":"NOPE"}', b"\x01\x02\x03\x04"
    s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    while len(frame) < 2 or len(frame) < 2 + (frame[1] & 0x7F):
        chunk = s.recv(4096)
        assert chunk, ("closed before answering", frame)
        frame += chunk
    assert frame[0] == 0x81 and b'"ERROR"' in frame, frame
    return s, gw


def part_reuse_port():
    (nothing,) = free_ports(1)
    base = [GATEWAY, "--set", "auth.dev_mode=true", "--set", f"redis.port={nothing}"] + NOWHERE
    reuse = ["--set", "http.reuse_port=true"]

    # A port held by a socket without SO_REUSEPORT is not shared.
    held, port = hold_port()
    out = refused_fast(base + reuse + ["--set", f"http.port={port}"], clean_env(), port,
                       "gateway, reuse_port on a held port", limit_s=10)
    assert "http.reuse_port" in out and 'msg="listening"' not in out, out[-2000:]
    held.close()

    (port,) = free_ports(1)
    tmp = tempfile.mkdtemp(prefix="px_reuse_")
    procs = []
    try:
        for i in range(2):
            path = os.path.join(tmp, f"gw{i}.log")
            procs.append(subprocess.Popen(base + reuse + ["--set", f"http.port={port}", "--set", f"gateway.id=gw{i}"],
                                          env=clean_env(), stdout=open(path, "wb"), stderr=subprocess.STDOUT))
            wait_log(path, 'msg="listening"', procs[-1])
        # a gateway without the setting cannot join them
        refused_fast(base + ["--set", f"http.port={port}"], clean_env(), port, "gateway without reuse_port",
                     limit_s=10)

        clients = [ws_client(port) for _ in range(40)]
        counts = {gw: sum(1 for _, g in clients if g == gw) for gw in ("gw0", "gw1")}
        log(f"40 WebSocket connections on port {port}: {counts} (by the gateway that answered)")
        assert sum(counts.values()) == 40 and all(n > 0 for n in counts.values()), counts

        # SIGKILL one: its clients lose their connections, the other's keep
        # theirs, and every new connection lands on the survivor.
        procs[0].kill()
        procs[0].wait()
        for c, gw in clients:
            c.settimeout(10)
            if gw == "gw0":
                try:
                    assert c.recv(4096) == b"", "a killed gateway's connection still delivers data"
                except ConnectionResetError:
                    pass
            c.close()
        clients = [ws_client(port) for _ in range(20)]
        assert [gw for _, gw in clients] == ["gw1"] * 20, clients
        for c, _ in clients:
            c.close()
        log("after SIGKILL of one gateway: 20 of 20 new connections served by the other")
        procs[1].send_signal(signal.SIGTERM)
        assert procs[1].wait(timeout=30) == 0, procs[1].returncode
        assert not listening(port), "the port is still open after both gateways stopped"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for i in range(2):
            path = os.path.join(tmp, f"gw{i}.log")
            if sys.exc_info()[0] and os.path.exists(path):
                print(f"--- gw{i}.log\n" + open(path, errors="replace").read()[-3000:])
        shutil.rmtree(tmp, ignore_errors=True)


# --- up ---------------------------------------------------------------------

def up(state, env, *args, timeout=400):
    t0 = time.monotonic()
    r = subprocess.run(["bash", os.path.join(SRC, "scripts", "up.sh"), "--detach", "--state", state,
                        "--build-dir", BUILD] + list(args), env=env, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    log(f"up.sh {' '.join(args)}: exit {r.returncode} in {time.monotonic() - t0:.1f} s")
    return r


def pids_in(text):
    """Every pid up.sh and stack.sh announced ("pid N")."""
    return sorted({int(p) for p in re.findall(r"\bpid (\d+)", text)})


def assert_all_gone(pids, state, what):
    deadline = time.monotonic() + 30
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    assert not left, (what, "still running", left)
    st = subprocess.run(["bash", os.path.join(SRC, "scripts", "stack.sh"), "status", "--state",
                         os.path.join(state, "stack")], capture_output=True, text=True)
    assert st.returncode == 3 and "not running" in st.stdout, (what, st.stdout)
    assert not os.path.exists(os.path.join(state, "stack", "stack.env")), what
    for d in ("gateway", "gateway-2", "processor"):
        assert not os.path.exists(os.path.join(state, f"{d}.pid")), (what, d)


def across_gateways(port):
    """Two WebSocket clients that the kernel gave to different gateways on
    port share one record: each sees the other's tab, and when both LOCK
    the same field, exactly one is granted and the other is told who holds
    it."""
    import asyncio

    async def until(ws, pred):
        while True:
            m = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if pred(m):
                return m

    async def run():
        by_gw, spare = {}, []
        for i in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            gw = gateway_of(s)
            s.settimeout(None)
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws/presence?user=u{i}&name=U{i}", sock=s)
            if gw in by_gw:
                spare.append(ws)
            else:
                by_gw[gw] = (ws, f"u{i}")
            if len(by_gw) == 2:
                break
        assert len(by_gw) == 2, ("40 connections all landed on one gateway", list(by_gw))
        (a, ua), (b, ub) = by_gw.values()
        for ws, tab in ((a, "ta"), (b, "tb")):
            await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": "across", "tab_id": tab}))
        for ws, other in ((a, ub), (b, ua)):
            await until(ws, lambda m: m.get("type") == "PRESENCE" and f'"{other}"' in json.dumps(m))
        for f in ("f1", "f2", "f3"):
            for ws in (a, b):
                await ws.send(json.dumps({"type": "LOCK", "entity": "order", "id": "across", "field": f}))
            ra = await until(a, lambda m: m.get("type") in ("LOCK_ACK", "ERROR"))
            rb = await until(b, lambda m: m.get("type") in ("LOCK_ACK", "ERROR"))
            assert ra["type"] == rb["type"] == "LOCK_ACK" and ra["success"] != rb["success"], (ra, rb)
            winner = ua if ra["success"] else ub
            assert ra["holder"]["id"] == rb["holder"]["id"] == winner, (ra, rb)
        for ws in [a, b] + spare:
            await ws.close()
        return list(by_gw)

    on = asyncio.run(run())
    log(f"two clients on gateways {on}: presence shared, 3 LOCK races with one winner each")


def part_up():
    tmp = tempfile.mkdtemp(prefix="px_up_")
    state = os.path.join(tmp, "state")
    try:
        # 1. a given port that is taken: refused before anything starts
        held, port = hold_port()
        r = up(state, clean_env(PRESENCE_PROCESSOR_HTTP_PORT=str(port)), timeout=60)
        assert r.returncode == 1, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        assert f"127.0.0.1:{port}" in r.stderr and "is taken" in r.stderr, r.stderr[-2000:]
        assert not os.path.exists(os.path.join(state, "stack")), "a stack was started anyway"
        r = up(state, clean_env(), "--port", str(port), timeout=60)
        assert r.returncode == 1 and f"127.0.0.1:{port}" in r.stderr and "is taken" in r.stderr, r.stderr[-2000:]
        held.close()

        # 2. a processor that cannot start: its log tail, everything stopped
        r = up(state, clean_env(PRESENCE_PROCESSOR_OPS_PROT="9200"))
        out = r.stdout + r.stderr
        assert r.returncode == 1, (r.returncode, out[-3000:])
        assert "the processor did not start: it exited with code 2" in r.stderr, out[-3000:]
        assert "last lines of" in r.stderr and "unknown key 'ops.prot'" in r.stderr, out[-3000:]
        assert "presence is running" not in out, out[-3000:]
        assert "stopped the gateway" in r.stderr, out[-3000:]
        pids = pids_in(out)
        assert len(pids) >= 4, ("expected redis, kafka, processor and gateway pids", pids, out[-3000:])
        assert_all_gone(pids, state, "after the failed start")
        log(f"failed start cleaned up: {len(pids)} processes gone")

        # 3. a start with two gateways: all ready on their own ports, the
        # shared PRESENCE_HTTP_PORT taken by the gateways only
        (gw_port,) = free_ports(1)
        r = up(state, clean_env(PRESENCE_HTTP_PORT=str(gw_port)), "--gateways", "2")
        out = r.stdout + r.stderr
        assert r.returncode == 0 and "presence is running" in r.stdout, (r.returncode, out[-3000:])
        pids = pids_in(out)
        m = re.search(r"processor http://127\.0\.0\.1:(\d+)/metrics", r.stdout)
        assert m, r.stdout[-2000:]
        ops_port = int(m.group(1))
        assert ops_port != gw_port and ops_port != 9102, (ops_port, gw_port)
        assert f"http://127.0.0.1:{gw_port}/?user=alice" in r.stdout, r.stdout[-2000:]
        status, body = get(f"http://127.0.0.1:{gw_port}/?user=alice")
        assert status == 200 and "<html" in body.lower(), (status, body[:300])
        status, body = get(f"http://127.0.0.1:{gw_port}/readyz")
        assert status == 200 and body.startswith("ready kafka=up redis=up"), (status, body)
        status, body = get(f"http://127.0.0.1:{ops_port}/readyz")
        assert status == 200 and body.startswith("ready") and "consuming=yes" in body, (status, body)
        gw_pids = [int(m) for m in re.findall(r"== gateway(?:-2)?: pid (\d+)", r.stdout)]
        assert len(gw_pids) == 2 and all(alive(p) for p in gw_pids), (gw_pids, r.stdout[-2000:])
        across_gateways(gw_port)

        # a second system on the same state dir is refused; the first runs on
        r2 = up(state, clean_env(), timeout=60)
        assert r2.returncode == 1 and "already runs" in r2.stderr, (r2.returncode, r2.stderr[-2000:])
        assert get(f"http://127.0.0.1:{gw_port}/readyz")[0] == 200

        d = subprocess.run(["bash", os.path.join(SRC, "scripts", "down.sh"), "--state", state],
                           capture_output=True, text=True, timeout=120)
        assert d.returncode == 0 and "stopped the gateway " in d.stdout and "stopped the gateway-2 " in d.stdout \
            and "stopped the processor" in d.stdout, \
            (d.returncode, d.stdout, d.stderr)
        assert_all_gone(pids, state, "after down.sh")
        log(f"up.sh start and down.sh: {len(pids)} processes gone")
    except BaseException:
        for f in glob.glob(os.path.join(state, "logs", "*.log")) + glob.glob(os.path.join(state, "stack", "*.log")):
            print(f"--- {f}\n" + open(f, errors="replace").read()[-3000:])
        raise
    finally:
        subprocess.run(["bash", os.path.join(SRC, "scripts", "down.sh"), "--state", state], capture_output=True,
                       timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


# --- setup ------------------------------------------------------------------

def part_setup():
    tmp = tempfile.mkdtemp(prefix="px_setup_")
    cache = os.path.join(tmp, "cache")
    os.makedirs(cache)
    env = clean_env(PRESENCE_CACHE=cache, PX_SETUP_SKIP_APT="1")
    lock = open(os.path.join(cache, "kafka-3.9.1.lock"), "a")
    outs = [os.path.join(tmp, f"setup{i}.out") for i in (1, 2)]
    procs = []
    try:
        # Hold the cache's lock, as a first fetch in progress would: both
        # runs must wait for it rather than fetch side by side.
        fcntl.flock(lock, fcntl.LOCK_EX)
        for o in outs:
            procs.append(subprocess.Popen(["bash", os.path.join(SRC, "scripts", "setup.sh")], env=env,
                                          stdout=open(o, "wb"), stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not all("waiting for it" in open(o).read() for o in outs):
            assert time.monotonic() < deadline, [open(o).read()[-1500:] for o in outs]
            for p, o in zip(procs, outs):
                assert p.poll() is None, ("setup.sh ended while the lock was held", open(o).read()[-1500:])
            time.sleep(0.1)
        assert not os.path.exists(os.path.join(cache, "kafka-3.9.1", "libs")), "fetched without the lock"
        log("both setup.sh runs wait for the lock")
        t0 = time.monotonic()
        fcntl.flock(lock, fcntl.LOCK_UN)
        for p in procs:
            p.wait(timeout=600)
        texts = [open(o).read() for o in outs]
        log(f"both done {time.monotonic() - t0:.1f} s after the release: exit {[p.returncode for p in procs]}")
        for p, t in zip(procs, texts):
            assert p.returncode == 0 and t.rstrip().endswith("setup: ok"), (p.returncode, t[-2000:])
        fetched = [t for t in texts if "fetching jars with maven" in t]
        found = [t for t in texts if "by another run" in t]
        assert len(fetched) == 1 and len(found) == 1, texts
        libs = os.path.join(cache, "kafka-3.9.1", "libs")
        jars = glob.glob(os.path.join(libs, "*.jar"))
        assert len(jars) >= 100 and glob.glob(os.path.join(libs, "org.apache.kafka.kafka_2.13-*.jar")), len(jars)
        assert os.path.isfile(os.path.join(cache, "kafka-3.9.1", "libs.complete"))
        assert not glob.glob(os.path.join(cache, ".kafka-3.9.1.fetch.*")), os.listdir(cache)
        assert not os.path.exists(os.path.join(cache, "kafka-3.9.1", "libs.partial"))
        assert not os.path.exists(os.path.join(SRC, "stack", "kafka", "target")), "maven wrote into the source tree"
        log(f"{len(jars)} jars in the cache, fetched once")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        lock.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parts = {"ports": part_ports, "reuse_port": part_reuse_port, "up": part_up, "setup": part_setup}
    if len(sys.argv) != 2 or sys.argv[1] not in parts:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(parts)}")
    t0 = time.monotonic()
    parts[sys.argv[1]]()
    log(f"test_startup {sys.argv[1]}: PASS in {time.monotonic() - t0:.1f} s")
