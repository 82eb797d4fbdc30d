// presence-client.js - the browser client of presence. An ES module with no
// dependencies and no build step, served by the gateway at /presence-client.js.
//
//   import { PresenceClient } from "/presence-client.js";
//   const pc = new PresenceClient({ token: () => myApp.fetchPresenceToken() });
//   pc.on("presence", (p) => render(p));          // users, locks, stale, busyBy, version
//   pc.on("connection", (c) => showState(c.state)); // connecting | open | reconnecting | failed | closed
//   pc.on("error", (e) => console.warn(e.code, e.message));
//   pc.subscribe("order", "42");
//   const r = await pc.acquireLock("amount");    // {granted, holder, token}
//
// What it does (docs/client.md is the user guide, docs/protocol.md the wire):
// - connects to /ws/presence with `access_token`; `token` is a string or a
//   (possibly async) function asked again before every connection attempt;
// - reconnects with exponential backoff and jitter (1 s doubling to a 30 s
//   cap, `reconnect.maxAttempts` consecutive failures at most, reset once a
//   connection opens) and re-subscribes everything it held, same tab id; a
//   SUB refused for a reason that passes (UNAVAILABLE: the gateway's Kafka
//   is not up yet) is sent again with backoff until a PRESENCE confirms it;
// - heartbeats every 30 s; status "away" after 2 minutes without user
//   activity (pointer, keys, scroll, focus), "online" again on activity;
// - on `pagehide`/`beforeunload` sends UNSUB for every record (best effort)
//   and closes; a page restored from the back/forward cache reconnects;
// - acquireLock/releaseLock return promises settled by the server's answer
//   (LOCK_ACK, resp. the PRESENCE that shows the lock gone) or a timeout;
// - ERROR messages (RATE_LIMITED, UNAVAILABLE, ...) become `error` events.
//
// Testable without a browser: WebSocket, timers, clock, randomness and the
// window are injectable (tests/js/presence-client.test.mjs).
// Limits: one tab id per client instance (two instances in one page are two
// tabs); the token's claims are read (never verified) only to know which
// user is "me".

/** Delay before reconnection attempt `attempt` (0-based): the nominal delay
 * min(maxMs, baseMs * 2^attempt), less a random part of at most
 * `jitter` of it, so delays fall in [nominal * (1 - jitter), nominal] and
 * never above maxMs. `random` returns [0, 1). */
export function backoffDelay(attempt, { baseMs = 1000, maxMs = 30000, jitter = 0.5, random = Math.random } = {}) {
  const nominal = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(nominal * (1 - jitter * random()));
}

/** The claims of a JWT, read without verifying it (the gateway verifies);
 * null when it is not a JWT. */
export function decodeToken(token) {
  try {
    const part = String(token).split(".")[1];
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
    const bin = atob(b64);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

/** A PRESENCE message as the client hands it out: the wire fields plus
 * what a UI asks most (me, others, lock lookup). */
export function viewOf(msg, { tabId, userId, connected = true } = {}) {
  const viewers = (msg.viewers || []).map((v) => ({ ...v, name: v.user_name || v.id, self: v.id === userId }));
  const locks = (msg.locks || []).map((l) => ({
    ...l,
    name: l.user_name || l.user,
    mine: l.tab_id != null ? l.tab_id === tabId : l.user === userId,
  }));
  return {
    entity: msg.entity,
    id: msg.id,
    users: viewers,
    others: viewers.filter((v) => !v.self),
    locks,
    lockOf: (field) => locks.find((l) => l.field === field) || null,
    stale: !!msg.stale,
    busyBy: msg.busyBy ?? null,
    version: msg.version ?? 0,
    connected,
  };
}

// Close codes after which a connection that opened does not count as a success.
const NO_RESET = new Set([4401, 1013]);

// ERROR codes of a refused SUB that are worth sending it again for.
const RETRY_SUB = new Set(["UNAVAILABLE", "RATE_LIMITED", "TIMEOUT", "NOT_SUBSCRIBED"]);

const ACTIVITY_EVENTS = ["pointerdown", "pointermove", "keydown", "wheel", "scroll", "touchstart", "focus"];

const defaultTimers = () => ({
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  setInterval: (fn, ms) => setInterval(fn, ms),
  clearInterval: (t) => clearInterval(t),
});

function randomId() {
  const c = globalThis.crypto;
  if (c && c.randomUUID) return c.randomUUID().replace(/-/g, "").slice(0, 16);
  return Math.random().toString(36).slice(2, 12) + Math.random().toString(36).slice(2, 8);
}

export class PresenceClient {
  /**
   * @param {object} o
   * @param {string} [o.url] ws(s)://host/ws/presence (default: this page's host)
   * @param {string|function():(string|Promise<string>)} [o.token] access token, or a function asked before each connection
   * @param {object} [o.query] extra query arguments (dev mode: user, name, tenant)
   * @param {string} [o.tabId] this tab's id (default: random per instance)
   * @param {number} [o.heartbeatMs=30000]
   * @param {number} [o.awayAfterMs=120000] no activity this long: status away (0: never)
   * @param {number} [o.lockTimeoutMs=8000] acquireLock/releaseLock give up after this
   * @param {object} [o.reconnect] {baseMs=1000, maxMs=30000, jitter=0.5, maxAttempts=Infinity}
   * @param {boolean} [o.autoConnect=true]
   * injectable for tests: WebSocket, timers {setTimeout, clearTimeout, setInterval, clearInterval},
   * now(), random(), window (an EventTarget for activity and pagehide; null: none)
   */
  constructor(o = {}) {
    const win = "window" in o ? o.window : (typeof window !== "undefined" ? window : null);
    this.window = win;
    const loc = win && win.location;
    this.url = o.url || (loc ? `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}/ws/presence` : null);
    this.token = o.token ?? null;
    this.query = o.query || {};
    this.tabId = o.tabId || `tab-${randomId()}`;
    this.heartbeatMs = o.heartbeatMs ?? 30000;
    this.awayAfterMs = o.awayAfterMs ?? 120000;
    this.lockTimeoutMs = o.lockTimeoutMs ?? 8000;
    this.reconnectOpts = { baseMs: 1000, maxMs: 30000, jitter: 0.5, maxAttempts: Infinity, ...(o.reconnect || {}) };
    this.WebSocket = o.WebSocket || globalThis.WebSocket;
    this.timers = o.timers || defaultTimers();
    this.now = o.now || (() => Date.now());
    this.random = o.random || Math.random;

    this.user = null;          // {id, name, tenant} from the token's claims
    this.state = "idle";       // idle | connecting | open | reconnecting | failed | closed
    this.status = "online";    // online | away
    this.attempt = 0;          // consecutive failed attempts
    this.subs = new Map();     // "entity\u0000id" -> {entity, id, mode, dirty, field, presence}
    this.handlers = new Map();
    this.pending = new Map();  // request_id -> {resolve, reject, timer, kind, key, field}
    this.seq = 0;
    this.ws = null;
    this.hbTimer = null;
    this.retryTimer = null;
    this.awayTimer = null;
    this.lastActivity = this.now();
    this.stopped = false;

    if (win && win.addEventListener) {
      this.onActivity = () => this.activity();
      for (const e of ACTIVITY_EVENTS) win.addEventListener(e, this.onActivity, { passive: true, capture: true });
      this.onHide = () => this.suspend();
      win.addEventListener("pagehide", this.onHide);
      win.addEventListener("beforeunload", this.onHide);
      this.onShow = (e) => { if (e && e.persisted) this.connect(); };
      win.addEventListener("pageshow", this.onShow);
    }
    this.armAway();
    if (o.autoConnect !== false) this.connect();
  }

  // ---- events ------------------------------------------------------------

  /** Listen to "presence" (view), "connection" ({state, connected, attempt,
   * delayMs, code}), "error" ({code, message, requestId}), "lock"
   * (LOCK_ACK as {entity, id, field, granted, holder, token}) and "status"
   * ("online" | "away"). Returns a function that removes the listener. */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) { this.handlers.get(event)?.delete(fn); }

  emit(event, arg) {
    for (const fn of [...(this.handlers.get(event) || [])]) {
      try { fn(arg); } catch (e) { console.error("presence listener failed", e); }
    }
  }

  get connected() { return this.state === "open"; }

  // ---- connection ----------------------------------------------------------

  setState(state, extra = {}) {
    this.state = state;
    this.emit("connection", { state, connected: state === "open", attempt: this.attempt, ...extra });
  }

  /** Open the connection (again). A no-op while one is open or being opened. */
  async connect() {
    if (this.ws || this.state === "connecting") return;
    if (this.state === "failed") this.attempt = 0; // a new try by the app
    this.stopped = false;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.setState("connecting");
    let token = null;
    try {
      token = typeof this.token === "function" ? await this.token() : this.token;
    } catch (e) {
      this.emit("error", { code: "TOKEN", message: `could not get a token: ${e && e.message ? e.message : e}`, requestId: null });
      this.retry(null);
      return;
    }
    if (this.stopped) { this.setState("closed"); return; }
    if (token) {
      const c = decodeToken(token);
      if (c) this.user = { id: c.sub, name: c.name || c.sub, tenant: c.tenant };
    } else if (this.query.user) {
      this.user = { id: this.query.user, name: this.query.name || this.query.user, tenant: this.query.tenant };
    }
    const params = new URLSearchParams(this.query);
    if (token) params.set("access_token", token);
    let ws;
    try {
      ws = new this.WebSocket(`${this.url}?${params}`);
    } catch (e) {
      this.emit("error", { code: "CONNECT", message: String(e && e.message ? e.message : e), requestId: null });
      this.retry(null);
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.setState("open");
      for (const s of this.subs.values()) this.sendSub(s);
      this.timers.clearInterval(this.hbTimer);
      this.hbTimer = this.timers.setInterval(() => this.heartbeatAll(), this.heartbeatMs);
    };
    ws.onmessage = (e) => { if (this.ws === ws) this.receive(e.data); };
    ws.onerror = () => {}; // the close that follows says what happens
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.timers.clearInterval(this.hbTimer);
      this.hbTimer = null;
      this.failPending("DISCONNECTED", "the connection closed");
      for (const s of this.subs.values()) { this.timers.clearTimeout(s.retryTimer); s.retryTimer = null; s.subAttempt = 0; }
      for (const s of this.subs.values()) {
        if (s.presence) { s.presence = { ...s.presence, connected: false }; this.emit("presence", s.presence); }
      }
      if (this.stopped) { this.setState("closed", { code: e.code }); return; }
      // 4401: the token was refused. A token function may give a fresh
      // one, so keep trying (with backoff); a fixed token never works again.
      if (e.code === 4401 && typeof this.token !== "function") {
        this.setState("failed", { code: e.code, reason: "unauthorized" });
        return;
      }
      // A connection that opened resets the schedule, unless the gateway
      // closed it at once for a reason that repeats (token refused: 4401;
      // at its connection limit: 1013), which must keep backing off.
      if (opened && !NO_RESET.has(e.code)) this.attempt = 0;
      this.retry(e.code);
    };
  }

  retry(code) {
    this.ws = null;
    if (this.attempt >= this.reconnectOpts.maxAttempts) {
      this.setState("failed", { code, reason: "max attempts" });
      this.emit("error", { code: "RECONNECT_FAILED", message: `gave up after ${this.attempt} attempts`, requestId: null });
      return;
    }
    const delayMs = backoffDelay(this.attempt, { ...this.reconnectOpts, random: this.random });
    this.attempt++;
    this.setState("reconnecting", { code, delayMs });
    this.retryTimer = this.timers.setTimeout(() => { this.retryTimer = null; this.state = "idle"; this.connect(); }, delayMs);
  }

  /** Leave every record (UNSUB, best effort) and close without reconnecting;
   * connect() resumes with the same subscriptions. Used on pagehide. */
  suspend() {
    this.stopped = true;
    this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const s of this.subs.values()) this.send({ type: "UNSUB", entity: s.entity, id: s.id });
    const ws = this.ws;
    if (ws) { try { ws.close(1000, "page hidden"); } catch { /* closing anyway */ } }
    else if (this.state !== "closed") this.setState("closed");
  }

  /** Unsubscribe, close and forget the window listeners. */
  close() {
    this.suspend();
    this.timers.clearTimeout(this.awayTimer);
    const win = this.window;
    if (win && win.removeEventListener && this.onActivity) {
      for (const e of ACTIVITY_EVENTS) win.removeEventListener(e, this.onActivity, { capture: true });
      win.removeEventListener("pagehide", this.onHide);
      win.removeEventListener("beforeunload", this.onHide);
      win.removeEventListener("pageshow", this.onShow);
    }
  }

  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1 /* OPEN */) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  // ---- subscriptions -------------------------------------------------------

  static key(entity, id) { return `${entity}\u0000${id}`; }

  /** SUB carries a request id: a SUB the gateway refuses for a reason that
   * passes (UNAVAILABLE while its Kafka is down, e.g. right after a restart;
   * RATE_LIMITED) is sent again with backoff until a PRESENCE confirms it. */
  sendSub(s) {
    const rid = `s${++this.seq}`;
    const m = { type: "SUB", entity: s.entity, id: s.id, tab_id: this.tabId, mode: s.mode, status: this.status,
      request_id: rid };
    if (s.dirty) m.dirty = true;
    if (s.field) m.field = s.field;
    if (this.send(m)) s.subRid = rid;
  }

  resubscribeLater(s) {
    if (s.retryTimer || !this.subs.has(PresenceClient.key(s.entity, s.id))) return;
    const delayMs = backoffDelay(s.subAttempt || 0, { ...this.reconnectOpts, maxMs: 10000, random: this.random });
    s.subAttempt = (s.subAttempt || 0) + 1;
    s.retryTimer = this.timers.setTimeout(() => {
      s.retryTimer = null;
      if (this.subs.get(PresenceClient.key(s.entity, s.id)) === s) this.sendSub(s);
    }, delayMs);
  }

  /** Watch a record (joins its presence). Options: mode "view" | "edit". */
  subscribe(entity, id, { mode = "view" } = {}) {
    const k = PresenceClient.key(entity, id);
    let s = this.subs.get(k);
    if (!s) {
      s = { entity, id, mode, dirty: false, field: null, presence: null, subRid: null, subAttempt: 0, retryTimer: null };
      this.subs.set(k, s);
    }
    else s.mode = mode;
    this.sendSub(s);
    return { unsubscribe: () => this.unsubscribe(entity, id), update: (f) => this.update(entity, id, f) };
  }

  unsubscribe(entity, id) {
    const k = PresenceClient.key(entity, id);
    const s = this.subs.get(k);
    if (!s) return;
    this.subs.delete(k);
    this.timers.clearTimeout(s.retryTimer);
    this.send({ type: "UNSUB", entity, id });
  }

  /** The last PRESENCE view of a record, or null. */
  getPresence(entity, id) { return this.subs.get(PresenceClient.key(entity, id))?.presence || null; }

  /** Change this tab's state on a record: {mode, dirty, field, cursor}; sent
   * at once as an HB (only what changed), and kept for re-subscription. */
  update(entity, id, fields) {
    const s = this.subs.get(PresenceClient.key(entity, id));
    if (!s) return;
    const m = { type: "HB", entity, id };
    let changed = false;
    for (const f of ["mode", "dirty", "field"]) {
      if (f in fields && fields[f] !== s[f]) { s[f] = fields[f]; if (fields[f] != null) m[f] = fields[f]; changed = true; }
    }
    if ("cursor" in fields) { m.cursor = fields.cursor; changed = true; }
    if (changed) this.send(m);
  }

  heartbeatAll() {
    for (const s of this.subs.values()) this.send({ type: "HB", entity: s.entity, id: s.id, status: this.status });
  }

  // ---- away ----------------------------------------------------------------

  armAway() {
    this.timers.clearTimeout(this.awayTimer);
    this.awayTimer = null;
    if (!this.awayAfterMs) return;
    const left = this.lastActivity + this.awayAfterMs - this.now();
    this.awayTimer = this.timers.setTimeout(() => this.checkAway(), Math.max(0, left));
  }

  checkAway() {
    this.awayTimer = null;
    if (this.now() - this.lastActivity >= this.awayAfterMs) this.setStatus("away");
    else this.armAway();
  }

  /** Note user activity (the window listeners call it; apps may too). */
  activity() {
    this.lastActivity = this.now();
    if (this.status === "away") { this.setStatus("online"); this.armAway(); }
    else if (!this.awayTimer) this.armAway();
  }

  setStatus(status) {
    if (this.status === status) return;
    this.status = status;
    this.emit("status", status);
    for (const s of this.subs.values()) this.send({ type: "HB", entity: s.entity, id: s.id, status });
  }

  // ---- locks ---------------------------------------------------------------

  target(opts) {
    if (opts && opts.entity) return { entity: opts.entity, id: opts.id };
    if (this.subs.size === 1) { const s = this.subs.values().next().value; return { entity: s.entity, id: s.id }; }
    throw new Error("acquireLock/releaseLock: pass {entity, id} when subscribed to more than one record");
  }

  /** Ask for a field lock. Resolves with {granted, holder, token, field}
   * (granted false: someone else holds it, `holder` says who); rejects with
   * an Error whose `code` is the server's ERROR code (TIMEOUT, UNAVAILABLE,
   * ...), "TIMEOUT" after lockTimeoutMs, or "DISCONNECTED". */
  acquireLock(field, opts) {
    return this.request("LOCK", field, opts);
  }

  /** Release a field lock. Resolves when a PRESENCE shows this tab no longer
   * holds it; rejects like acquireLock. */
  releaseLock(field, opts) {
    return this.request("UNLOCK", field, opts);
  }

  request(type, field, opts) {
    let t;
    try { t = this.target(opts); } catch (e) { return Promise.reject(e); }
    const rid = `${type === "LOCK" ? "l" : "u"}${++this.seq}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ type, entity: t.entity, id: t.id, field, request_id: rid })) {
        reject(Object.assign(new Error("not connected"), { code: "DISCONNECTED" }));
        return;
      }
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(rid);
        reject(Object.assign(new Error(`no answer to ${type} ${field} in ${this.lockTimeoutMs} ms`), { code: "TIMEOUT" }));
      }, this.lockTimeoutMs);
      const key = PresenceClient.key(t.entity, t.id);
      this.pending.set(rid, { resolve, reject, timer, type, key, field });
      // an UNLOCK of a lock this tab does not hold (and is not asking for)
      // changes nothing, so no PRESENCE would answer it: done at once
      if (type === "UNLOCK") {
        const l = this.subs.get(key)?.presence?.lockOf(field);
        const asking = [...this.pending.values()].some((p) => p.type === "LOCK" && p.key === key && p.field === field);
        if ((!l || !l.mine) && !asking) this.settle(rid, true, { released: true, field });
      }
    });
  }

  settle(rid, ok, value) {
    const p = this.pending.get(rid);
    if (!p) return;
    this.pending.delete(rid);
    this.timers.clearTimeout(p.timer);
    (ok ? p.resolve : p.reject)(value);
  }

  failPending(code, message) {
    for (const rid of [...this.pending.keys()]) this.settle(rid, false, Object.assign(new Error(message), { code }));
  }

  // ---- incoming ------------------------------------------------------------

  receive(data) {
    let msg;
    try { msg = JSON.parse(data); } catch { return; }
    if (!msg || typeof msg !== "object") return;
    if (msg.type === "PRESENCE") {
      const k = PresenceClient.key(msg.entity, msg.id);
      const s = this.subs.get(k);
      if (!s) return; // a push that crossed our UNSUB
      s.subAttempt = 0;
      s.presence = viewOf(msg, { tabId: this.tabId, userId: this.user && this.user.id, connected: this.connected });
      for (const [rid, p] of this.pending) { // UNLOCKs are answered by the state
        if (p.type === "UNLOCK" && p.key === k) {
          const l = s.presence.lockOf(p.field);
          if (!l || !l.mine) this.settle(rid, true, { released: true, field: p.field });
        }
      }
      this.emit("presence", s.presence);
    } else if (msg.type === "LOCK_ACK") {
      const ack = { entity: msg.entity, id: msg.id, field: msg.field, granted: !!msg.success,
        holder: msg.holder ? { id: msg.holder.id, name: msg.holder.user_name || msg.holder.id } : null,
        token: msg.token ?? null };
      this.emit("lock", ack);
      if (msg.request_id) this.settle(msg.request_id, true, ack);
    } else if (msg.type === "ERROR") {
      const err = { code: msg.code, message: msg.message, requestId: msg.request_id ?? null };
      this.emit("error", err);
      const rid = err.requestId;
      if (!rid) return;
      const p = this.pending.get(rid);
      if (p && err.code === "NOT_SUBSCRIBED") { // the gateway lost our SUB: send it again
        const s = this.subs.get(p.key);
        if (s) this.resubscribeLater(s);
      }
      this.settle(rid, false, Object.assign(new Error(err.message), { code: err.code }));
      for (const s of this.subs.values()) {
        if (s.subRid === rid && RETRY_SUB.has(err.code)) this.resubscribeLater(s);
      }
    }
  }
}
