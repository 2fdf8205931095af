// In-page modal dialogs (<dialog>): confirmations, add account, device code, profiles,
// settings. `window.confirm` is not used: it can be blocked in a webview.

import { invoke, errorMessage, PROFILE_KIND, SIGN_IN_METHOD } from "./ipc.js";
import { $, el } from "./util.js";

/** Resolves with the `value` of the button that closed `dialog` ("" for Escape). */
function run(dialog, { onSubmit } = {}) {
  return new Promise((resolve) => {
    const form = dialog.querySelector("form");
    const submit = async (ev) => {
      const value = ev.submitter?.value ?? "";
      if (onSubmit && value === "ok") {
        ev.preventDefault();
        const ok = await onSubmit();
        if (ok) dialog.close("ok");
      }
    };
    form.addEventListener("submit", submit);
    dialog.addEventListener(
      "close",
      () => {
        form.removeEventListener("submit", submit);
        resolve(dialog.returnValue);
      },
      { once: true },
    );
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function showError(node, message) {
  node.textContent = message ?? "";
  node.hidden = !message;
}

// ---------------------------------------------------------------- confirm

export async function confirmDialog({ title, text, ok = "OK" }) {
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  const d = $("confirm-dialog");
  const done = run(d);
  $("confirm-cancel").focus();
  return (await done) === "ok";
}

// ---------------------------------------------------------------- MSAL cache

/** Ask for an MSAL cache file and a group label, and open it. Resolves with the opened
 *  cache's view, or `null`. */
export async function openMsalCacheDialog() {
  let defaultPath = null;
  try {
    defaultPath = (await invoke("list_msal_caches")).default_path;
  } catch {
    // The dialog still works with a typed path.
  }
  const path = $("msal-path");
  const label = $("msal-label");
  const fileName = (p) => p.split(/[\\/]/).filter(Boolean).pop() ?? p;
  const suggest = () => {
    label.placeholder = path.value.trim() === (defaultPath ?? "") ? "Azure CLI" : fileName(path.value.trim());
  };
  path.value = defaultPath ?? "";
  label.value = "";
  suggest();
  path.oninput = suggest;
  showError($("msal-error"), null);
  let opened = null;
  const d = $("msal-dialog");
  const done = run(d, {
    onSubmit: async () => {
      try {
        opened = await invoke("open_msal_cache", { path: path.value.trim() || null, label: label.value.trim() || null });
        return true;
      } catch (e) {
        showError($("msal-error"), errorMessage(e));
        return false;
      }
    },
  });
  path.focus();
  return (await done) === "ok" ? opened : null;
}

// ---------------------------------------------------------------- add account

const METHOD_LABEL = {
  [SIGN_IN_METHOD.embedded]: "Tessera sign-in window",
  [SIGN_IN_METHOD.browser]: "system browser",
  [SIGN_IN_METHOD.deviceCode]: "device code",
};

/** Resolves with `{ profile, method }` or `null`. */
export async function openAddDialog(profiles) {
  const select = $("add-profile");
  select.replaceChildren(...profiles.map((p) => el("option", { value: p.name }, p.name)));
  const info = () => {
    const p = profiles.find((x) => x.name === select.value);
    $("add-profile-info").textContent = p ? `${p.authority} · default sign-in: ${METHOD_LABEL[p.sign_in] ?? p.sign_in}` : "";
    if (p) {
      for (const r of document.querySelectorAll('#add-form input[name="method"]')) r.checked = r.value === p.sign_in;
    }
  };
  const sandbox = profiles.find((p) => p.name === "Sandbox");
  if (sandbox) select.value = sandbox.name;
  select.onchange = info;
  info();
  showError($("add-error"), profiles.length ? null : "No profile is defined: add one under Profiles.");
  $("add-go").disabled = profiles.length === 0;
  const d = $("add-dialog");
  const done = run(d);
  select.focus();
  if ((await done) !== "ok") return null;
  const method = document.querySelector('#add-form input[name="method"]:checked')?.value ?? SIGN_IN_METHOD.embedded;
  return { profile: select.value, method };
}

// ---------------------------------------------------------------- device code

let deviceCancel = null;

export function openDeviceDialog(flow, onCancel) {
  $("device-code").textContent = flow.user_code;
  // Shown as text, not a link: the main window never navigates away.
  $("device-url").textContent = flow.verification_uri;
  $("device-message").textContent = flow.message;
  setDeviceStatus("Waiting for you to finish signing in…");
  deviceCancel = onCancel;
  $("device-copy").onclick = async () => {
    try {
      await invoke("copy_user_code");
      setDeviceStatus("Code copied. Waiting for you to finish signing in…");
    } catch (e) {
      setDeviceStatus(`Could not copy the code: ${errorMessage(e)}`);
    }
  };
  const d = $("device-dialog");
  run(d).then((value) => {
    // Closed by the user (Cancel or Escape) rather than by the sign-in finishing.
    if (value !== "done" && deviceCancel) deviceCancel();
    deviceCancel = null;
  });
}

export function closeDeviceDialog() {
  const d = $("device-dialog");
  deviceCancel = null;
  if (d.open) d.close("done");
}

export function setDeviceStatus(text) {
  $("device-status").textContent = text;
}

// ---------------------------------------------------------------- profiles

export async function openProfiles() {
  const d = $("profiles-dialog");
  await fillProfiles();
  $("profile-new").onclick = async () => {
    if (await editProfile(null)) await fillProfiles();
  };
  await run(d);
}

async function fillProfiles() {
  let profiles = [];
  try {
    profiles = await invoke("list_profiles");
  } catch (e) {
    profiles = [];
    $("profiles-body").replaceChildren(el("tr", {}, el("td", { colspan: "4" }, `Could not read the profiles: ${errorMessage(e)}`)));
    return;
  }
  $("profiles-body").replaceChildren(
    ...profiles.map((p) => {
      // Built-in profiles cannot change: offer a copy to edit instead.
      const edit = el("button", { type: "button", class: "small" }, p.builtin ? "Copy…" : "Edit");
      if (p.builtin) edit.title = "Built-in profiles cannot be changed: edit a copy";
      edit.onclick = async () => {
        const draft = p.builtin ? { ...p, name: `${p.name} copy`, builtin: false } : p;
        if (await editProfile(draft, !p.builtin)) await fillProfiles();
      };
      const remove = el("button", { type: "button", class: "small quiet-danger", disabled: p.builtin }, "Remove");
      if (p.builtin) remove.title = "Built-in profiles cannot be removed";
      remove.onclick = async () => {
        const ok = await confirmDialog({
          title: `Remove the profile ${p.name}?`,
          text: "Accounts signed in with it stay in the token store but are no longer listed until you add the profile again.",
          ok: "Remove",
        });
        if (!ok) return;
        try {
          await invoke("remove_profile", { name: p.name });
        } catch (e) {
          alertInProfiles(errorMessage(e));
        }
        await fillProfiles();
      };
      return el(
        "tr",
        { dataset: { profile: p.name } },
        el("td", {}, p.name, p.builtin ? el("span", { class: "muted small" }, " (built-in)") : null),
        el("td", { class: "small" }, p.authority),
        el("td", { class: "small" }, METHOD_LABEL[p.sign_in] ?? p.sign_in),
        el("td", { class: "actions" }, edit, " ", remove),
      );
    }),
  );
}

function alertInProfiles(message) {
  $("profiles-body").append(el("tr", {}, el("td", { colspan: "4", class: "callout error" }, message)));
}

/** Resolves true when the profile was saved. `existing`: `p` is saved already (rename/edit). */
async function editProfile(p, existing = Boolean(p)) {
  $("profile-edit-title").textContent = p && existing ? `Edit ${p.name}` : "New profile";
  $("pf-name").value = p?.name ?? "";
  $("pf-authority").value = p?.authority ?? "";
  $("pf-client").value = p?.client_id ?? "";
  $("pf-redirect").value = p?.redirect_uri ?? "";
  $("pf-scopes").value = (p?.default_scopes ?? []).join(" ");
  $("pf-signin").value = p?.sign_in ?? SIGN_IN_METHOD.embedded;
  $("pf-kind").value = p?.kind ?? PROFILE_KIND.entra;
  showError($("pf-error"), null);
  const d = $("profile-edit-dialog");
  const result = run(d, {
    onSubmit: async () => {
      $("pf-save").disabled = true;
      showError($("pf-error"), null);
      try {
        await invoke("save_profile", {
          original_name: existing ? p.name : null,
          profile: {
            name: $("pf-name").value.trim(),
            kind: $("pf-kind").value,
            authority: $("pf-authority").value.trim(),
            client_id: $("pf-client").value.trim(),
            redirect_uri: $("pf-redirect").value.trim() || null,
            default_scopes: $("pf-scopes").value.trim(),
            sign_in: $("pf-signin").value,
            // Not in the form: kept from the profile edited or copied (default: on for Entra).
            instance_discovery: p && p.kind === $("pf-kind").value ? p.instance_discovery : null,
          },
        });
        return true;
      } catch (e) {
        showError($("pf-error"), errorMessage(e));
        return false;
      } finally {
        $("pf-save").disabled = false;
      }
    },
  });
  $("pf-name").focus();
  return (await result) === "ok";
}

// ---------------------------------------------------------------- settings

export async function openSettings() {
  let settings;
  try {
    settings = await invoke("get_settings");
  } catch (e) {
    settings = { clipboard_clear_secs: 30, agent_prompt_secs: 120, runs_in_background: false };
    showError($("set-error"), errorMessage(e));
  }
  $("set-clear").value = String(settings.clipboard_clear_secs);
  $("set-prompt").value = String(settings.agent_prompt_secs);
  // Unset, it follows its default (on once a program has got a token from the app).
  const background = Boolean(settings.runs_in_background);
  $("set-background").checked = background;
  $("set-info").textContent = settings.home ? `Tessera's data: ${settings.home}` : "";
  showError($("set-error"), null);
  const d = $("settings-dialog");
  await run(d, {
    onSubmit: async () => {
      const secs = Number($("set-clear").value);
      if (!Number.isInteger(secs) || secs < 0) {
        showError($("set-error"), "Enter a whole number of seconds (0 turns clearing off).");
        return false;
      }
      const prompt = Number($("set-prompt").value);
      if (!Number.isInteger(prompt) || prompt < 10) {
        showError($("set-error"), "A program's question waits at least 10 seconds.");
        return false;
      }
      // The other settings (which accounts ask first) are kept as they are.
      const { home: _home, runs_in_background: _runs, ...kept } = settings;
      if ($("set-background").checked !== background) kept.background = $("set-background").checked;
      try {
        await invoke("save_settings", { settings: { ...kept, clipboard_clear_secs: secs, agent_prompt_secs: prompt } });
        return true;
      } catch (e) {
        showError($("set-error"), errorMessage(e));
        return false;
      }
    },
  });
}
