// react-loader.mjs - resolves the bare specifier "react" (imported by
// gateway/web/use-presence.js, which a bundler would resolve in an app) to
// the real React that scripts/setup.sh installs in tests/e2e/node_modules
// (pinned by tests/e2e/package-lock.json). Registered by
// use-presence.test.mjs with node:module's register().
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const require = createRequire(new URL("../e2e/package.json", import.meta.url));

export async function resolve(specifier, context, next) {
  if (specifier === "react") return { url: pathToFileURL(require.resolve("react")).href, shortCircuit: true };
  return next(specifier, context);
}
