// DOM and formatting helpers. Text always goes in through textContent: claim values and
// provider messages are untrusted.

export const $ = (id) => document.getElementById(id);

/** Create an element: el("td", { class: "value" }, "text", childNode, ...). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const nowSecs = () => Math.floor(Date.now() / 1000);

const pad = (n) => String(n).padStart(2, "0");

/** `14:05` in local time. */
function localTime(t) {
  const d = new Date(t * 1000);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** `2026-11-25 14:05:02` in local time. */
export function localDateTime(t) {
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `2026-11-25 13:05:02 UTC`. */
export function utcDateTime(t) {
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** The local time zone's offset, e.g. `UTC+01:00`. */
export function zoneLabel(t) {
  const off = -new Date(t * 1000).getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const a = Math.abs(off);
  return `UTC${sign}${pad(Math.floor(a / 60))}:${pad(a % 60)}`;
}

/** `59 min 12 s`, `2 h 5 min`, `3 days`. */
export function duration(secs) {
  const s = Math.abs(Math.round(secs));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} days`;
}

/** `in 59 min 12 s` / `12 s ago`. */
export function relative(t, now = nowSecs()) {
  const d = t - now;
  if (d === 0) return "now";
  return d > 0 ? `in ${duration(d)}` : `${duration(d)} ago`;
}

/** A token counts as "expiring soon" within this many seconds (MSAL refreshes 5 min early). */
export const EXPIRING_SOON_SECS = 300;

/**
 * What the account list says about an account's token: `{ cls, text, title }`.
 * `state` is the account view's `token` field.
 */
export function tokenState(state, now = nowSecs()) {
  if (!state) return { cls: "unknown", text: "No token yet", title: "No access token cached for the default scopes" };
  if (state.needs_sign_in) {
    return { cls: "needs", text: "Needs sign-in", title: state.needs_sign_in };
  }
  if (state.expires_on == null) {
    return state.has_refresh_token
      ? { cls: "unknown", text: "No token yet", title: "A refresh token is cached: a token is fetched when you select the account" }
      : { cls: "needs", text: "Needs sign-in", title: "No refresh token is cached" };
  }
  const left = state.expires_on - now;
  if (left > EXPIRING_SOON_SECS) {
    return { cls: "valid", text: `Valid until ${localTime(state.expires_on)}`, title: `Expires ${localDateTime(state.expires_on)} (${utcDateTime(state.expires_on)})` };
  }
  if (left > 0) {
    return { cls: "expiring", text: "Expiring soon", title: `Expires ${relative(state.expires_on, now)}` };
  }
  return state.has_refresh_token
    ? { cls: "expiring", text: "Expired · will refresh", title: `Expired ${relative(state.expires_on, now)}; a refresh token is cached` }
    : { cls: "needs", text: "Needs sign-in", title: "The token expired and no refresh token is cached" };
}
