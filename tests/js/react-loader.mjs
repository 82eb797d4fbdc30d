// react-loader.mjs - resolves the bare specifier "react" to react-stub.mjs
// (registered by use-presence.test.mjs with node:module's register()).
export async function resolve(specifier, context, next) {
  if (specifier === "react") return { url: new URL("./react-stub.mjs", import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
