// demo.js - the script of the demo page (index.html): an "Edit Order" form
// wired to presence-client.js the way an application would be.
//
// URL: /?user=alice[&name=Alice][&tenant=demo][&order=1001]. The page gets
// a token from the gateway's development-mode issuer (/api/v1/dev/token),
// then connects with it like a real app. Focus on a field asks for its lock,
// blur releases it; a field someone else holds is disabled with their name;
// a form that differs from the record's values is dirty (the "editing" badge
// others see) until Save or Discard; while the back end writes the record
// (stale) the form is disabled under a banner ("You are saving..." when the
// writer, busyBy, is this user). When the version goes up under unsaved edits
// a conflict notice offers Reload (the record's values) or Keep my edits;
// without unsaved edits the new version is just shown. The page has no back
// end of its own: "the record's values" are the form's values at load or at
// the last Save. `window.presenceDemo` exposes the client (tests use it).
import { PresenceClient } from "/presence-client.js";

const q = new URLSearchParams(location.search);
const user = q.get("user") || `guest-${Math.floor(Math.random() * 9000 + 1000)}`;
const name = q.get("name") || user.charAt(0).toUpperCase() + user.slice(1);
const tenant = q.get("tenant") || "demo"; // always sent: the gateway's own default may differ
const order = q.get("order") || "1001";
const $ = (id) => document.getElementById(id);
let last = null; // the latest presence view of the order
// who "me" is: the token's subject once the client has one, else the URL's user
const meId = () => (client.user && client.user.id) || user;

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

// ---- the form's values --------------------------------------------------------------
const inputs = [...document.querySelectorAll("#fields input, #fields textarea")];
const values = () => Object.fromEntries(inputs.map((i) => [i.name, i.value]));
let saved = values(); // the record's values: as loaded, or as last saved
function fill(v) { for (const i of inputs) i.value = v[i.name]; }
const isDirty = () => inputs.some((i) => i.value !== saved[i.name]);
function sendDirty() { client.update("order", order, { dirty: isDirty() }); }

// ---- who's viewing --------------------------------------------------------------
function initials(n) {
  const parts = String(n).trim().split(/[\s._-]+/).filter(Boolean);
  return ((parts[0] || "?")[0] + (parts.length > 1 ? parts[parts.length - 1][0] : (parts[0] || "")[1] || "")).toUpperCase();
}
function hue(s) { let h = 0; for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }

// The strip (aria-hidden) draws faces, and names on wide screens; the
// "Viewing:" list says the same in text for screen readers, and is shown
// instead of the names on narrow screens (index.html's media query).
function describe(v) {
  const notes = [v.has_dirty_tab ? "editing" : "", v.status === "away" ? "away" : "", v.tabs > 1 ? `${v.tabs} tabs` : ""];
  const n = notes.filter(Boolean);
  return n.length ? `${v.name} (${n.join(", ")})` : v.name;
}

function renderStrip(p) {
  const strip = $("strip");
  const others = p.others;
  const shown = others.slice(0, 3).map((v) => {
    const d = document.createElement("div");
    d.className = `avatar ${v.status === "away" ? "away" : ""}`;
    d.dataset.user = v.id;
    d.title = `${v.name}${v.has_dirty_tab ? " (editing, unsaved changes)" : ""}${v.status === "away" ? " (away)" : ""}` +
      (v.tabs > 1 ? ` – ${v.tabs} tabs` : "");
    const face = document.createElement("span");
    face.className = "face";
    face.style.background = `hsl(${hue(v.id)} 55% 42%)`;
    face.textContent = initials(v.name);
    if (v.has_dirty_tab) {
      const b = document.createElement("span");
      b.className = "badge";
      b.dataset.testid = "editing";
      b.textContent = "editing";
      face.append(b);
    }
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = v.name;
    d.append(face, label);
    return d;
  });
  if (others.length > 3) {
    const m = document.createElement("div");
    m.className = "avatar more";
    m.dataset.testid = "more";
    const face = document.createElement("span");
    face.className = "face";
    face.textContent = `+${others.length - 3}`;
    m.append(face);
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
  renderViewers(p);
}

const LIST_MAX = 8; // names in the "Viewing:" list before "N more"
function renderViewers(p) {
  const others = p ? p.others : [];
  const items = others.slice(0, LIST_MAX).map((v) => [describe(v), v.id]);
  if (others.length > LIST_MAX) items.push([`${others.length - LIST_MAX} more`, ""]);
  const me = p && p.users.find((v) => v.self);
  items.push([`${me ? me.name : name} (you)`, meId()]);
  $("viewers").replaceChildren(...items.map(([text, id]) => {
    const li = document.createElement("li");
    li.textContent = text;
    if (id) li.dataset.viewer = id;
    return li;
  }));
}
renderViewers(null);

// ---- locks ------------------------------------------------------------------------

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
  input.addEventListener("input", sendDirty);
}

// Save stands for the app's write (this page has none): the form's values
// become the record's; saving over a conflict overwrites the newer version.
$("form").addEventListener("submit", (e) => {
  e.preventDefault();
  saved = values();
  hideConflict();
  sendDirty();
});
$("discard").addEventListener("click", () => {
  fill(saved);
  hideConflict();
  sendDirty();
});

// ---- versions and conflicts ------------------------------------------------------
// seen: the version the form's edits are based on (the first PRESENCE's,
// then each one the user reloaded or kept edits over). A higher version with
// unsaved edits is a conflict, unless the write was this user's own.
let seen = null;
let writer = null; // {id, name} of the write in progress (busyBy while stale)

function nameOf(id, p) {
  const v = p && p.users.find((u) => u.id === id);
  return v ? v.name : id;
}

function showConflict(p, by) {
  const who = by ? by.name : "The back end";
  $("conflict-text").textContent = `${who} changed this order while you were editing ` +
    `(version ${seen} → ${p.version}). Reload to get the new version (drops your edits), ` +
    "or keep your edits (Save then overwrites the change).";
  $("conflict").classList.add("show");
}

function hideConflict() {
  const box = $("conflict");
  if (box.classList.contains("show") && last) seen = last.version;
  box.classList.remove("show");
}

function onVersion(p) {
  const by = writer;
  writer = p.stale && p.busyBy ? { id: p.busyBy, name: nameOf(p.busyBy, p) } : (p.stale ? writer : null);
  if (seen === null || !p.connected) { if (seen === null && p.connected) seen = p.version; return; }
  if (p.version <= seen) return;
  if (isDirty() && !(by && by.id === meId())) {
    showConflict(p, by);
    return;
  }
  if ($("conflict").classList.contains("show")) return; // edits undone, notice still open: its buttons move `seen`
  seen = p.version;
  const box = $("version-box");
  box.classList.remove("bumped");
  void box.offsetWidth; // restart the highlight
  box.classList.add("bumped");
}

$("conflict-reload").addEventListener("click", () => {
  fill(saved);
  hideConflict();
  sendDirty();
});
$("conflict-keep").addEventListener("click", hideConflict);

// ---- presence ---------------------------------------------------------------------
client.on("presence", (p) => {
  last = p;
  renderStrip(p);
  renderLocks(p.connected ? p : null); // renderConn() clears them too when not live
  $("version").textContent = String(p.version);
  const banner = $("stale");
  if (p.stale && p.busyBy && p.busyBy === meId()) {
    banner.textContent = "You are saving this order… Editing is disabled until your save completes.";
    banner.dataset.by = "you";
    banner.classList.add("show");
  } else if (p.stale) {
    banner.textContent = `This order is being modified by ${p.busyBy ? nameOf(p.busyBy, p) : "the back end"}. ` +
      "Editing is disabled until the change is saved.";
    banner.dataset.by = p.busyBy || "";
    banner.classList.add("show");
  } else {
    banner.classList.remove("show");
    banner.textContent = "";
    delete banner.dataset.by;
  }
  onVersion(p);
  renderConn();
});
