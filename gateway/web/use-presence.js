// use-presence.js - a thin React hook over presence-client.js, for apps that
// use React (the core client does not need React). Served by the gateway at
// /use-presence.js; in a bundled app, copy it beside presence-client.js.
//
//   import { PresenceClient } from "./presence-client.js";
//   import { PresenceProvider, usePresence } from "./use-presence.js";
//   const client = new PresenceClient({ token: getToken });
//   <PresenceProvider client={client}><OrderForm id="42" /></PresenceProvider>
//
//   function OrderForm({ id }) {
//     const { presence, acquireLock, releaseLock, error } = usePresence({ entity: "order", id });
//     // presence.users, presence.stale, presence.busyBy, presence.version, presence.connected
//   }
//
// The hook subscribes on mount (and when entity/id change) and unsubscribes
// on unmount. `presence` is always an object: before the first PRESENCE it
// has no users, stale false, version 0. Limits: one PresenceClient per
// provider; `error` is the last ERROR event (or a failed lock request).
// Related: docs/client.md, tests/js/use-presence.test.mjs.
import { createContext, createElement, useCallback, useContext, useEffect, useState } from "react";

const Ctx = createContext(null);

/** Makes `client` the PresenceClient of the hooks below it. */
export function PresenceProvider({ client, children }) {
  return createElement(Ctx.Provider, { value: client }, children);
}

const EMPTY = Object.freeze({ users: [], others: [], locks: [], stale: false, busyBy: null, version: 0 });

function initial(client, entity, id) {
  const p = client && client.getPresence(entity, id);
  return p || { ...EMPTY, entity, id, lockOf: () => null, connected: !!(client && client.connected) };
}

/**
 * @param {{entity: string, id: string, mode?: "view"|"edit", client?: import("./presence-client.js").PresenceClient}} o
 * @returns {{presence: object, acquireLock: (field: string) => Promise<object>,
 *            releaseLock: (field: string) => Promise<object>, error: object|null}}
 */
export function usePresence({ entity, id, mode = "view", client: explicit } = {}) {
  const fromCtx = useContext(Ctx);
  const client = explicit || fromCtx;
  if (!client) throw new Error("usePresence: no PresenceClient (wrap the tree in <PresenceProvider client=...>)");
  const [presence, setPresence] = useState(() => initial(client, entity, id));
  const [error, setError] = useState(null);

  useEffect(() => {
    setPresence(initial(client, entity, id));
    const offP = client.on("presence", (p) => { if (p.entity === entity && p.id === id) setPresence(p); });
    const offC = client.on("connection", (c) => setPresence((p) => ({ ...p, connected: c.connected })));
    const offE = client.on("error", (e) => setError(e));
    client.subscribe(entity, id, { mode });
    return () => { offP(); offC(); offE(); client.unsubscribe(entity, id); };
  }, [client, entity, id, mode]);

  const acquireLock = useCallback((field) => client.acquireLock(field, { entity, id })
    .catch((e) => { setError({ code: e.code || "ERROR", message: e.message, requestId: null }); throw e; }),
  [client, entity, id]);
  const releaseLock = useCallback((field) => client.releaseLock(field, { entity, id })
    .catch((e) => { setError({ code: e.code || "ERROR", message: e.message, requestId: null }); throw e; }),
  [client, entity, id]);

  return { presence, acquireLock, releaseLock, error };
}
