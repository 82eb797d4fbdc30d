// fakes.mjs - a fake clock, fake timers, a fake WebSocket and a fake window
// for the client's unit tests (presence-client.js takes all of them as
// options, so no browser and no server are needed).

export class FakeClock {
  constructor(t = 1_000_000) { this.t = t; this.seq = 0; this.timers = new Map(); }
  now = () => this.t;
  timersApi() {
    const add = (fn, ms, every) => { const id = ++this.seq; this.timers.set(id, { fn, at: this.t + Math.max(0, ms), every }); return id; };
    return {
      setTimeout: (fn, ms) => add(fn, ms, 0),
      clearTimeout: (id) => { this.timers.delete(id); },
      setInterval: (fn, ms) => add(fn, ms, ms),
      clearInterval: (id) => { this.timers.delete(id); },
    };
  }
  /** Advance by ms, running due timers in time order. */
  advance(ms) {
    const end = this.t + ms;
    for (;;) {
      let next = null;
      for (const [id, tm] of this.timers) if (tm.at <= end && (!next || tm.at < next[1].at)) next = [id, tm];
      if (!next) break;
      const [id, tm] = next;
      this.t = tm.at;
      if (tm.every) tm.at += tm.every; else this.timers.delete(id);
      tm.fn();
    }
    this.t = end;
  }
  pending() { return [...this.timers.values()].map((tm) => tm.at - this.t).sort((a, b) => a - b); }
}

/** Records every socket made; a test opens, feeds and closes them. */
export function fakeWebSocketClass() {
  const made = [];
  class FakeWS {
    constructor(url) { this.url = url; this.readyState = 0; this.sent = []; made.push(this); }
    send(s) { if (this.readyState !== 1) throw new Error("send on a socket that is not open"); this.sent.push(JSON.parse(s)); }
    close(code = 1000) { if (this.readyState === 3) return; this.readyState = 3; this.onclose?.({ code }); }
    // test side
    open() { this.readyState = 1; this.onopen?.({}); }
    recv(msg) { this.onmessage?.({ data: typeof msg === "string" ? msg : JSON.stringify(msg) }); }
    drop(code = 1006) { this.readyState = 3; this.onclose?.({ code }); }
  }
  FakeWS.made = made;
  return FakeWS;
}

export class FakeWindow {
  constructor() { this.listeners = new Map(); this.location = { protocol: "http:", host: "gw.test:8080" }; }
  addEventListener(t, fn) { if (!this.listeners.has(t)) this.listeners.set(t, new Set()); this.listeners.get(t).add(fn); }
  removeEventListener(t, fn) { this.listeners.get(t)?.delete(fn); }
  dispatch(t, e = {}) { for (const fn of [...(this.listeners.get(t) || [])]) fn(e); }
  count() { let n = 0; for (const s of this.listeners.values()) n += s.size; return n; }
}

/** Let pending promise callbacks (the async token fetch) run. */
export const flush = () => new Promise((r) => setImmediate(r));
