// The decoded-token panel. The view comes from the `token_view` command: decoded claims
// and the token response's metadata, never the token itself.

import { $, el, nowSecs, localDateTime, utcDateTime, zoneLabel, relative, duration, EXPIRING_SOON_SECS } from "./util.js";

const KIND_LABEL = {
  jws: "Signed JWT (JWS)",
  jwe: "Encrypted JWT (JWE)",
  opaque: "Opaque",
  malformed: "Malformed JWT",
};

let current = null;
let timer = null;

/** Show `view` (or hide the panel with `null`). */
export function renderToken(view) {
  current = view;
  const panel = $("token-panel");
  if (!view) {
    panel.hidden = true;
    stopCountdown();
    return;
  }
  const d = view.decoded;
  $("t-kind").textContent = KIND_LABEL[d.kind] ?? d.kind;
  $("t-source").textContent = view.source === "cache" ? "Token cache" : "Identity provider (just now)";

  fillChips($("t-scopes"), view.scopes);
  $("t-scp-row").hidden = d.scp.length === 0;
  fillChips($("t-scp"), d.scp);
  $("t-roles-row").hidden = d.roles.length === 0;
  fillChips($("t-roles"), d.roles);

  const notes = $("t-notes");
  notes.replaceChildren();
  if (d.kind === "opaque" || d.kind === "jwe") {
    notes.append(el("li", {}, `The claims cannot be read here. From the token response: scopes ${view.scopes.join(" ") || "(none listed)"}, expires ${localDateTime(view.expires_on)} (${zoneLabel(view.expires_on)}).`));
  }
  if (d.error) notes.append(el("li", {}, `Could not decode: ${d.error}`));
  for (const n of d.notes) notes.append(el("li", {}, n));

  fillTable($("t-claims"), d.claims);
  $("t-claims").hidden = $("t-claims-title").hidden = d.claims.length === 0;
  fillTable($("t-header"), d.header);
  $("t-header").hidden = $("t-header-title").hidden = d.header.length === 0;

  panel.hidden = false;
  tick();
  stopCountdown();
  timer = setInterval(tick, 1000);
}

function stopCountdown() {
  if (timer) clearInterval(timer);
  timer = null;
}

function tick() {
  if (!current) return;
  const exp = current.expires_on;
  const left = exp - nowSecs();
  const c = $("t-countdown");
  c.classList.toggle("expiring", left > 0 && left <= EXPIRING_SOON_SECS);
  c.classList.toggle("expired", left <= 0);
  c.textContent = left > 0 ? `in ${duration(left)}` : `expired ${duration(left)} ago`;
  $("t-expiry").textContent = `${localDateTime(exp)} ${zoneLabel(exp)} · ${utcDateTime(exp)}`;
  // Relative times in the claims table follow the clock too.
  for (const cell of document.querySelectorAll("#token-panel [data-time]")) {
    cell.textContent = relative(Number(cell.dataset.time));
  }
}

function fillChips(container, items) {
  container.replaceChildren(...items.map((s) => el("span", { class: "chip" }, s)));
}

function fillTable(table, lines) {
  const body = table.tBodies[0];
  body.replaceChildren(
    ...lines.map((line) => {
      const value = el("td", { class: "value" });
      if (line.time != null) {
        value.append(
          el("span", {}, `${localDateTime(line.time)} ${zoneLabel(line.time)}`),
          el("span", { class: "sub" }, utcDateTime(line.time), " · ", el("span", { dataset: { time: String(line.time) } }, relative(line.time))),
          el("span", { class: "sub" }, `(${JSON.stringify(line.value)})`),
        );
      } else {
        value.append(line.display);
      }
      return el("tr", { dataset: { claim: line.name } }, el("td", {}, line.name), value, el("td", { class: "meaning" }, line.meaning ?? ""));
    }),
  );
}
