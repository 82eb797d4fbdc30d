// presence-client.js - the browser client of presence (ES module, no
// dependencies). This is the walking-skeleton version: connect, SUB,
// heartbeat every 30 s, PRESENCE events, reconnect with backoff. Locks,
// away detection and the React hook come with the browser-client issue.
//
//   import { PresenceClient } from "/presence-client.js";
//   const pc = new PresenceClient({ url: "ws://host/ws/presence", token });
//   pc.on("presence", (p) => render(p.users, p.viewers));
//   pc.subscribe("order", "42");

export class PresenceClient {
  constructor({ url, token, query = {}, heartbeatMs = 30000, maxDelayMs = 30000 } = {}) {
    this.url = url || `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/presence`;
    this.token = token;
    this.query = query;
    this.heartbeatMs = heartbeatMs;
    this.maxDelayMs = maxDelayMs;
    this.tabId = sessionStorage.getItem("presence.tab") ||
      `tab-${Math.random().toString(36).slice(2, 10)}`;
    sessionStorage.setItem("presence.tab", this.tabId);
    this.subs = new Map(); // "entity:id" -> {entity, id, mode}
    this.handlers = {};
    this.attempt = 0;
    this.closed = false;
    this.connect();
    addEventListener("pagehide", () => this.close());
  }

  on(event, fn) { (this.handlers[event] ||= []).push(fn); return this; }
  emit(event, arg) { (this.handlers[event] || []).forEach((fn) => fn(arg)); }

  connect() {
    const params = new URLSearchParams(this.query);
    if (this.token) params.set("access_token", this.token);
    const ws = new WebSocket(`${this.url}?${params}`);
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.emit("connection", { connected: true });
      for (const s of this.subs.values()) this.sendSub(s);
      this.hb = setInterval(() => this.send({ type: "HB" }), this.heartbeatMs);
    };
    ws.onmessage = (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === "PRESENCE") this.emit("presence", msg);
      else if (msg.type === "ERROR") this.emit("error", msg);
    };
    ws.onclose = (e) => {
      clearInterval(this.hb);
      this.emit("connection", { connected: false, code: e.code });
      if (this.closed || e.code === 4401) return;
      const base = Math.min(this.maxDelayMs, 1000 * 2 ** this.attempt++);
      setTimeout(() => this.connect(), base / 2 + Math.random() * base / 2);
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  sendSub(s) { this.send({ type: "SUB", entity: s.entity, id: s.id, tab_id: this.tabId, mode: s.mode }); }

  subscribe(entity, id, mode = "view") {
    const s = { entity, id, mode };
    this.subs.set(`${entity}:${id}`, s);
    this.sendSub(s);
  }

  heartbeat(fields = {}) { this.send({ type: "HB", ...fields }); }

  unsubscribe(entity, id) {
    this.subs.delete(`${entity}:${id}`);
    this.send({ type: "UNSUB", entity, id });
  }

  close() {
    this.closed = true;
    for (const s of this.subs.values()) this.send({ type: "UNSUB", entity: s.entity, id: s.id });
    if (this.ws) this.ws.close();
  }
}
