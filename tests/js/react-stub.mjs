// react-stub.mjs - just enough of React's hook API to run use-presence.js
// under node without React: one component instance at a time, state
// updates re-render synchronously, effects run after each render when their
// dependencies change, cleanups on unmount. Not a renderer; a test double.
let current = null;

export function createContext(defaultValue) { return { _value: defaultValue, Provider: "Provider" }; }
export function createElement(type, props, ...children) { return { type, props, children }; }
export function useContext(ctx) { return ctx._value; }

function slot(init) {
  const h = current;
  const i = h.i++;
  if (!(i in h.slots)) h.slots[i] = init();
  return [h, i];
}
const same = (a, b) => a && b && a.length === b.length && a.every((x, k) => Object.is(x, b[k]));

export function useState(init) {
  const [h, i] = slot(() => ({ v: typeof init === "function" ? init() : init }));
  const s = h.slots[i];
  s.set ||= (next) => {
    const v = typeof next === "function" ? next(s.v) : next;
    if (Object.is(v, s.v)) return;
    s.v = v;
    h.rerender();
  };
  return [s.v, s.set];
}

export function useEffect(fn, deps) {
  const [h, i] = slot(() => ({ deps: undefined, cleanup: null }));
  const e = h.slots[i];
  if (!same(e.deps, deps)) { e.deps = deps; h.queue.push(e); e.fn = fn; }
}

export function useCallback(fn, deps) {
  const [h, i] = slot(() => ({ deps: undefined, fn: null }));
  const c = h.slots[i];
  if (!same(c.deps, deps)) { c.deps = deps; c.fn = fn; }
  return c.fn;
}

/** Render hook() as a component; returns {result, renders, unmount}. */
export function renderHook(hook) {
  const h = { slots: {}, i: 0, queue: [], out: { result: null, renders: 0 }, rendering: false };
  h.rerender = () => {
    if (h.rendering) return;
    h.rendering = true;
    h.i = 0;
    current = h;
    try { h.out.result = hook(); h.out.renders++; } finally { current = null; h.rendering = false; }
    const q = h.queue.splice(0);
    for (const e of q) { if (e.cleanup) e.cleanup(); e.cleanup = e.fn() || null; }
  };
  h.rerender();
  h.out.unmount = () => { for (const s of Object.values(h.slots)) if (s.cleanup) s.cleanup(); };
  return h.out;
}
