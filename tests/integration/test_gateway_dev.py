#!/usr/bin/python3
"""The development-mode token issuer, GET /api/v1/dev/token (gateway/gw_dev.c):

- without auth.dev_mode the route does not exist (404, like any unknown path);
- with it, a token for user/name/tenant: an HS256 JWT signed with the
  configured secret, with exactly the claims sub, tenant, name, exp (about
  12 h ahead); the WebSocket accepts it and PRESENCE carries the name; REST
  accepts it as a Bearer token;
- defaults (tenant "demo", the demo page's, and name = user), URL-encoded
  UTF-8 names; dev mode's query identities (WebSocket ?user=, REST ?user=
  without a token) default to the same tenant, so all three meet on one
  record;
- bad input (no user, characters outside [A-Za-z0-9._-], 129-character
  user or tenant, empty, control-character, non-UTF-8 or 257-byte names,
  wrong method) is a 400/405 with the one error shape, and the gateway goes
  on. (libwebsockets ends a query value at an encoded CR/LF and drops the
  rest of the query, so "%0A" cannot be tested as a bad name: documented.)
- dev mode without auth.jwt_secret signs with an ephemeral secret that its
  own WebSocket accepts.
"""
import asyncio
import base64
import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request

import websockets

import pxtest


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def get(stack, path, method="GET"):
    req = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def dev_token(stack, **args):
    return get(stack, "/api/v1/dev/token?" + urllib.parse.urlencode(args))


async def first_presence(stack, tok, order):
    async with websockets.connect(stack.ws_url(tok)) as ws:
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
        return await pxtest.recv_until(ws, lambda m: m.get("type") in ("PRESENCE", "ERROR"), what="PRESENCE")


async def test(stack):
    tenant = pxtest.unique("t")
    order = pxtest.unique("o")

    # 1. not in dev mode: no such route
    gw = stack.start_gateway()
    stack.wait_ready()
    status, body = dev_token(stack, user="alice", tenant=tenant)
    assert status == 404 and body == {"success": False, "error": {"code": "NOT_FOUND", "message": "no such route"}}, body
    assert gw.stop() == 0
    stack.daemons.remove(gw)

    # 2. dev mode with the configured secret
    gw = stack.start_gateway("--set", "auth.dev_mode=true")
    stack.start_processor()
    stack.wait_ready()
    before = int(time.time())
    status, body = dev_token(stack, user="alice", name="Alice Ünal", tenant=tenant)
    assert status == 200 and body["success"] is True, body
    d = body["data"]
    assert (d["user_id"], d["user_name"], d["tenant"]) == ("alice", "Alice Ünal", tenant), d
    tok = d["token"]
    head, payload, sig = tok.split(".")
    assert json.loads(b64d(head))["alg"] == "HS256", head
    want = hmac.new(pxtest.SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    assert b64d(sig) == want, "signed with auth.jwt_secret"
    claims = json.loads(b64d(payload))
    assert set(claims) == {"sub", "tenant", "name", "exp"}, claims
    assert (claims["sub"], claims["tenant"], claims["name"]) == ("alice", tenant, "Alice Ünal"), claims
    assert before + 12 * 3600 - 5 <= claims["exp"] <= int(time.time()) + 12 * 3600 + 5, claims
    assert d["expires_at"] == claims["exp"] * 1000, d

    # the WebSocket takes it like any token, and the name travels
    async with websockets.connect(stack.ws_url(tok)) as ws:
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
        m = await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and m["users"] == ["alice"],
                                    what="PRESENCE with alice")
        assert m["viewers"][0]["user_name"] == "Alice Ünal", m
    # and REST as a Bearer token
    req = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}/api/v1/presence/order/{order}",
                                 headers={"Authorization": f"Bearer {tok}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200 and json.loads(r.read())["data"]["entity"] == "order"

    # defaults: tenant "demo" (the demo page's), name = user id
    status, body = dev_token(stack, user="bob")
    assert status == 200, body
    assert body["data"]["tenant"] == "demo", body
    claims = json.loads(b64d(body["data"]["token"].split(".")[1]))
    assert (claims["sub"], claims["tenant"], claims["name"]) == ("bob", "demo", "bob"), claims
    # bob's default token, erin's dev-mode query identity without a tenant
    # and a REST reader without a token all see one record of tenant demo
    shared = pxtest.unique("o")
    async with websockets.connect(stack.ws_url(body["data"]["token"])) as bob_ws, \
            websockets.connect(f"ws://127.0.0.1:{stack.http_port}/ws/presence?user=erin&name=Erin") as erin_ws:
        for ws in (bob_ws, erin_ws):
            await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": shared}))
        for ws in (bob_ws, erin_ws):
            await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and sorted(m["users"]) == ["bob", "erin"],
                                    what="PRESENCE with bob and erin")
        status, body = get(stack, f"/api/v1/presence/order/{shared}?user=rita")
        assert status == 200 and sorted(body["data"]["users"]) == ["bob", "erin"], (status, body)

    # bad input: 400 BAD_FIELD naming the argument, one error shape
    bad = [
        ({}, "user"),
        ({"user": ""}, "user"),
        ({"user": "bad id!"}, "user"),
        ({"user": "a/b"}, "user"),
        ({"user": "u" * 129}, "user"),
        ({"user": "ok", "tenant": "t t"}, "tenant"),
        ({"user": "ok", "tenant": ""}, "tenant"),
        ({"user": "ok", "tenant": "t" * 129}, "tenant"),
        ({"user": "ok", "name": ""}, "name"),
        ({"user": "ok", "name": "tab\there"}, "name"),
        ({"user": "ok", "name": "bell\x07"}, "name"),
        ({"user": "ok", "name": "del\x7f"}, "name"),
        ({"user": "ok", "name": "\xff".encode("latin-1")}, "name"),  # not UTF-8
        ({"user": "ok", "name": "n" * 257}, "name"),
    ]
    for args, field in bad:
        status, body = dev_token(stack, **args)
        assert status == 400, (args, status, body)
        assert body["success"] is False and body["error"]["code"] == "BAD_FIELD", (args, body)
        assert f"'{field}'" in body["error"]["message"], (args, body)
    # limits are inclusive: 128-character ids and 256-byte names pass
    status, body = dev_token(stack, user="u" * 128, tenant="t" * 128, name="é" * 128)
    assert status == 200, body
    status, body = get(stack, "/api/v1/dev/token?user=ok", method="POST")
    assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED", body
    # still serving
    status, body = dev_token(stack, user="carol", tenant=tenant)
    assert status == 200, body
    assert gw.stop() == 0
    stack.daemons.remove(gw)

    # 3. dev mode without a secret: an ephemeral one, accepted by the same gateway
    gw = pxtest.Daemon("gateway-nosecret", [stack.build + "/gateway/presence-gateway"] + stack.common()
                       + ["--set", f"http.port={stack.http_port}", "--set", "auth.dev_mode=true"], stack.logdir)
    stack.daemons.append(gw)
    stack.wait_ready()
    status, body = dev_token(stack, user="dave", tenant=tenant)
    assert status == 200, body
    tok = body["data"]["token"]
    head, payload, sig = tok.split(".")
    assert b64d(sig) != hmac.new(pxtest.SECRET.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    m = await first_presence(stack, tok, order)
    assert m["type"] == "PRESENCE", m
    forged = pxtest.token("dave", tenant, "Dave")  # signed with a secret this gateway does not have
    async with websockets.connect(stack.ws_url(forged)) as ws:
        m = json.loads(await asyncio.wait_for(ws.recv(), 10))  # then close 4401
    assert m["type"] == "ERROR" and m["code"] == "UNAUTHORIZED", m

    status, body = stack.http("/metrics")
    assert 'presence_gateway_errors_by_code_total{code="UNAUTHORIZED"}' in body, "refusals are counted"


if __name__ == "__main__":
    pxtest.run(test, "test_gateway_dev")
