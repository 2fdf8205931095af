// The only module that talks to Tauri, through its public API (`@tauri-apps/api`, vendored
// as ES modules in ui/vendor/tauri-api at the version of the `tauri` crate; a Rust test
// checks the two agree). It also holds every name the page shares with Rust: commands,
// events and the values of the enums they carry. `src-tauri/tests/ipc_names.rs` checks
// each against its Rust definition (`src-tauri/src/views.rs`).
//
// Commands reject with `{ kind, message, reason? }` (see src-tauri/src/error.rs).

import { invoke as tauriInvoke } from "../vendor/tauri-api/core.js";
import { listen as tauriListen } from "../vendor/tauri-api/event.js";

/** The app's events (`EVENT_*` in views.rs). */
export const EVENT = Object.freeze({
  signInFinished: "signin:finished",
  signInProgress: "signin:progress",
  signInOrigin: "signin:origin",
  clipboardCleared: "clipboard:cleared",
  accountsChanged: "accounts:changed",
  storeOpened: "store:opened",
  agentAsk: "agent:ask",
  agentAskClosed: "agent:ask-closed",
  agentActivity: "agent:activity",
});

/** `agent_answer`'s `answer` (`AgentAnswer`). */
export const AGENT_ANSWER = Object.freeze({ allow: "allow", deny: "deny" });

/** What `agent:ask` asks (`AgentAskKind`). */
export const AGENT_ASK = Object.freeze({ signIn: "sign_in", confirm: "confirm" });

/** How a program's request ended (`Outcome` of the agent's activity). */
export const ACTIVITY_OUTCOME = Object.freeze({
  cache: "cache",
  refreshed: "refreshed",
  signedIn: "signed_in",
  denied: "denied",
  interactionRequired: "interaction_required",
  failed: "failed",
});

/** `copy_token`'s `format` (`CopyFormat`). */
export const COPY_FORMAT = Object.freeze({ raw: "raw", header: "header" });

/** `signin:finished`'s `status` (`SignInStatus`). */
export const SIGNIN_STATUS = Object.freeze({ added: "added", cancelled: "cancelled", failed: "failed" });

/** `signin:progress`'s `stage` (`SignInStage`). */
export const SIGNIN_STAGE = Object.freeze({ opened: "opened", page: "page", finishing: "finishing" });

/** A tool of the "Use with tools" panel (`ToolKind`). */
export const TOOL = Object.freeze({ kubectl: "kubectl", git: "git", run: "run" });

/** How a profile signs in (`SignInMethod` of tessera-core). */
export const SIGN_IN_METHOD = Object.freeze({ embedded: "embedded", browser: "browser", deviceCode: "device-code" });

/** A profile's `kind` (`ProfileKind`). */
export const PROFILE_KIND = Object.freeze({ entra: "entra", oidc: "oidc" });

/** Call one of Tessera's commands. Argument names are snake_case. */
export function invoke(command, args = {}) {
  return tauriInvoke(command, args);
}

/**
 * Listen to an app event. `handler` gets the payload. Returns a function that stops
 * listening.
 */
export function listen(event, handler) {
  return tauriListen(event, (message) => handler(message.payload));
}

/** The message of a rejected command (or of any thrown value). */
export function errorMessage(err) {
  if (err && typeof err === "object" && typeof err.message === "string") return err.message;
  return String(err);
}
