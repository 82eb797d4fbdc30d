// demo.js - the script of the demo page (index.html): an "Edit Order" form
// wired to presence-client.js the way an application would be.
//
// URL: /?user=alice[&name=Alice][&tenant=demo][&order=1001]. The page gets
// a token from the gateway's development-mode issuer (/api/v1/dev/token),
// then connects with it like a real app. Focus on a field asks for its lock,
// blur releases it; a field someone else holds is disabled with their name;
// typing marks the tab dirty (the "editing" badge others see) until Save or
// Discard; while the back end writes the record (stale) the form is disabled
// under a banner. `window.presenceDemo` exposes the client (tests use it).
import { PresenceClient } from "/presence-client.js";

const q = new URLSearchParams(location.search);
const user = q.get("user") || `guest-${Math.floor(Math.random() * 9000 + 1000)}`;
const name = q.get("name") || user.charAt(0).toUpperCase() + user.slice(1);
const tenant = q.get("tenant") || "demo";
const order = q.get("order") || "1001";
const $ = (id) => document.getElementById(id);
let last = null; // the latest presence view of the order

$("order").textContent = `#${order}`;
$("me").textContent = `You are ${name} (${user}) in tenant ${tenant}.`;
document.title = `Order #${order} · ${name}`;

let devTokensOff = false;
async function getToken() {
  const args = new URLSearchParams({ user, name, tenant });
  const r = await fetch(`/api/v1/dev/token?${args}`);
  if (r.status === 404) {
    devTokensOff = true;
    throw new Error("this gateway is not in development mode (auth.dev_mode); embed the client with your app's tokens");
  }
  const body = await r.json();
  if (!body.success) throw new Error(`${body.error.code}: ${body.error.message}`);
  return body.data.token;
}

const client = new PresenceClient({ token: getToken });
window.presenceDemo = { client, user, tenant, order };
client.subscribe("order", order, { mode: "edit" });

// ---- connection state -------------------------------------------------------
// The page is "live" once the gateway confirmed the subscription with a
// PRESENCE on the current connection (a SUB can be refused for a moment,
// e.g. right after a gateway restart); the form is editable only then, and
// never while the record is stale.
let conn = { state: "connecting" };
function renderConn() {
  const live = conn.state === "open" && !!(last && last.connected);
  const state = conn.state === "open" ? (live ? "live" : "joining") : conn.state;
  const el = $("conn");
  el.className = `pill ${state}`;
  el.dataset.state = state;
  el.textContent = {
    connecting: "connecting…",
    joining: "joining…",
    live: "live",
    reconnecting: `reconnecting in ${Math.ceil((conn.delayMs || 0) / 1000)} s…`,
    failed: "offline",
    closed: "closed",
  }[state] || state;
  if (!live) renderLocks(null);
  $("fields").disabled = !live || !!(last && last.stale);
}
client.on("connection", (c) => { conn = c; renderConn(); });

// ---- errors -------------------------------------------------------------------
const errors = [];
client.on("error", (e) => {
  errors.unshift(`${e.code}: ${e.message}`);
  errors.length = Math.min(errors.length, 3);
  $("errors").textContent = devTokensOff ? errors[0] : errors.join(" · ");
});

// ---- who's viewing --------------------------------------------------------------
function initials(n) {
  const parts = String(n).trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : (parts[0] || "")[1] || "")).toUpperCase();
}
function hue(s) { let h = 0; for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }

function renderStrip(p) {
  const strip = $("strip");
  const others = p.others;
  const shown = others.slice(0, 3).map((v) => {
    const d = document.createElement("div");
    d.className = `avatar ${v.status === "away" ? "away" : ""}`;
    d.style.background = `hsl(${hue(v.id)} 55% 42%)`;
    d.dataset.user = v.id;
    d.title = `${v.name}${v.has_dirty_tab ? " (editing, unsaved changes)" : ""}${v.status === "away" ? " (away)" : ""}` +
      (v.tabs > 1 ? ` – ${v.tabs} tabs` : "");
    d.textContent = initials(v.name);
    if (v.has_dirty_tab) {
      const b = document.createElement("span");
      b.className = "badge";
      b.dataset.testid = "editing";
      b.textContent = "editing";
      d.append(b);
    }
    return d;
  });
  if (others.length > 3) {
    const m = document.createElement("div");
    m.className = "avatar more";
    m.dataset.testid = "more";
    m.textContent = `+${others.length - 3}`;
    m.title = others.slice(3).map((v) => v.name).join(", ");
    shown.push(m);
  }
  if (!shown.length) {
    const n = document.createElement("span");
    n.className = "nobody";
    n.textContent = "nobody else";
    shown.push(n);
  }
  strip.replaceChildren(...shown);
}

// ---- locks ------------------------------------------------------------------------
const inputs = [...document.querySelectorAll("#fields input, #fields textarea")];

// A padlock drawn inline (no icon font or emoji needed), open or closed.
function padlock(closed) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  const shackle = document.createElementNS(ns, "path");
  shackle.setAttribute("d", closed ? "M4.5 7V5a3.5 3.5 0 0 1 7 0v2" : "M4.5 7V5a3.5 3.5 0 0 1 6.8-1.2");
  shackle.setAttribute("fill", "none");
  shackle.setAttribute("stroke", "currentColor");
  shackle.setAttribute("stroke-width", "1.6");
  const body = document.createElementNS(ns, "rect");
  for (const [k, v] of Object.entries({ x: 2.5, y: 7, width: 11, height: 8, rx: 1.5, fill: "currentColor" })) body.setAttribute(k, v);
  svg.append(shackle, body);
  return svg;
}

function showLock(ind, kind, text, title) {
  ind.className = `lock ${kind}`;
  ind.title = title;
  const label = document.createElement("span");
  label.textContent = text;
  ind.replaceChildren(...(text ? [padlock(kind !== ""), label] : []));
}

function renderLocks(p) {
  for (const input of inputs) {
    const field = input.name;
    const ind = document.querySelector(`[data-lock="${field}"]`);
    const l = p ? p.lockOf(field) : null;
    if (!l) {
      showLock(ind, "", p ? "free" : "", "");
      input.disabled = false;
      input.title = "";
    } else if (l.mine) {
      showLock(ind, "mine", "you", `you hold the lock (fencing token ${l.token})`);
      input.disabled = false;
      input.title = "";
    } else {
      showLock(ind, "other", l.name, `${l.name} is editing this field`);
      input.disabled = true;
      input.title = `locked by ${l.name}`;
    }
  }
}

for (const input of inputs) {
  const field = input.name;
  input.addEventListener("focus", async () => {
    client.update("order", order, { mode: "edit", field });
    try {
      const r = await client.acquireLock(field);
      if (!r.granted) {
        input.blur();
        const who = r.holder ? r.holder.name : "someone";
        showLock(document.querySelector(`[data-lock="${field}"]`), "other", who, `${who} is editing this field`);
      } else if (document.activeElement !== input) {
        client.releaseLock(field).catch(() => {});
      }
    } catch { /* shown by the error handler or fixed by the next PRESENCE */ }
  });
  input.addEventListener("blur", () => {
    const l = last && last.lockOf(field);
    if (!l || l.mine) client.releaseLock(field).catch(() => {});
  });
  input.addEventListener("input", () => client.update("order", order, { dirty: true }));
}

$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  client.update("order", order, { dirty: false });
});
$("discard").addEventListener("click", () => {
  $("form").reset();
  client.update("order", order, { dirty: false });
});

// ---- presence ---------------------------------------------------------------------
client.on("presence", (p) => {
  last = p;
  renderStrip(p);
  renderLocks(p.connected ? p : null); // renderConn() clears them too when not live
  $("version").textContent = String(p.version);
  const banner = $("stale");
  if (p.stale) {
    const who = p.users.find((v) => v.id === p.busyBy);
    banner.textContent = `This order is being modified by ${who ? who.name : p.busyBy || "the back end"}. ` +
      "Editing is disabled until the change is saved.";
    banner.classList.add("show");
  } else {
    banner.classList.remove("show");
    banner.textContent = "";
  }
  renderConn();
});
