// The only module that talks to Tauri. It uses `window.__TAURI_INTERNALS__`, which Tauri
// injects into every webview, instead of `@tauri-apps/api`: without a bundler that package
// would have to be vendored (or exposed globally with `withGlobalTauri`), and Tessera needs
// only two of its functions. The protocol used here is the one `@tauri-apps/api/core`
// `invoke` and `@tauri-apps/api/event` `listen` speak (Tauri 2).
//
// Commands reject with `{ kind, message, reason? }` (see src-tauri/src/error.rs).

const internals = () => {
  const t = window.__TAURI_INTERNALS__;
  if (!t) throw new Error("Tessera's window must be opened by the Tessera app.");
  return t;
};

/** Call one of Tessera's commands. Argument names are snake_case. */
export function invoke(command, args = {}) {
  return internals().invoke(command, args);
}

/**
 * Listen to an app event. `handler` gets the payload. Returns a function that stops
 * listening.
 */
export async function listen(event, handler) {
  const t = internals();
  const callback = t.transformCallback((message) => handler(message.payload));
  const eventId = await t.invoke("plugin:event|listen", {
    event,
    target: { kind: "Any" },
    handler: callback,
  });
  return async () => {
    window.__TAURI_EVENT_PLUGIN_INTERNALS__?.unregisterListener(event, eventId);
    await t.invoke("plugin:event|unlisten", { event, eventId });
  };
}

/** The message of a rejected command (or of any thrown value). */
export function errorMessage(err) {
  if (err && typeof err === "object" && typeof err.message === "string") return err.message;
  return String(err);
}
