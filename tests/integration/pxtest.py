"""pxtest.py - shared helpers for the integration tests (Python 3, Debian's
python3-websockets). Starts presence daemons against the Kafka + Redis
stack the ctest fixture started, mints HS256 tokens, and talks WebSocket.

Environment (set by tests/integration/CMakeLists.txt):
  PX_STACK_DIR   state dir of the running stack (holds stack.env)
  PX_BUILD_DIR   build tree with processor/ and gateway/ binaries
  PX_SOURCE_DIR  the repository
"""
import asyncio
import atexit
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

SECRET = "integration-test-secret"


def stack_env():
    env = {}
    path = os.path.join(os.environ["PX_STACK_DIR"], "stack.env")
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v.strip('"')
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(sub, tenant, name=None, exp_in=3600, secret=SECRET):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": sub, "tenant": tenant, "exp": int(time.time()) + exp_in}
    if name:
        claims["name"] = name
    payload = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class Daemon:
    """A presence daemon in the background; its log goes to a file that is
    printed when a test fails."""

    def __init__(self, name, args, logdir):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self, timeout=20):
        """SIGTERM and wait; returns the exit code (fails on a hang)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not stop within {timeout}s of SIGTERM")
        self.log.close()
        return self.proc.returncode

    def dump(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            sys.stderr.write(f"----- {self.name} log -----\n")
            sys.stderr.write(f.read().decode(errors="replace")[-20000:])


class Stack:
    """The processor and gateway of one test, on the fixture's Kafka/Redis."""

    def __init__(self, name):
        self.env = stack_env()
        self.build = os.environ["PX_BUILD_DIR"]
        self.logdir = os.path.join(self.build, "test-logs", name)
        os.makedirs(self.logdir, exist_ok=True)
        self.http_port = free_port()
        self.proc_port = free_port()
        self.group = unique("it-")
        self.daemons = []
        self.retired = []  # daemons a test killed on purpose: logged, not judged
        # Topics of this test only: processors of other tests never see
        # its records, nor it theirs.
        self.prefix = unique("t") + "."
        subprocess.run(["bash", os.path.join(os.environ["PX_SOURCE_DIR"], "scripts", "stack.sh"), "topics",
                        "--state", os.environ["PX_STACK_DIR"], "--prefix", self.prefix, "--partitions", "3"],
                       check=True, stdout=subprocess.DEVNULL)

    def common(self):
        prefix = self.prefix
        return ["--set", f"kafka.bootstrap.servers={self.env['KAFKA_BOOTSTRAP']}",
                "--set", f"redis.host={self.env.get('REDIS_HOST', '127.0.0.1')}",
                "--set", f"redis.port={self.env['REDIS_PORT']}",
                "--set", f"topic.prefix={prefix}"]

    def start_processor(self, *extra, name="processor", instance="p1", host=None):
        """host: a pxcluster.NetHost to run it in (extra then names the
        addresses it reaches the servers at)."""
        argv = ([os.path.join(self.build, "processor", "presence-processor")]
                + self.common() + ["--set", f"kafka.group.id={self.group}",
                                   "--set", f"processor.instance={instance}",
                                   "--set", f"http.port={self.proc_port}"] + list(extra))
        d = Daemon(name, host.cmd(argv) if host else argv, self.logdir)
        self.daemons.append(d)
        return d

    def start_gateway(self, *extra, name="gateway", port=None):
        """A gateway on http_port, or on port (several gateways: each its
        own name and port)."""
        d = Daemon(name, [os.path.join(self.build, "gateway", "presence-gateway")]
                   + self.common() + ["--set", f"http.port={port or self.http_port}",
                                      "--set", f"auth.jwt_secret={SECRET}"] + list(extra),
                   self.logdir)
        self.daemons.append(d)
        return d

    def http(self, path, port=None):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.http_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def rest(self, method, path, tok, body=None):
        """A REST call to the gateway as the token's user: (status, JSON body)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method)
        req.add_header("Authorization", f"Bearer {tok}")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def wait_ready(self, timeout=60, port=None):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            for d in self.daemons:
                if d.proc.poll() is not None:
                    raise AssertionError(f"{d.name} exited early with {d.proc.returncode}")
            try:
                last = self.http("/readyz", port)
                if last[0] == 200:
                    return
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"gateway not ready after {timeout}s: {last}")

    def verify(self, *extra):
        """presencectl verify over this test's topics; the CompletedProcess."""
        return subprocess.run([os.path.join(self.build, "tools", "presencectl"), "verify"] + self.common()
                              + list(extra), capture_output=True, text=True, timeout=120)

    def topic(self, name):
        return self.prefix + name

    def producer(self):
        from confluent_kafka import Producer
        return Producer({"bootstrap.servers": self.env["KAFKA_BOOTSTRAP"],
                         "partitioner": "murmur2_random", "enable.idempotence": True})

    def changes(self, tenant, timeout=30.0, until=None, to_end=False):
        """Committed change events of one tenant, in order, read from the
        beginning of presence.changes (read_committed). Reads until `until`
        (a predicate over the list so far) holds, or (to_end) every
        partition's end is reached, or the timeout (to_end: an error)."""
        from confluent_kafka import Consumer, KafkaError
        import pxavro
        codec = pxavro.Codec()
        c = Consumer({"bootstrap.servers": self.env["KAFKA_BOOTSTRAP"], "group.id": unique("rd-"),
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "isolation.level": "read_committed", "enable.partition.eof": to_end})
        topic = self.topic("presence.changes")
        c.subscribe([topic])
        nparts = len(c.list_topics(topic, timeout=10).topics[topic].partitions) if to_end else 0
        out, deadline, ends = [], time.time() + timeout, set()
        try:
            while time.time() < deadline:
                m = c.poll(0.2)
                if m is not None and m.error() and m.error().code() == KafkaError._PARTITION_EOF:
                    ends.add(m.partition())
                    if len(ends) == nparts:
                        return out
                if m is None or m.error():
                    if until and until(out):
                        break
                    continue
                if m.key().decode().startswith(tenant + ":"):
                    out.append(codec.decode(m.value())[1])
                if until and until(out):
                    break
        finally:
            c.close()
        assert not to_end, f"{topic}: the end of every partition not reached in {timeout}s ({len(out)} read)"
        return out

    def ws_url(self, tok):
        return f"ws://127.0.0.1:{self.http_port}/ws/presence?access_token={tok}"

    def stop(self):
        codes = {}
        for d in reversed(self.daemons):
            codes[d.name] = d.stop()
        for d in self.retired:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
        for r in Redis.live:
            r.kill()
        return codes

    def retire(self, d):
        self.daemons.remove(d)
        self.retired.append(d)

    def dump(self):
        for d in self.retired[-4:] + self.daemons:
            d.dump()


class Redis:
    """A redis-server of this test only, restartable on the same port; it is
    killed when the test ends, whatever the outcome (Stack.stop)."""

    live = []  # every instance, so run() can kill them on any exit

    def __init__(self, logdir, unix=False):
        """unix: no TCP port at all (port 0), only a Unix socket at
        self.socket (in a short temporary directory: a socket path is at
        most 107 bytes); self.port is then None and self.cli() reaches it."""
        Redis.live.append(self)
        self.socket = self.port = None
        if unix:
            sockdir = tempfile.mkdtemp(prefix="pxr-")
            atexit.register(shutil.rmtree, sockdir, True)  # not in kill(): start() may follow it
            self.socket = os.path.join(sockdir, "redis.sock")
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
        self.logdir = logdir
        self.start()

    def cli(self, *args):
        """redis-cli against this server; the CompletedProcess."""
        where = ["-s", self.socket] if self.socket else ["-p", str(self.port)]
        return subprocess.run(["redis-cli", *where, *args], capture_output=True, text=True, timeout=30)

    def start(self):
        where = (["--port", "0", "--unixsocket", self.socket, "--unixsocketperm", "700"] if self.socket
                 else ["--port", str(self.port), "--bind", "127.0.0.1"])
        self.proc = subprocess.Popen(["redis-server", *where,
                                      "--save", "", "--appendonly", "no", "--dir", self.logdir,
                                      "--logfile", os.path.join(self.logdir, "redis.log")])
        for _ in range(100):
            if self.cli("ping").stdout.strip() == "PONG":
                return
            time.sleep(0.05)
        raise AssertionError("redis did not start")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Subscriber:
    """A raw RESP connection SUBSCRIBEd to Redis channels, collecting every
    message (channel, payload bytes) in arrival order on a thread of its
    own. No client library: the test reads what the server sends."""

    def __init__(self, port, *channels):
        import threading
        self.sock = socket.create_connection(("127.0.0.1", int(port)), timeout=5)
        self.messages = []
        self.lock = threading.Lock()
        cmd = [b"SUBSCRIBE", *[c.encode() for c in channels]]
        self.sock.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in cmd))
        self.file = self.sock.makefile("rb")
        for _ in channels:  # the subscribe confirmations come before any message
            self._read()
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read(self):
        line = self.file.readline()
        if not line:
            raise EOFError
        t, rest = line[:1], line[1:-2]
        if t == b"*":
            return [self._read() for _ in range(int(rest))]
        if t == b"$":
            n = int(rest)
            data = self.file.read(n + 2)[:-2] if n >= 0 else None
            return data
        if t == b":":
            return int(rest)
        return rest

    def _run(self):
        try:
            while True:
                r = self._read()
                if isinstance(r, list) and len(r) == 3 and r[0] == b"message":
                    with self.lock:
                        self.messages.append((r[1].decode(), r[2]))
        except (EOFError, OSError, ValueError):
            pass

    def wait(self, pred, timeout=30.0, what="message"):
        """Wait until pred(list of messages so far) holds; returns the list."""
        deadline = time.time() + timeout
        while True:
            with self.lock:
                got = list(self.messages)
            if pred(got):
                return got
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; got {got[-5:]}")
            time.sleep(0.05)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def lag(stack):
    """Committed input records after the group's committed offsets. Reading
    them (read_committed) skips transaction markers and aborted records,
    which a comparison with the high watermark would count forever."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": stack.group,
                  "enable.auto.commit": False, "isolation.level": "read_committed",
                  "enable.partition.eof": True})
    try:
        tps = [TopicPartition(stack.topic(t), p) for t in ("presence.heartbeats", "presence.locks",
               "core.entities.lifecycle.mutating", "core.entities.lifecycle.mutated") for p in range(3)]
        start = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                 for tp in c.committed(tps, timeout=10)]
        c.assign(start)
        found, eof, deadline = 0, set(), time.time() + 15
        while len(eof) < len(tps) and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                eof.add((m.topic(), m.partition()))
            else:
                found += 1
        return found if len(eof) == len(tps) else max(found, 1)
    finally:
        c.close()


async def recv_until(ws, pred, timeout=30.0, what="message"):
    """Receive messages until pred(msg) holds; returns that message."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}; got {seen[-5:]}")
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            continue
        msg = json.loads(raw)
        seen.append(msg)
        if pred(msg):
            return msg


def finish(stack, ok):
    """Stop the stack's daemons; a daemon that did not exit 0 on SIGTERM
    fails the test. Prints the daemon logs when the test failed. Returns
    whether the test passed."""
    try:
        codes = stack.stop()
    except AssertionError as e:
        print(f"FAIL: {e}", file=sys.stderr)
        ok, codes = False, {}
    for n, c in codes.items():
        if ok and c != 0:
            print(f"FAIL: {n} exited with {c} after SIGTERM", file=sys.stderr)
            ok = False
    if not ok:
        stack.dump()
        # keep the failed run's logs: the next run of the same test writes
        # over its files (a rare failure once lost its logs that way)
        kept = f"{stack.logdir}.failed-{time.strftime('%Y%m%dT%H%M%S')}"
        try:
            shutil.copytree(stack.logdir, kept)
            print(f"logs of the failed run kept in {kept}", file=sys.stderr)
        except OSError as e:
            print(f"could not keep the logs in {kept}: {e}", file=sys.stderr)
    return ok


def run(test_fn, name):
    """Run an async test with a Stack; print daemon logs on failure; exit
    non-zero on failure so ctest sees it."""
    stack = Stack(name)
    ok = False
    try:
        asyncio.run(test_fn(stack))
        ok = True
    finally:
        ok = finish(stack, ok)
    print(f"{name}: {'1 passed, 0 failed' if ok else '0 passed, 1 failed'}")
    sys.exit(0 if ok else 1)
