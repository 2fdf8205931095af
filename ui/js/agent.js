// The app as the Tessera agent: the question a program's request raises (sign in, or hand
// a token out), and the Activity list of who got which token. Neither ever holds a token:
// questions and activity name the program, the account and the scopes only.

import { invoke, listen, errorMessage, EVENT, AGENT_ANSWER, AGENT_ASK, ACTIVITY_OUTCOME } from "./ipc.js";
import { $, el, duration, localDateTime } from "./util.js";

const OUTCOME_LABEL = Object.freeze({
  [ACTIVITY_OUTCOME.cache]: "Handed out (cached)",
  [ACTIVITY_OUTCOME.refreshed]: "Handed out (refreshed)",
  [ACTIVITY_OUTCOME.signedIn]: "Handed out after sign-in",
  [ACTIVITY_OUTCOME.denied]: "Denied",
  [ACTIVITY_OUTCOME.interactionRequired]: "Sign-in needed",
  [ACTIVITY_OUTCOME.failed]: "Failed",
});

const asks = []; // questions waiting, oldest first; the first is shown
let shown = null; // { id, timer }

function showNext() {
  const d = $("agent-dialog");
  if (shown || asks.length === 0) return;
  const ask = asks[0];
  const signIn = ask.kind === AGENT_ASK.signIn;
  $("agent-title").textContent = signIn ? "A program needs a sign-in" : "A program asks for a token";
  $("agent-program").textContent = ask.program;
  $("agent-pid").textContent = `PID ${ask.pid}`;
  $("agent-account").textContent = `${ask.account} (${ask.profile})`;
  $("agent-scopes").textContent = ask.scopes.length ? ask.scopes.join(" ") : "the profile's default scopes";
  $("agent-reason").textContent = signIn
    ? `${ask.account} must sign in again before the program gets its token${ask.reason ? `: ${ask.reason}` : "."}`
    : `You asked to be asked before this account's tokens go to a program. Allowing lets this program have them until Tessera quits.`;
  $("agent-allow").textContent = signIn ? "Sign in" : "Allow";
  const deadline = Date.now() + ask.timeout_secs * 1000;
  const tick = () => {
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    $("agent-timer").textContent = `Denied automatically in ${duration(left)}.`;
  };
  tick();
  shown = { id: ask.id, timer: setInterval(tick, 1000) };
  d.returnValue = "";
  d.showModal();
}

function closeShown() {
  if (!shown) return;
  clearInterval(shown.timer);
  shown = null;
  const d = $("agent-dialog");
  if (d.open) d.close("closed");
}

function forget(id) {
  const i = asks.findIndex((a) => a.id === id);
  if (i >= 0) asks.splice(i, 1);
  if (shown?.id === id) closeShown();
  showNext();
}

async function onAnswer(value, toast) {
  if (!shown) return;
  const id = shown.id;
  const answer = value === "allow" ? AGENT_ANSWER.allow : AGENT_ANSWER.deny;
  closeShown();
  const i = asks.findIndex((a) => a.id === id);
  if (i >= 0) asks.splice(i, 1);
  try {
    await invoke("agent_answer", { id, answer });
  } catch (e) {
    toast(errorMessage(e), { error: true });
  }
  showNext();
}

// ---------------------------------------------------------------- activity

let activityAccounts = () => [];

async function fillActivity() {
  const account = $("activity-account").value || null;
  const body = $("activity-body");
  let rows = [];
  try {
    const status = await invoke("agent_status");
    $("activity-status").textContent = status.serving
      ? `Tessera serves tokens to your programs on ${status.socket}.`
      : `Tessera does not serve tokens to programs now: ${status.message ?? "the agent is off."}`;
    rows = await invoke("agent_activity", { account });
  } catch (e) {
    $("activity-status").textContent = errorMessage(e);
  }
  body.replaceChildren(
    ...rows.map((r) =>
      el(
        "tr",
        { dataset: { outcome: r.outcome } },
        el("td", {}, localDateTime(r.at)),
        el("td", {}, el("code", {}, r.program), el("span", { class: "muted small" }, ` PID ${r.pid}`)),
        el("td", {}, r.account || "—"),
        el("td", { class: "small" }, r.scopes.length ? r.scopes.join(" ") : "default"),
        el("td", {}, OUTCOME_LABEL[r.outcome] ?? r.outcome),
      ),
    ),
  );
  $("activity-empty").hidden = rows.length > 0;
}

export async function openActivity() {
  const select = $("activity-account");
  const keep = select.value;
  const names = [...new Set(activityAccounts())].sort();
  select.replaceChildren(el("option", { value: "" }, "All accounts"), ...names.map((n) => el("option", { value: n }, n)));
  select.value = names.includes(keep) ? keep : "";
  await fillActivity();
  const d = $("activity-dialog");
  d.returnValue = "";
  d.showModal();
}

/** Listen to the agent's events. `accounts()` gives the user names for the filter. */
export async function initAgent({ toast, accounts }) {
  activityAccounts = accounts;
  const d = $("agent-dialog");
  d.querySelector("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    onAnswer(ev.submitter?.value ?? "deny", toast);
  });
  // Escape denies, as the Deny button does.
  d.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    onAnswer("deny", toast);
  });
  $("activity-account").addEventListener("change", () => fillActivity());
  await Promise.all([
    listen(EVENT.agentAsk, (ask) => {
      asks.push(ask);
      showNext();
    }),
    listen(EVENT.agentAskClosed, (id) => forget(id)),
    listen(EVENT.agentActivity, () => {
      if ($("activity-dialog").open) fillActivity();
    }),
  ]);
}
