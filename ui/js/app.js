// Tessera's main window: account list, selected account's token, sign-in and sign-out.
// All work happens in Rust (src-tauri/src/commands.rs); this file only shows results.

import { invoke, listen, errorMessage, EVENT, COPY_FORMAT, SIGNIN_STATUS, SIGNIN_STAGE, SIGN_IN_METHOD, TOOL } from "./ipc.js";
import { $, el, nowSecs, tokenState } from "./util.js";
import { renderToken } from "./token.js";
import { initAgent, openActivity } from "./agent.js";
import { confirmDialog, openMsalCacheDialog, openAddDialog, openDeviceDialog, closeDeviceDialog, setDeviceStatus, openProfiles, openSettings } from "./dialogs.js";

const FILTER_THRESHOLD = 7;

const state = {
  accounts: [],
  caches: [], // opened MSAL cache files: { id, label, path, error }
  profiles: [],
  selectedId: null,
  filter: "",
  tokenRequest: 0,
  scopesEdited: false,
  signIn: null, // { kind: a SIGN_IN_METHOD or "device", profile, keepScopes }
  panelAccount: null, // whose token the panel shows
  panelScopes: null, // for which scopes (null: the profile's default ones)
  confirmAccounts: [], // home account ids whose tokens go to a program only after asking
};

// ---------------------------------------------------------------- toasts

let toastTimer = null;
function toast(message, { error = false, ms = 4000 } = {}) {
  const t = $("toast");
  t.textContent = message;
  t.classList.toggle("error", error);
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.hidden = true), ms);
}

// ---------------------------------------------------------------- accounts

const selected = () => state.accounts.find((a) => a.id === state.selectedId) ?? null;
const profileOf = (name) => state.profiles.find((p) => p.name === name) ?? null;
const accountRef = (a) => ({ source: a.source ?? "tessera", profile: a.profile, home_account_id: a.home_account_id });
const cacheOf = (source) => state.caches.find((c) => c.id === source) ?? null;

function visibleAccounts() {
  const f = state.filter.trim().toLowerCase();
  if (!f) return state.accounts;
  return state.accounts.filter((a) =>
    [a.name, a.username, a.profile, a.tenant, a.tenant_id, a.provider, a.group].some((v) => (v ?? "").toLowerCase().includes(f)),
  );
}

async function refreshAccounts({ select } = {}) {
  try {
    state.caches = (await invoke("list_msal_caches")).caches;
  } catch (e) {
    state.caches = [];
  }
  try {
    state.accounts = await invoke("list_accounts");
  } catch (e) {
    toast(`Could not list accounts: ${errorMessage(e)}`, { error: true, ms: 8000 });
    state.accounts = [];
  }
  $("loading").hidden = true;
  if (select && state.accounts.some((a) => a.id === select)) state.selectedId = select;
  if (!state.accounts.some((a) => a.id === state.selectedId)) {
    state.selectedId = state.accounts[0]?.id ?? null;
  }
  renderList();
  renderDetail();
}

function renderList() {
  const list = $("accounts");
  const filter = $("filter");
  filter.hidden = state.accounts.length <= FILTER_THRESHOLD;
  if (filter.hidden && state.filter) {
    state.filter = "";
    filter.value = "";
  }
  $("sign-out-all").disabled = !state.accounts.some((a) => (a.source ?? "tessera") === "tessera");
  $("list-hint").hidden = state.accounts.length === 0;
  const now = nowSecs();
  const vis = visibleAccounts();
  const accountItem = (a) => {
    const st = a.profile
      ? tokenState(a.token, now)
      : { cls: "unknown", text: "No profile", title: "No profile lists this account: select it to add one" };
    const li = el(
      "li",
      { role: "option", id: `acc-${cssId(a.id)}`, "aria-selected": String(a.id === state.selectedId), dataset: { id: a.id, username: a.username } },
      el("span", { class: "acc-name" }, a.name || a.username),
      el("span", { class: `state ${st.cls}`, title: st.title }, st.text),
      el("span", { class: "acc-user" }, a.username),
      el("span", { class: "acc-provider", title: `Tenant ${a.tenant_id}` }, `${a.provider} · ${a.tenant}`),
    );
    li.addEventListener("click", () => select(a.id));
    li.addEventListener("dblclick", () => copy(COPY_FORMAT.raw));
    return li;
  };
  // Tessera's own accounts first, then those no profile lists, then each opened MSAL
  // cache, each group under a header of its own.
  const ownAccounts = vis.filter((a) => (a.source ?? "tessera") === "tessera");
  const items = ownAccounts.filter((a) => a.profile).map(accountItem);
  const unlisted = ownAccounts.filter((a) => !a.profile);
  if (unlisted.length > 0) {
    items.push(
      el(
        "li",
        { class: "group-header", role: "presentation", dataset: { source: "no-profile" } },
        el("span", { class: "group-label" }, "No profile"),
        el("span", { class: "group-note muted small" }, "No profile lists these accounts: select one to add a profile for it."),
      ),
    );
    items.push(...unlisted.map(accountItem));
  }
  for (const c of state.caches) {
    const inCache = vis.filter((a) => a.source === c.id);
    const close = el("button", { type: "button", class: "small quiet", title: `Close ${c.path} (the file is left as it is)`, "aria-label": `Close ${c.label}` }, "Close");
    close.addEventListener("click", (ev) => {
      ev.stopPropagation();
      closeCache(c);
    });
    const note = c.error ? c.error : inCache.length === 0 ? "No accounts in this file." : null;
    items.push(
      el(
        "li",
        { class: "group-header", role: "presentation", dataset: { source: c.id }, title: c.path },
        el("span", { class: "group-label" }, c.label),
        close,
        note ? el("span", { class: c.error ? "group-note error" : "group-note muted small" }, note) : null,
      ),
    );
    items.push(...inCache.map(accountItem));
  }
  if (state.accounts.length > 0 && vis.length === 0) {
    items.push(el("li", { class: "no-match", "aria-disabled": "true" }, "No account matches the filter."));
  }
  list.replaceChildren(...items);
  const sel = state.selectedId && list.querySelector(`[data-id="${CSS.escape(state.selectedId)}"]`);
  if (sel) {
    list.setAttribute("aria-activedescendant", sel.id);
    sel.scrollIntoView({ block: "nearest" });
  } else {
    list.removeAttribute("aria-activedescendant");
  }
}

function cssId(id) {
  return id.replace(/[^A-Za-z0-9_-]/g, "_");
}

function select(id) {
  if (state.selectedId === id) return;
  state.selectedId = id;
  state.scopesEdited = false;
  renderList();
  renderDetail();
}

function moveSelection(delta) {
  const vis = visibleAccounts();
  if (vis.length === 0) return;
  let i = vis.findIndex((a) => a.id === state.selectedId);
  i = i < 0 ? 0 : Math.min(vis.length - 1, Math.max(0, i + delta));
  select(vis[i].id);
}

// ---------------------------------------------------------------- detail

function renderDetail() {
  const a = selected();
  $("empty").hidden = state.accounts.length > 0 || state.caches.length > 0;
  $("sidebar").hidden = state.accounts.length === 0 && state.caches.length === 0;
  $("account-detail").hidden = !a;
  if (!a) {
    renderToken(null);
    return;
  }
  $("d-name").textContent = a.name || a.username;
  $("d-username").textContent = a.username;
  const cache = a.group ? cacheOf(a.source) : null;
  $("d-meta").textContent = `${a.provider} · ${a.tenant} (tenant ${a.tenant_id}) · ${a.authority_type}${cache ? ` · in ${cache.label} (${cache.path})` : ""}`;
  const profile = profileOf(a.profile);
  if (!state.scopesEdited) $("scopes").value = (profile?.default_scopes ?? []).join(" ");
  // An account no profile lists has no token to show: offer the profile that lists it.
  const listed = Boolean(a.profile);
  // The agent serves Tessera's own store: the switch is for its accounts.
  $("confirm-first-row").hidden = !listed || (a.source ?? "tessera") !== "tessera";
  $("confirm-first").checked = state.confirmAccounts.includes(a.home_account_id);
  $("no-profile").hidden = listed;
  $("scope-form").hidden = !listed;
  $("tools").hidden = !listed;
  for (const id of ["copy-token", "copy-header"]) $(id).disabled = !listed;
  if (!listed) {
    $("needs-signin").hidden = true;
    $("token-error").hidden = true;
    renderToken(null);
    state.panelAccount = null;
    return;
  }
  loadToken({});
}

async function addProfileFor() {
  const a = selected();
  if (!a) return;
  try {
    const p = await invoke("add_profile_for", { account: accountRef(a) });
    toast(`Added the profile ${p.name}: its accounts are listed under it.`, { ms: 6000 });
    await refreshProfiles();
    await refreshAccounts();
    const moved = state.accounts.find((x) => x.home_account_id === a.home_account_id && x.profile === p.name);
    if (moved) select(moved.id);
    focusList();
  } catch (e) {
    toast(`Could not add a profile: ${errorMessage(e)}`, { error: true, ms: 9000 });
  }
}

function currentScopes() {
  const s = $("scopes").value.trim();
  return s.length ? s : null;
}

// The "Use with tools" lines for the selected account and the scopes asked for.
async function loadToolLines() {
  const a = selected();
  const panel = $("tools");
  panel.hidden = !a || (a.source ?? "tessera") !== "tessera";
  if (panel.hidden) return;
  try {
    const lines = await invoke("tool_lines", { account: accountRef(a), scopes: currentScopes() });
    if (selected() !== a) return;
    for (const tool of Object.values(TOOL)) $(`tool-${tool}`).textContent = lines[tool];
    $("tools-error").hidden = true;
  } catch (e) {
    for (const tool of Object.values(TOOL)) $(`tool-${tool}`).textContent = "";
    $("tools-error").textContent = errorMessage(e);
    $("tools-error").hidden = false;
  }
}

async function copyToolLine(tool) {
  const a = selected();
  if (!a) return;
  try {
    await invoke("copy_tool_line", { account: accountRef(a), scopes: currentScopes(), tool });
    toast(`The ${tool} line for ${a.username} copied.`);
  } catch (e) {
    toast(`Could not copy: ${errorMessage(e)}`, { error: true, ms: 8000 });
  }
}

async function loadToken({ forceRefresh = false } = {}) {
  const a = selected();
  if (!a) return;
  loadToolLines();
  const request = ++state.tokenRequest;
  $("needs-signin").hidden = true;
  $("token-error").hidden = true;
  // Never show one account's token under another's name while the new one loads.
  if (state.panelAccount !== a.id) {
    renderToken(null);
    state.panelAccount = null;
  }
  $("account-detail").setAttribute("aria-busy", "true");
  const slow = setTimeout(() => {
    if (request === state.tokenRequest) $("token-loading").hidden = false;
  }, 250);
  try {
    const view = await invoke("token_view", { account: accountRef(a), scopes: currentScopes(), force_refresh: forceRefresh });
    if (request !== state.tokenRequest) return false;
    renderToken(view);
    state.panelAccount = a.id;
    state.panelScopes = currentScopes();
    a.token = view.account.token;
    renderList();
    return true;
  } catch (e) {
    if (request !== state.tokenRequest) return false;
    // An error must not hide what still works: a token of this account already shown (for
    // the same scopes) stays, with the error beside it. A new sign-in need replaces it.
    const keep = state.panelAccount === a.id && state.panelScopes === currentScopes() && e?.kind !== "interaction_required";
    if (!keep) {
      renderToken(null);
      state.panelAccount = null;
    }
    showTokenError(a, e, { kept: keep });
    return false;
  } finally {
    clearTimeout(slow);
    if (request === state.tokenRequest) {
      $("account-detail").removeAttribute("aria-busy");
      $("token-loading").hidden = true;
    }
  }
}

/// Whether `scopes` (the scope field's value, null when empty) are the account's default
/// scopes: the list's token state is about those.
function isDefaultScopes(account, scopes) {
  const norm = (list) => [...new Set(list.map((x) => x.toLowerCase()))].sort().join(" ");
  const defaults = profileOf(account.profile)?.default_scopes ?? [];
  return scopes === null || norm(scopes.split(/\s+/)) === norm(defaults);
}

function showTokenError(account, e, { kept = false } = {}) {
  if (e && e.kind === "interaction_required") {
    // An MSAL cache's account signs in again with the application that uses the file
    // (a sign-in here would add it to Tessera's own store).
    const cache = account.group ? cacheOf(account.source) : null;
    $("needs-signin-reason").textContent = cache
      ? `${e.message} Sign in again with the application that uses ${cache.path} (for Azure CLI: az login).`
      : e.message;
    $("sign-in-again").hidden = Boolean(cache);
    $("needs-signin").hidden = false;
    // Only the scopes asked for need it: the list marks the account when its default
    // token does.
    if (isDefaultScopes(account, currentScopes())) {
      account.token = { ...(account.token ?? {}), needs_sign_in: e.message };
      renderList();
    }
  } else {
    const t = $("token-error");
    t.textContent = kept ? `${errorMessage(e)} The token shown is still the cached one.` : errorMessage(e);
    t.hidden = false;
  }
}

// ---------------------------------------------------------------- copy

async function copy(format) {
  const a = selected();
  if (!a) return;
  try {
    const r = await invoke("copy_token", { account: accountRef(a), scopes: currentScopes(), format });
    const what = format === COPY_FORMAT.header ? "Authorization header" : "Access token";
    const clear = r.clear_after_secs > 0 ? ` The clipboard will be cleared in ${r.clear_after_secs} s.` : "";
    toast(`${what} copied for ${a.username}.${clear}`, { ms: 5000 });
    a.token = r.account.token;
    renderList();
  } catch (e) {
    if (e && e.kind === "interaction_required") {
      showTokenError(a, e);
      toast("Could not copy: sign-in needed.", { error: true });
    } else {
      toast(`Could not copy: ${errorMessage(e)}`, { error: true, ms: 8000 });
    }
  }
}

// ---------------------------------------------------------------- sign-in

function setSignInBanner(text) {
  const banner = $("signin-banner");
  $("signin-banner-text").textContent = text ?? "";
  banner.hidden = !text;
  if (!text) {
    banner.dataset.pages = "0";
    banner.dataset.origins = "[]";
    const origin = $("signin-origin");
    origin.textContent = "";
    origin.hidden = true;
  }
}

// The origin of the page the sign-in window shows (host and port, and whether it is TLS),
// as text. The window's own title shows it too.
function onSignInOrigin(o) {
  if (!state.signIn) return;
  const origin = $("signin-origin");
  origin.textContent = o.label;
  origin.dataset.secure = String(Boolean(o.secure));
  origin.hidden = false;
  // Every origin shown during this sign-in, in order.
  const banner = $("signin-banner");
  const seen = JSON.parse(banner.dataset.origins || "[]");
  seen.push(o.label);
  banner.dataset.origins = JSON.stringify(seen);
}

function onSignInProgress(p) {
  if (state.signIn?.kind === "device") {
    setDeviceStatus(p.message);
    return;
  }
  setSignInBanner(p.message);
  // How many pages the sign-in window has shown (sign-in page, consent, ...).
  const banner = $("signin-banner");
  if (p.stage === SIGNIN_STAGE.page) banner.dataset.pages = String(Number(banner.dataset.pages ?? 0) + 1);
}

async function startSignIn(request) {
  const { profile, method, account = null, scopes = null, keepScopes = null } = request;
  showSignInProblem(null);
  if (method === SIGN_IN_METHOD.deviceCode) {
    try {
      const flow = await invoke("start_device_code", { profile, scopes });
      state.signIn = { kind: "device", profile, keepScopes };
      openDeviceDialog(flow, async () => {
        await invoke("cancel_device_code").catch(() => {});
      });
    } catch (e) {
      showSignInProblem(e, request, "Could not start the device code sign-in");
    }
    return;
  }
  state.signIn = { kind: method, profile, keepScopes };
  setSignInBanner(null);
  try {
    const started = await invoke("sign_in", { profile, method, account, scopes });
    if (state.signIn && $("signin-banner").hidden) setSignInBanner(started.message);
  } catch (e) {
    state.signIn = null;
    showSignInProblem(e, request, "Could not start the sign-in");
  }
}

// Why a sign-in could not start, in the main window, with what the user can do next: try
// again (the provider did not answer), or another way to sign in (no browser was found).
let problemRequest = null;
function showSignInProblem(e, request = null, what = "") {
  const box = $("signin-problem");
  problemRequest = e ? request : null;
  if (!e) {
    box.hidden = true;
    return;
  }
  $("signin-problem-text").textContent = `${what}: ${errorMessage(e)}`;
  const noBrowser = e?.kind === "no_browser";
  $("signin-problem-retry").hidden = noBrowser;
  $("signin-problem-embedded").hidden = !noBrowser;
  $("signin-problem-device").hidden = !noBrowser;
  box.hidden = false;
  (noBrowser ? $("signin-problem-embedded") : $("signin-problem-retry")).focus();
}

function retrySignIn(method) {
  const request = problemRequest;
  showSignInProblem(null);
  if (request) startSignIn(method ? { ...request, method } : request);
}

async function onSignInFinished(p) {
  const wasDevice = state.signIn?.kind === "device";
  const keepScopes = state.signIn?.keepScopes ?? null;
  state.signIn = null;
  setSignInBanner(null);
  if (wasDevice) closeDeviceDialog();
  if (p.status === SIGNIN_STATUS.added) {
    state.scopesEdited = keepScopes !== null;
    await refreshAccounts({ select: p.account?.id });
    focusList();
    toast(`Signed in as ${p.account?.username ?? "the new account"}.`);
  } else if (p.status === SIGNIN_STATUS.cancelled) {
    toast("Sign-in cancelled.");
    if (wasDevice) setDeviceStatus("Sign-in cancelled.");
  } else {
    toast(`Sign-in failed: ${p.message}`, { error: true, ms: 12000 });
  }
}

function signInAgain() {
  const a = selected();
  if (!a) return;
  const profile = profileOf(a.profile);
  const method = profile?.sign_in ?? SIGN_IN_METHOD.embedded;
  // The panel keeps the scopes asked for once the sign-in is done.
  startSignIn({ profile: a.profile, method, account: accountRef(a), scopes: currentScopes(), keepScopes: currentScopes() });
}

// ---------------------------------------------------------------- sign-out

async function signOut() {
  const a = selected();
  if (!a) return;
  const cache = a.group ? cacheOf(a.source) : null;
  const ok = await confirmDialog({
    title: `Sign out ${a.username}?`,
    text: cache
      ? `This account and its tokens are removed from ${cache.path} (the ${cache.label} cache): the applications using that file will ask it to sign in again.`
      : `Tessera forgets this account's tokens and the ${a.profile} sign-in window's cookies, so the next sign-in asks for the password again.`,
    ok: "Sign out",
  });
  if (!ok) return;
  try {
    await invoke("sign_out", { account: accountRef(a) });
    toast(`Signed out ${a.username}.`);
  } catch (e) {
    toast(`Could not sign out: ${errorMessage(e)}`, { error: true, ms: 8000 });
  }
  await refreshAccounts();
  focusList();
}

/// Keyboard focus back on the account list (after a sign-in or a sign-out), so the arrow
/// keys move the selection at once.
function focusList() {
  const list = $("accounts");
  if (!list.closest("[hidden]") && !document.querySelector("dialog[open]")) list.focus();
}

async function openMsalCache() {
  const opened = await openMsalCacheDialog();
  if (!opened) return;
  toast(`Opened ${opened.label}.`);
  await refreshAccounts();
}

async function closeCache(c) {
  try {
    await invoke("close_msal_cache", { id: c.id });
    toast(`Closed ${c.label}; ${c.path} is left as it is.`);
  } catch (e) {
    toast(`Could not close ${c.label}: ${errorMessage(e)}`, { error: true, ms: 8000 });
  }
  await refreshAccounts();
}

async function signOutAll() {
  const n = state.accounts.filter((a) => (a.source ?? "tessera") === "tessera").length;
  if (n === 0) return;
  const ok = await confirmDialog({
    title: "Sign out of all accounts?",
    text: `Tessera forgets the tokens of ${n} account${n === 1 ? "" : "s"} and every sign-in window's cookies.`,
    ok: "Sign out of all",
  });
  if (!ok) return;
  try {
    const r = await invoke("sign_out_all");
    toast(`Signed out of ${r.accounts} account${r.accounts === 1 ? "" : "s"}.`);
  } catch (e) {
    toast(`Could not sign out: ${errorMessage(e)}`, { error: true, ms: 8000 });
  }
  await refreshAccounts();
  focusList();
}

// ---------------------------------------------------------------- profiles

async function refreshProfiles() {
  try {
    state.profiles = await invoke("list_profiles");
  } catch (e) {
    toast(`Could not read the profiles: ${errorMessage(e)}`, { error: true, ms: 8000 });
  }
  return state.profiles;
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("add-account").addEventListener("click", addAccount);
  $("empty-add").addEventListener("click", addAccount);
  $("open-profiles").addEventListener("click", async () => {
    await openProfiles();
    await refreshProfiles();
    await refreshAccounts();
  });
  $("open-settings").addEventListener("click", () => openSettings());
  $("open-activity").addEventListener("click", () => openActivity());
  $("confirm-first").addEventListener("change", async (ev) => {
    const a = selected();
    if (!a) return;
    const on = ev.target.checked;
    try {
      await invoke("set_confirm_first", { account: accountRef(a), on });
      state.confirmAccounts = state.confirmAccounts.filter((x) => x !== a.home_account_id);
      if (on) state.confirmAccounts.push(a.home_account_id);
      toast(on ? `Tessera asks you before a program gets ${a.username}'s tokens.` : `Programs get ${a.username}'s tokens without asking.`);
    } catch (e) {
      ev.target.checked = !on;
      toast(errorMessage(e), { error: true });
    }
  });
  $("open-msal-cache").addEventListener("click", openMsalCache);
  $("sign-out-all").addEventListener("click", signOutAll);
  $("sign-out").addEventListener("click", signOut);
  $("copy-token").addEventListener("click", () => copy(COPY_FORMAT.raw));
  $("copy-header").addEventListener("click", () => copy(COPY_FORMAT.header));
  $("sign-in-again").addEventListener("click", signInAgain);
  $("add-profile-for").addEventListener("click", addProfileFor);
  $("signin-banner-cancel").addEventListener("click", () => invoke("cancel_sign_in").catch(() => {}));
  for (const b of document.querySelectorAll("#tools button[data-tool]")) {
    b.addEventListener("click", () => copyToolLine(b.dataset.tool));
  }
  $("signin-problem-retry").addEventListener("click", () => retrySignIn(null));
  $("signin-problem-embedded").addEventListener("click", () => retrySignIn(SIGN_IN_METHOD.embedded));
  $("signin-problem-device").addEventListener("click", () => retrySignIn(SIGN_IN_METHOD.deviceCode));
  $("signin-problem-close").addEventListener("click", () => showSignInProblem(null));
  $("scope-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.scopesEdited = true;
    loadToken({});
  });
  $("token-refresh").addEventListener("click", async () => {
    const a = selected();
    if (a && (await loadToken({ forceRefresh: true }))) toast(`New access token for ${a.username}.`);
  });
  $("scopes-reset").addEventListener("click", () => {
    state.scopesEdited = false;
    const p = profileOf(selected()?.profile);
    $("scopes").value = (p?.default_scopes ?? []).join(" ");
    loadToken({});
  });

  const list = $("accounts");
  list.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown") moveSelection(1);
    else if (ev.key === "ArrowUp") moveSelection(-1);
    else if (ev.key === "Home") moveSelection(-Infinity);
    else if (ev.key === "End") moveSelection(Infinity);
    else if (ev.key === "Enter") copy(COPY_FORMAT.raw);
    else return;
    ev.preventDefault();
  });
  const filter = $("filter");
  filter.addEventListener("input", () => {
    state.filter = filter.value;
    const vis = visibleAccounts();
    if (vis.length && !vis.some((a) => a.id === state.selectedId)) select(vis[0].id);
    else renderList();
  });
  filter.addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowDown" || ev.key === "Enter") {
      ev.preventDefault();
      list.focus();
      if (ev.key === "Enter") copy(COPY_FORMAT.raw);
    } else if (ev.key === "Escape") {
      filter.value = "";
      state.filter = "";
      renderList();
    }
  });
  document.addEventListener("keydown", (ev) => {
    const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLSelectElement;
    if (ev.key === "/" && !typing && !$("filter").hidden) {
      ev.preventDefault();
      $("filter").focus();
    }
  });

  // The list's "valid until / expiring soon" follows the clock.
  setInterval(renderListStates, 15000);
}

function renderListStates() {
  const now = nowSecs();
  for (const li of $("accounts").querySelectorAll("li[data-id]")) {
    const a = state.accounts.find((x) => x.id === li.dataset.id);
    const badge = li.querySelector(".state");
    if (!a || !badge) continue;
    const st = a.profile
      ? tokenState(a.token, now)
      : { cls: "unknown", text: "No profile", title: "No profile lists this account: select it to add one" };
    badge.className = `state ${st.cls}`;
    badge.textContent = st.text;
    badge.title = st.title;
  }
}

async function addAccount() {
  if (state.signIn) {
    toast("A sign-in is already in progress: finish or cancel it first.");
    return;
  }
  await refreshProfiles();
  const choice = await openAddDialog(state.profiles);
  if (choice) await startSignIn(choice);
}

/// The header's badge: whether the token store is encrypted (from the engine).
function showStoreProtection(info) {
  const el = $("store-protection");
  const p = info && info.protection;
  if (!p) {
    el.hidden = true;
    return;
  }
  el.textContent = p.protection === "encrypted" ? "Store encrypted" : "Store not encrypted";
  el.title = `${p.label}\n${p.path}`;
  el.dataset.protection = p.protection;
  el.hidden = false;
}

async function main() {
  wire();
  await Promise.all([
    listen(EVENT.signInFinished, onSignInFinished),
    listen(EVENT.signInProgress, onSignInProgress),
    listen(EVENT.signInOrigin, onSignInOrigin),
    listen(EVENT.clipboardCleared, () => toast("Clipboard cleared.")),
    listen(EVENT.accountsChanged, () => refreshAccounts()),
    initAgent({ toast, accounts: () => state.accounts.map((a) => a.username) }),
  ]);
  // The store opens in the background (it may wait on the keyring): the window says so.
  let storeOpened;
  const opened = new Promise((resolve) => (storeOpened = resolve));
  await listen(EVENT.storeOpened, () => storeOpened());
  try {
    let info = await invoke("app_info");
    if (info.opening) {
      $("loading-text").textContent = "Waiting for the keyring to unlock the token store…";
      await opened;
      info = await invoke("app_info");
    }
    showStoreProtection(info);
  } catch (e) {
    // The engine could not open the home (store, keyring, profiles.toml): say why.
    $("loading").hidden = true;
    $("sidebar").hidden = true;
    $("startup-error-text").textContent = errorMessage(e);
    $("startup-error").hidden = false;
    for (const id of ["add-account", "open-msal-cache", "open-profiles", "open-activity", "sign-out-all"]) $(id).disabled = true;
    return;
  }
  try {
    state.confirmAccounts = (await invoke("get_settings")).confirm_accounts ?? [];
  } catch (e) {
    state.confirmAccounts = [];
  }
  await refreshProfiles();
  await refreshAccounts();
  $("accounts").focus();
  // Two animation frames: the list has been painted. The app logs the time since launch.
  requestAnimationFrame(() =>
    requestAnimationFrame(() => invoke("ui_ready", { accounts: state.accounts.length }).catch(() => {})),
  );
}

main().catch((e) => toast(`Tessera could not start: ${errorMessage(e)}`, { error: true, ms: 60000 }));
