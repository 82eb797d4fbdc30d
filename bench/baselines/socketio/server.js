// bench/baselines/socketio/server.js - the comparison baseline for the
// gateway benchmark (bench/run_gateway.sh, docs/benchmarks.md "Gateway
// against a Socket.IO server"): the presence server as a Node.js team would
// build it. Socket.IO v4 with @socket.io/redis-adapter on ioredis pub/sub
// clients (as for several nodes behind a load balancer), presence and locks
// kept in Redis directly with ioredis. No Kafka, no processor, no fencing
// tokens, no history: a LOCK is one SET NX PX, so its latency is a floor for
// what the presence system does through Kafka, not an equal system.
//
//   node server.js [--port 3000] [--redis-port 6379] [--redis-host 127.0.0.1]
//                  [--path /socket.io] [--secret S] [--key-prefix presence:]
//   (or PORT, REDIS_PORT, REDIS_HOST, SIO_PATH, JWT_SECRET, KEY_PREFIX in the
//    environment; the command line wins). bench/run_gateway.sh sets the key
//   prefix to sio:presence: because it shares one Redis with the presence
//   system, whose presence:{T:E:I}:tabs is a ZSET.
//
// Auth: the client sends its JWT in the Socket.IO CONNECT packet
// (`40{"token":"..."}`, socket.handshake.auth.token, the idiomatic place);
// it is checked as the gateway checks it: HS256 with the shared secret
// (node's crypto HMAC, constant-time compare), `exp` in the future, `sub`
// and `tenant` present. Without a secret, auth is skipped (said at start).
//
// Events (client -> server), equivalent to docs/protocol.md:
//   sub    {entity,id,tab_id,mode}  join room tenant:entity:id; HSET the tab
//                                   into presence:{key}:tabs + PEXPIRE 60 s;
//                                   broadcast `presence` (HGETALL) to the room
//   unsub  {entity,id}              leave; HDEL; broadcast `presence`
//   hb     {entity?,id?,mode?}      HSET the tab + PEXPIRE the hash and the
//                                   tab's locks; a bad `mode` is answered
//                                   `err` {code:"BAD_FIELD"} at once (the
//                                   benchmark's no-backend round trip)
//   lock   {entity,id,field,request_id}  SET presence:{key}:lock:{field} <tab>
//                                   NX PX 120000; on failure GET the holder
//                                   (SET again, up to 3 times, if it is gone);
//                                   answer `lock_ack` {field,success,holder,
//                                   request_id}; tell the room `lock`
//   unlock {entity,id,field}        GET, DEL if this tab holds it; tell the room
//   disconnect                      HDEL every tab, GET+DEL its locks, broadcast
// Server -> client: presence, lock_ack, lock, err.
//
// Limits: like typical service code, UNLOCK's GET+DEL is not atomic, a
// `presence` snapshot is a HGETALL per change, and nothing bounds a
// client's message rate or outbound queue.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { Redis } = require("ioredis");

function arg(name, envName, dflt) {
  const i = process.argv.indexOf("--" + name);
  if (i > 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  return process.env[envName] !== undefined ? process.env[envName] : dflt;
}
const PORT = Number(arg("port", "PORT", 3000));
const REDIS_PORT = Number(arg("redis-port", "REDIS_PORT", 6379));
const REDIS_HOST = arg("redis-host", "REDIS_HOST", "127.0.0.1");
const PATH = arg("path", "SIO_PATH", "/socket.io");
const SECRET = arg("secret", "JWT_SECRET", "");
const KEY_PREFIX = arg("key-prefix", "KEY_PREFIX", "presence:");
const PRESENCE_TTL_MS = 60000;
const LOCK_TTL_MS = 120000;

const KEY_PART = /^[A-Za-z0-9._-]{1,128}$/;

// HS256 verification, as the gateway does it. Returns the claims or null.
function verifyJwt(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  let header, claims;
  try {
    header = JSON.parse(Buffer.from(parts[0], "base64url").toString("utf8"));
    claims = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
  } catch {
    return null;
  }
  if (!header || header.alg !== "HS256") return null;
  const want = crypto.createHmac("sha256", SECRET).update(parts[0] + "." + parts[1]).digest();
  const got = Buffer.from(parts[2], "base64url");
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return null;
  if (!claims || typeof claims.sub !== "string" || typeof claims.tenant !== "string") return null;
  if (typeof claims.exp !== "number" || claims.exp * 1000 < Date.now()) return null;
  return claims;
}

const redis = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
const pubClient = new Redis({ host: REDIS_HOST, port: REDIS_PORT });
const subClient = pubClient.duplicate();

const httpServer = http.createServer((req, res) => {
  if (req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok\n");
    return;
  }
  res.writeHead(404);
  res.end();
});
const io = new Server(httpServer, {
  path: PATH,
  serveClient: false,
  adapter: createAdapter(pubClient, subClient),
});

io.use((socket, next) => {
  if (!SECRET) {
    const u = "anon-" + socket.id;
    socket.data.user = { id: u, name: u, tenant: "bench" };
    return next();
  }
  const claims = verifyJwt(socket.handshake.auth && socket.handshake.auth.token);
  if (!claims) return next(new Error("UNAUTHORIZED"));
  socket.data.user = { id: claims.sub, name: claims.name || null, tenant: claims.tenant };
  next();
});

function roomOf(user, entity, id) {
  return user.tenant + ":" + entity + ":" + id;
}
function tabsKey(room) {
  return KEY_PREFIX + "{" + room + "}:tabs";
}
function lockKey(room, field) {
  return KEY_PREFIX + "{" + room + "}:lock:" + field;
}

// The record's viewers from its tabs hash, as the room is told.
async function snapshot(room, entity, id) {
  const tabs = await redis.hgetall(tabsKey(room));
  const byUser = new Map();
  for (const v of Object.values(tabs)) {
    let t;
    try {
      t = JSON.parse(v);
    } catch {
      continue;
    }
    const u = byUser.get(t.user) || { id: t.user, user_name: t.name, tabs: 0, mode: "view" };
    u.tabs++;
    if (t.mode === "edit") u.mode = "edit";
    byUser.set(t.user, u);
  }
  const viewers = [...byUser.values()];
  return { entity, id, users: viewers.map((v) => v.id), viewers };
}

async function broadcastPresence(room, entity, id) {
  io.to(room).emit("presence", await snapshot(room, entity, id));
}

function tabValue(user, sub) {
  return JSON.stringify({ user: user.id, name: user.name, mode: sub.mode, ts: Date.now() });
}

io.on("connection", (socket) => {
  const user = socket.data.user;
  // room -> {entity, id, tab, mode, locks:Set<field>}
  const subs = new Map();

  // The target of a message: named, or the only subscription.
  function target(msg) {
    if (msg && msg.entity !== undefined) return subs.get(roomOf(user, msg.entity, msg.id));
    return subs.size === 1 ? subs.values().next().value : undefined;
  }
  function fail(code, msg) {
    socket.emit("err", { code, request_id: (msg && msg.request_id) || null });
  }
  function onError(e) {
    if (closing) return; // commands cut short by shutdown
    console.error("level=error component=sio msg=%s", JSON.stringify(String(e && e.message)));
  }

  socket.on("sub", async (msg) => {
    try {
      if (!msg || !KEY_PART.test(msg.entity) || !KEY_PART.test(msg.id)) return fail("BAD_FIELD", msg);
      const room = roomOf(user, msg.entity, msg.id);
      const tab = typeof msg.tab_id === "string" && KEY_PART.test(msg.tab_id) ? msg.tab_id : socket.id;
      const s = { entity: msg.entity, id: msg.id, tab, mode: msg.mode === "edit" ? "edit" : "view", locks: new Set() };
      subs.set(room, s);
      socket.join(room);
      await redis.multi().hset(tabsKey(room), tab, tabValue(user, s)).pexpire(tabsKey(room), PRESENCE_TTL_MS).exec();
      await broadcastPresence(room, s.entity, s.id);
    } catch (e) {
      onError(e);
    }
  });

  socket.on("unsub", async (msg) => {
    try {
      const s = target(msg);
      if (!s) return fail("NOT_SUBSCRIBED", msg);
      const room = roomOf(user, s.entity, s.id);
      subs.delete(room);
      socket.leave(room);
      await release(room, s);
      await broadcastPresence(room, s.entity, s.id);
    } catch (e) {
      onError(e);
    }
  });

  socket.on("hb", async (msg) => {
    try {
      if (msg && msg.mode !== undefined && msg.mode !== "view" && msg.mode !== "edit") return fail("BAD_FIELD", msg);
      const s = target(msg);
      if (!s) return fail("NOT_SUBSCRIBED", msg);
      if (msg && msg.mode) s.mode = msg.mode;
      const room = roomOf(user, s.entity, s.id);
      const m = redis.multi().hset(tabsKey(room), s.tab, tabValue(user, s)).pexpire(tabsKey(room), PRESENCE_TTL_MS);
      for (const f of s.locks) m.pexpire(lockKey(room, f), LOCK_TTL_MS);
      await m.exec();
    } catch (e) {
      onError(e);
    }
  });

  socket.on("lock", async (msg) => {
    try {
      if (!msg || !KEY_PART.test(msg.field)) return fail("BAD_FIELD", msg);
      const s = target(msg);
      if (!s) return fail("NOT_SUBSCRIBED", msg);
      const room = roomOf(user, s.entity, s.id);
      const key = lockKey(room, msg.field);
      const holderValue = user.id + "/" + s.tab;
      // SET NX; on failure GET names the holder. A GET that finds nothing
      // means the lock went between the two (e.g. our own UNLOCK's DEL):
      // try again rather than deny with no holder.
      let ok = false;
      let holder = null;
      for (let tries = 0; tries < 3 && !ok && holder === null; tries++) {
        ok = (await redis.set(key, holderValue, "PX", LOCK_TTL_MS, "NX")) === "OK";
        if (ok) {
          holder = holderValue;
          break;
        }
        holder = await redis.get(key);
        if (holder === holderValue) {
          ok = true; // already ours: refresh
          await redis.pexpire(key, LOCK_TTL_MS);
        }
      }
      if (ok) s.locks.add(msg.field);
      socket.emit("lock_ack", {
        entity: s.entity,
        id: s.id,
        field: msg.field,
        success: ok,
        holder: holder ? { id: holder.split("/")[0] } : null,
        request_id: msg.request_id || null,
      });
      if (ok) socket.to(room).emit("lock", { entity: s.entity, id: s.id, field: msg.field, holder: user.id, locked: true });
    } catch (e) {
      onError(e);
    }
  });

  socket.on("unlock", async (msg) => {
    try {
      if (!msg || !KEY_PART.test(msg.field)) return fail("BAD_FIELD", msg);
      const s = target(msg);
      if (!s) return fail("NOT_SUBSCRIBED", msg);
      const room = roomOf(user, s.entity, s.id);
      const key = lockKey(room, msg.field);
      if ((await redis.get(key)) === user.id + "/" + s.tab) {
        await redis.del(key);
        s.locks.delete(msg.field);
        socket.to(room).emit("lock", { entity: s.entity, id: s.id, field: msg.field, holder: null, locked: false });
      }
    } catch (e) {
      onError(e);
    }
  });

  // A tab leaves: its entry and the locks it holds.
  async function release(room, s) {
    const m = redis.multi().hdel(tabsKey(room), s.tab);
    await m.exec();
    for (const f of s.locks) {
      const key = lockKey(room, f);
      if ((await redis.get(key)) === user.id + "/" + s.tab) await redis.del(key);
    }
    s.locks.clear();
  }

  socket.on("disconnect", async () => {
    try {
      for (const [room, s] of subs) {
        await release(room, s);
        await broadcastPresence(room, s.entity, s.id);
      }
      subs.clear();
    } catch (e) {
      onError(e);
    }
  });
});

httpServer.listen(PORT, "127.0.0.1", () => {
  console.log(
    "level=info component=sio msg=listening port=%d path=%s redis=%s:%d auth=%s pid=%d",
    PORT, PATH, REDIS_HOST, REDIS_PORT, SECRET ? "hs256" : "OFF", process.pid
  );
  if (!SECRET) console.warn("level=warn component=sio msg=\"no secret: JWT auth is OFF\"");
});

let closing = false;
for (const c of [redis, pubClient, subClient]) {
  c.on("error", (e) => {
    if (!closing) console.error("level=error component=redis msg=%s", JSON.stringify(String(e && e.message)));
  });
}
// Close the sockets (their disconnect handlers clean Redis up as far as
// they get) and exit a second later, whatever is still in flight.
function shutdown() {
  if (closing) return;
  closing = true;
  io.close();
  setTimeout(() => process.exit(0), 1000);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
