// lib.mjs - helpers of the browser tests: Debian's Chromium through
// playwright-core (never a downloaded browser), one browser context per
// user (a fresh profile each), and the driver's control server
// (run_e2e.py). Every wait is on a condition with a generous timeout.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const BASE = process.env.PX_E2E_BASE;
export const CONTROL = process.env.PX_E2E_CONTROL;
export const SHOTS = process.env.PX_E2E_SHOTS || "screenshots";
export const TENANT = process.env.PX_E2E_TENANT || "e2e";
export const WAIT_MS = 25000;

if (!BASE || !CONTROL) throw new Error("run through tests/e2e/run_e2e.py (PX_E2E_BASE and PX_E2E_CONTROL unset)");

export async function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
}

export const DESKTOP = { width: 900, height: 640 };
export const PHONE = { width: 390, height: 844 }; // a phone's CSS pixels, portrait

/** A user's page on an order: its own browser context (a DESKTOP window
 * unless `viewport` says otherwise), the demo page, connected and
 * subscribed ("live"). Console errors of the page are collected in
 * page.consoleErrors. */
export async function openAs(browser, user, order, { name, viewport = DESKTOP } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") page.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => page.consoleErrors.push(String(e)));
  page.frames_ = []; // the last WebSocket frames, shown when a wait fails
  const note = (dir, f) => { page.frames_.push(`${dir} ${String(f.payload).slice(0, 240)}`); page.frames_.splice(0, page.frames_.length - 30); };
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => note(">", f));
    ws.on("framereceived", (f) => note("<", f));
    ws.on("close", () => note("x", { payload: "closed" }));
  });
  const display = name || user.charAt(0).toUpperCase() + user.slice(1);
  const q = new URLSearchParams({ user, name: display, tenant: TENANT, order });
  await page.goto(`${BASE}/?${q}`);
  await waitState(page, "live");
  page.user = user;
  return page;
}

export async function waitState(page, state) {
  await page.locator(`[data-testid=conn][data-state=${state}]`).waitFor({ timeout: WAIT_MS });
}

/** Wait until fn(arg) is truthy in the page; `what` names it in the failure. */
export async function until(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT_MS, polling: 100 });
  } catch (e) {
    const strip = await page.locator("[data-testid=strip]").innerText().catch(() => "?");
    throw new Error(`${page.user}: timed out waiting for ${what} (strip: ${JSON.stringify(strip)}): ${e.message}\n` +
      `last WebSocket frames of ${page.user}:\n  ${page.frames_.join("\n  ")}`);
  }
}

/** The texts of a page's "Viewing:" list as assistive technology finds it
 * (the list named by its label), whether or not it is shown on screen. */
export function viewerList(page) {
  return page.getByRole("list", { name: "Viewing:" }).getByRole("listitem").allTextContents();
}

/** The user ids in a page's "who's viewing" strip. */
export function stripUsers(page) {
  return page.$$eval("[data-testid=strip] .avatar[data-user]", (els) => els.map((e) => e.dataset.user));
}

export async function waitStrip(page, users, what) {
  await until(page, (want) => {
    const got = [...document.querySelectorAll("[data-testid=strip] .avatar[data-user]")].map((e) => e.dataset.user);
    return JSON.stringify(got.sort()) === JSON.stringify([...want].sort());
  }, users, what || `strip = ${users.join(",")}`);
}

export async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`) });
}

export async function control(path, body = {}) {
  const r = await fetch(`${CONTROL}${path}`, { method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json" } });
  const j = await r.json();
  if (r.status !== 200) throw new Error(`control ${path}: ${r.status} ${JSON.stringify(j)}`);
  return j;
}

export function uniqueOrder(tag) {
  return `${tag}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
