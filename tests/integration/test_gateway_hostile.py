#!/usr/bin/python3
"""Hostile clients against a real gateway (with processor, Kafka, Redis)
while a well-behaved client (bob) must keep being served after each case:

- malformed messages (table): an ERROR with the right code each, the
  connection stays usable;
- invalid UTF-8 in a text message (table: a stray byte, an overlong form,
  an encoded surrogate, a code point past U+10FFFF, a cut sequence), plain
  or deflated: the WebSocket layer closes with 1007 and sends no ERROR; a
  valid character split across two frames is accepted;
- a 1 MiB message (deflated or not): TOO_LARGE and close 1009; a binary
  frame: BAD_FRAME, the connection stays;
- request heads over the limits, by raw socket: an access_token of 4084
  bytes to 3 MB (the query argument passes 4096 bytes) gets 414, a Cookie,
  User-Agent or Authorization header of 5 KB to 70 KB gets 431, each with
  the JSON error TOO_LARGE, and the connection is closed; a 4000-byte
  token is read whole (UNAUTHORIZED for its signature, close 4401);
- 10k SUBs on one connection: at most limits.subscriptions_per_connection
  entities watched, TOO_MANY_SUBSCRIPTIONS, one RATE_LIMITED;
- a flood of 20k messages: one RATE_LIMITED, the connection stays, and is
  served again once its bucket refills;
- 50 LOCKs at once: each answered by LOCK_ACK or TOO_MANY_PENDING;
- connections past limits.connections: OVERLOADED and close 1013;
- a 4000-byte message on a gateway without deflate (1 KiB receive chunks);
- a reader that never reads (second gateway with a 96 KiB outbound bound,
  a record with 200 viewers, so each PRESENCE is ~70 KiB):
  its PRESENCEs are coalesced while it is stuck, and once non-coalescable
  messages overflow the bound it is closed within 5 s (its connection
  count; close 1008 when the frame gets through), the other client of
  that gateway still served;
- a PRESENCE of 150 viewers with random names over permessage-deflate,
  three times, every name intact.
"""
import asyncio
import json
import os
import socket
import struct
import threading
import time

import websockets

import pxtest


def presence(pred=lambda m: True):
    return lambda m: m.get("type") == "PRESENCE" and pred(m)


async def drain(ws, seconds):
    """Every message received within `seconds`."""
    out, deadline = [], time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            out.append(json.loads(await asyncio.wait_for(ws.recv(), left)))
        except asyncio.TimeoutError:
            return out


class Victim:
    """bob: after each hostile case he flips his dirty flag and must see it."""

    def __init__(self, ws, order):
        self.ws, self.order, self.dirty = ws, order, False

    async def served(self, what):
        self.dirty = not self.dirty
        await self.ws.send(json.dumps({"type": "HB", "dirty": self.dirty}))
        d = self.dirty
        await pxtest.recv_until(self.ws, presence(lambda m: any(
            v["id"] == "bob" and v["has_dirty_tab"] == d for v in m["viewers"])), timeout=20,
            what=f"bob served after {what}")


def metric(stack, prefix, port=None):
    status, body = stack.http("/metrics", port)
    found = [l for l in body.splitlines() if l.startswith(prefix + " ")]
    return float(found[0].split()[-1]) if found else 0.0


def raw_ws(port, path, rcvbuf):
    """A WebSocket by hand on a socket with a tiny receive buffer (no
    extensions offered): returns the connected socket after the 101."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def raw_request(port, head):
    """Send one request head (in a thread: the gateway may answer before it
    has all of it) and return everything the gateway sends until it closes."""
    s = socket.create_connection(("127.0.0.1", port))

    def send():
        try:
            s.sendall(head)
        except OSError:
            pass  # the gateway answered and closed first
    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    s.settimeout(10)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    sender.join(10)
    s.close()
    return data


def ws_frame(text):
    """A masked client text frame."""
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    return hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def parse_frames(buf):
    """(opcode, payload) of each complete server frame in buf."""
    out, i = [], 0
    while i + 2 <= len(buf):
        op, n = buf[i] & 0x0F, buf[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n = struct.unpack(">H", buf[j:j + 2])[0]
            j += 2
        elif n == 127:
            n = struct.unpack(">Q", buf[j:j + 8])[0]
            j += 8
        if j + n > len(buf):
            break
        out.append((op, buf[j:j + n]))
        i = j + n
    return out


async def test(stack):
    tenant = pxtest.unique("t")
    order = pxtest.unique("o")
    stack.start_processor()
    stack.start_gateway("--set", "limits.messages_per_second=200", "--set", "limits.messages_burst=200",
                        "--set", "limits.connections=12")
    stack.wait_ready()
    url = stack.ws_url(pxtest.token("bob", tenant, "Bob"))
    bob_ws = await websockets.connect(url)
    await bob_ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    await pxtest.recv_until(bob_ws, presence(lambda m: m["users"] == ["bob"]), what="bob's PRESENCE")
    bob = Victim(bob_ws, order)

    def mallory_url():
        return stack.ws_url(pxtest.token("mallory", tenant, "Mallory"))

    # --- malformed messages ------------------------------------------------------
    m1 = await websockets.connect(mallory_url(), max_size=None)
    table = [
        ("", "BAD_JSON"),
        ("{", "BAD_JSON"),
        ("[]", "BAD_JSON"),
        ("null", "BAD_JSON"),
        ('"SUB"', "BAD_JSON"),
        ('{"type":"HB"} trailing', "BAD_JSON"),
        ('{"type":"SUB","type":"SUB"}', "BAD_JSON"),
        ("[" * 2000 + "]" * 2000, "BAD_JSON"),
        ('{"type":"SUB","entity":"o","id":"1\\u0000"}', "BAD_JSON"),
        ('{"type":"HB","cursor":"\\ud800"}', "BAD_JSON"),
        ('{"type":1}', "BAD_TYPE"),
        ('{"type":"sub"}', "BAD_TYPE"),
        ('{"id":"1"}', "BAD_TYPE"),
        ('{"type":"HB","dirty":1}', "BAD_FIELD"),
        ('{"type":"HB","mode":"EDIT"}', "BAD_FIELD"),
        ('{"type":"HB","status":null}', "BAD_FIELD"),
        ('{"type":"SUB","entity":"o"}', "BAD_FIELD"),
        ('{"type":"SUB","entity":"o","id":"' + "x" * 129 + '"}', "BAD_FIELD"),
        ('{"type":"SUB","entity":"o/../x","id":"1"}', "BAD_FIELD"),
        ('{"type":"HB","cursor":"' + "\u00e9" * 200 + '"}', "BAD_FIELD"),
        ('{"type":"LOCK","field":""}', "BAD_FIELD"),
        ('{"type":"HB","request_id":"\\n"}', "BAD_FIELD"),
        ('{"type":"UNSUB"}', "NOT_SUBSCRIBED"),
        ('{"type":"HB"}', "NOT_SUBSCRIBED"),
        ('{"type":"SUB","entity":"o","id":"1","tenant":"other"}', "FORBIDDEN"),
    ]
    for raw, code in table:
        await m1.send(raw)
        e = await pxtest.recv_until(m1, lambda m: m.get("type") == "ERROR", timeout=10, what=f"ERROR for {raw[:40]}")
        assert e["code"] == code, (raw[:80], e)
    await bob.served("malformed messages")

    # --- invalid UTF-8: the WebSocket layer closes with 1007 ---------------------------
    from websockets.frames import Opcode
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"):
        for comp in ("deflate", None):
            ws = await websockets.connect(mallory_url(), compression=comp)
            await ws.write_frame(True, Opcode.TEXT, b'{"type":"HB","cursor":"' + bad + b'"}')
            try:
                got = await asyncio.wait_for(ws.recv(), 10)
                raise AssertionError(f"invalid UTF-8 {bad!r} ({comp}) was answered: {got!r}")
            except websockets.ConnectionClosed as ce:
                assert ce.code == 1007, (bad, comp, ce.code)
    # a valid character cut between two frames is one valid message
    msg = '{"type":"HB","cursor":"\u00e9","request_id":"u8"}'.encode()
    cut = msg.index(b"\xc3") + 1
    await m1.write_frame(False, Opcode.TEXT, msg[:cut])
    await m1.write_frame(True, Opcode.CONT, msg[cut:])
    e = await pxtest.recv_until(m1, lambda m: m.get("type") == "ERROR", timeout=10, what="ERROR for the split HB")
    assert e["code"] == "NOT_SUBSCRIBED" and e["request_id"] == "u8", e
    await bob.served("invalid UTF-8")

    # --- 1 MiB, binary -----------------------------------------------------------
    for comp in ("deflate", None):
        big = await websockets.connect(mallory_url(), max_size=None, compression=comp)
        await big.send('{"type":"HB","cursor":"' + "x" * (1 << 20) + '"}')
        e = json.loads(await asyncio.wait_for(big.recv(), 20))
        assert e["type"] == "ERROR" and e["code"] == "TOO_LARGE", e
        try:
            await asyncio.wait_for(big.recv(), 20)
            raise AssertionError("connection stayed open after 1 MiB")
        except websockets.ConnectionClosed as ce:
            assert ce.code == 1009, ce.code
    await m1.send(b"\x00\x01binary\xff")
    e = await pxtest.recv_until(m1, lambda m: m.get("type") == "ERROR", what="BAD_FRAME")
    assert e["code"] == "BAD_FRAME", e
    await m1.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))  # still usable
    await pxtest.recv_until(m1, presence(lambda m: "mallory" in m["users"]), what="mallory's SUB after abuse")
    await bob.served("1 MiB and binary")

    # --- request heads over the limits ------------------------------------------------
    def upgrade(tok):
        return (f"GET /ws/presence?access_token={tok} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def get(path, header):
        return f"GET {path} HTTP/1.1\r\nHost: x\r\n{header}\r\n\r\n".encode()
    heads = [
        (upgrade("a" * 4084), 414), (upgrade("a" * 65536), 414), (upgrade("a" * 3000000), 414),
        (get("/" + "p" * 5000, "Accept: */*"), 414),
        (get("/healthz", "Cookie: " + "c" * 5000), 431), (get("/healthz", "User-Agent: " + "u" * 70000), 431),
        (get(f"/api/v1/presence/order/{order}", "Authorization: Bearer " + "b" * 5000), 431),
    ]
    too_large_before = metric(stack, 'presence_gateway_errors_by_code_total{code="TOO_LARGE"}')
    for head, status in heads:
        got = raw_request(stack.http_port, head)
        top, _, body = got.partition(b"\r\n\r\n")
        assert top.split(b" ")[1:2] == [str(status).encode()], (len(head), head[:60], got[:80])
        assert json.loads(body) == {"success": False, "error": {"code": "TOO_LARGE",
                                                                 "message": json.loads(body)["error"]["message"]}}, body
    assert metric(stack, 'presence_gateway_errors_by_code_total{code="TOO_LARGE"}') - too_large_before == len(heads)
    # within the limits, a long token is read whole: refused for its signature
    ws = await websockets.connect(stack.ws_url("a" * 4000))
    e = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert e["code"] == "UNAUTHORIZED" and e["message"] == "invalid token or signature", e
    try:
        await asyncio.wait_for(ws.recv(), 10)
    except websockets.ConnectionClosed as ce:
        assert ce.code == 4401, ce.code
    await bob.served("request heads over the limits")

    # --- 10k subscriptions --------------------------------------------------------------
    m2 = await websockets.connect(mallory_url())
    watched_before = metric(stack, "presence_gateway_entities_watched")
    t0 = time.monotonic()
    for i in range(10000):
        await m2.send(json.dumps({"type": "SUB", "entity": "order", "id": f"x{i}"}))
    took = time.monotonic() - t0
    got = await drain(m2, 5)
    codes = [m["code"] for m in got if m.get("type") == "ERROR"]
    assert "TOO_MANY_SUBSCRIPTIONS" in codes, codes[:5]
    assert set(codes) == {"TOO_MANY_SUBSCRIPTIONS", "RATE_LIMITED"}, set(codes)
    assert 1 <= codes.count("RATE_LIMITED") <= took + 2, (codes.count("RATE_LIMITED"), took)
    watched = metric(stack, "presence_gateway_entities_watched")
    assert watched - watched_before <= 64, (watched_before, watched)
    await bob.served("10k subscriptions")

    # --- flood -----------------------------------------------------------------------
    m3 = await websockets.connect(mallory_url())
    # subscribed, so each HB let through is valid (an HB on a connection
    # without subscriptions is answered NOT_SUBSCRIBED)
    await m3.send(json.dumps({"type": "SUB", "entity": "order", "id": order + "-flood"}))
    await pxtest.recv_until(m3, presence(), what="the flooder's PRESENCE")
    t0 = time.monotonic()
    for _ in range(20000):
        await m3.send('{"type":"HB"}')
    took = time.monotonic() - t0
    got = await drain(m3, 3)
    errs = [m["code"] for m in got if m.get("type") == "ERROR"]
    assert set(errs) == {"RATE_LIMITED"} and len(errs) <= took + 2, (errs[:5], len(errs), took)
    await asyncio.sleep(1.2)  # the bucket refills
    await m3.send("{")
    e = await pxtest.recv_until(m3, lambda m: m.get("type") == "ERROR", what="ERROR after the flood")
    assert e["code"] == "BAD_JSON", e
    assert metric(stack, 'presence_gateway_errors_by_code_total{code="RATE_LIMITED"}') > 10000
    await bob.served("flood")

    # --- 50 LOCKs at once ----------------------------------------------------------------
    m4 = await websockets.connect(mallory_url())
    await m4.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    for i in range(50):
        await m4.send(json.dumps({"type": "LOCK", "field": f"f{i}", "request_id": f"L{i}"}))
    answers = {}
    deadline = time.monotonic() + 30
    while len(answers) < 50 and time.monotonic() < deadline:
        m = json.loads(await asyncio.wait_for(m4.recv(), 30))
        if m.get("type") in ("LOCK_ACK", "ERROR") and (m.get("request_id") or "").startswith("L"):
            answers[m["request_id"]] = m
    kinds = [("ACK" if m["type"] == "LOCK_ACK" and m["success"] else m.get("code")) for m in answers.values()]
    assert len(answers) == 50 and set(kinds) <= {"ACK", "TOO_MANY_PENDING"}, kinds
    assert kinds.count("ACK") >= 16, kinds
    await bob.served("50 LOCKs")

    # --- connections past the limit ----------------------------------------------------
    extra = []
    overloaded = None
    for _ in range(20):
        ws = await websockets.connect(mallory_url())
        extra.append(ws)
        try:
            m = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
        except asyncio.TimeoutError:
            continue
        assert m["type"] == "ERROR" and m["code"] == "OVERLOADED", m
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as e:
            overloaded = e.code
        break
    assert overloaded == 1013, overloaded
    for ws in extra + [m1, m2, m3, m4]:
        await ws.close()
    await bob.served("too many connections")
    await bob_ws.close()

    # --- a reader that never reads (second gateway, 96 KiB outbound bound) --------------
    port2 = pxtest.free_port()
    gw2 = pxtest.Daemon("gateway2", [os.path.join(stack.build, "gateway", "presence-gateway")] + stack.common()
                        + ["--set", f"http.port={port2}", "--set", f"auth.jwt_secret={pxtest.SECRET}",
                           "--set", "limits.out_bytes_per_connection=98304",
                           "--set", "limits.messages_per_second=1000", "--set", "limits.messages_burst=1000",
                           "--set", "http.deflate=false",
                           "--set", "limits.idle_ping_s=0"],  # stuck never PONGs: only the queue bound may close it
                        stack.logdir)
    stack.daemons.append(gw2)
    deadline = time.time() + 30
    while True:
        try:
            if stack.http("/readyz", port2)[0] == 200:
                break
        except OSError:
            pass
        assert time.time() < deadline, "gateway2 not ready"
        time.sleep(0.2)
    order2 = pxtest.unique("o")
    # 200 viewers with long names: every PRESENCE of order2 is ~70 KiB, so
    # the kernel's socket buffers fill within seconds.
    import pxavro
    codec, prod, now = pxavro.Codec(), stack.producer(), int(time.time() * 1000)
    for i in range(200):
        prod.produce(stack.topic("presence.heartbeats"), key=f"{tenant}:order:{order2}",
                     value=codec.encode("presence", dict(
                         type="SUB", tenant=tenant, entity="order", id=order2, ts=now, tab_id=f"v{i}",
                         user_id=f"v{i}", user_name=f"viewer {i} " + "n" * 240, mode="VIEW",
                         status="ONLINE", dirty=False)))
    prod.flush(10)
    stuck = raw_ws(port2, "/ws/presence?access_token=" + pxtest.token("stuck", tenant, "Stuck"), 1024)
    stuck.sendall(ws_frame(json.dumps({"type": "SUB", "entity": "order", "id": order2})))
    bob2_ws = await websockets.connect(f"ws://127.0.0.1:{port2}/ws/presence?access_token="
                                       + pxtest.token("bob", tenant, "Bob"), max_size=None)
    # 4000 bytes: without deflate the gateway receives in 1 KiB chunks and reassembles
    await bob2_ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order2, "pad": "p" * 3900}))
    await pxtest.recv_until(bob2_ws, presence(lambda m: "stuck" in m["users"] and "bob" in m["users"]
                                              and len(m["users"]) == 202), what="bob, stuck and 200 on gateway2")
    bob2 = Victim(bob2_ws, order2)
    # Many state changes: each is a PRESENCE for stuck, who never reads.
    deadline = time.time() + 60
    while metric(stack, "presence_gateway_presence_coalesced_total", port2) < 5:
        assert time.time() < deadline, "no PRESENCE was ever coalesced for the stuck reader"
        for i in range(20):
            await bob2_ws.send(json.dumps({"type": "HB", "cursor": f"c{time.time()}-{i}"}))
        await drain(bob2_ws, 0.5)
    assert metric(stack, 'presence_gateway_errors_by_code_total{code="SLOW_CONSUMER"}', port2) == 0
    # without deflate a message goes out at once while nothing waits; the
    # stuck reader's wait in its queue, where they were coalesced above
    assert metric(stack, 'presence_gateway_ws_writes_total{path="direct"}', port2) >= 1
    await bob2.served("a stuck reader being coalesced")
    # Non-coalescable answers (ERRORs) overflow the bound: stuck is closed.
    for _ in range(1000):  # ~110 KB of ERRORs, over the bound on their own
        stuck.sendall(ws_frame("{"))
    deadline = time.time() + 30
    while metric(stack, 'presence_gateway_errors_by_code_total{code="SLOW_CONSUMER"}', port2) < 1:
        assert time.time() < deadline, "the stuck reader was never closed"
        time.sleep(0.2)
    # The gateway drops it within 5 s even though it still reads nothing: its
    # own count of connections says so. (Its socket is closed then; the
    # kernel may still take minutes to hand the client the ~1 MB already in
    # the send buffer through a 1 KiB window, so the client's EOF is no
    # measure of the gateway.)
    deadline = time.time() + 10
    while metric(stack, "presence_gateway_connections", port2) != 1:
        assert time.time() < deadline, "the stuck reader was not dropped within 5 s"
        time.sleep(0.2)
    # A close frame among what reaches the client within a few seconds says 1008.
    stuck.settimeout(0.5)
    data, until = b"", time.time() + 3
    while time.time() < until:
        try:
            chunk = stuck.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    stuck.close()

    closes = [p for op, p in parse_frames(data) if op == 8]
    assert all(struct.unpack(">H", p[:2])[0] == 1008 for p in closes), closes
    await bob2.served("the stuck reader's close")
    await bob2_ws.close()

    # --- a large PRESENCE over permessage-deflate (the first gateway) --------
    # 150 viewers with random names: the deflated PRESENCE (~35 KB) takes lws
    # several writeable rounds to drain while zlib still reads the message's
    # buffer (freed too early once, caught under ASan by this case).
    import random
    import string
    rnd = random.Random(7)
    order3 = pxtest.unique("o")
    names = {f"w{i}": f"w{i} " + "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(200))
             for i in range(150)}
    for uid, name in names.items():
        prod.produce(stack.topic("presence.heartbeats"), key=f"{tenant}:order:{order3}",
                     value=codec.encode("presence", dict(
                         type="SUB", tenant=tenant, entity="order", id=order3, ts=now, tab_id=f"t-{uid}",
                         user_id=uid, user_name=name, mode="VIEW", status="ONLINE", dirty=False)))
    prod.flush(10)
    carl = await websockets.connect(stack.ws_url(pxtest.token("carl", tenant, "Carl")), max_size=None)
    assert [e.name for e in carl.extensions] == ["permessage-deflate"], carl.extensions
    for _ in range(3):  # three of them, each a full PRESENCE
        await carl.send(json.dumps({"type": "SUB", "entity": "order", "id": order3}))
        m = await pxtest.recv_until(carl, presence(lambda m: len(m["users"]) == 151),
                                    what="the 151-viewer PRESENCE, deflated")
        got = {v["id"]: v["user_name"] for v in m["viewers"]}
        assert all(got.get(u) == n for u, n in names.items()), "a viewer's name differs"
        await carl.send(json.dumps({"type": "UNSUB", "entity": "order", "id": order3}))
    await carl.close()
    assert stack.http("/readyz")[0] == 200


if __name__ == "__main__":
    pxtest.run(test, "test_gateway_hostile")
