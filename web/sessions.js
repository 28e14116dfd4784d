// The live sessions table: one row per session, numbers patched in place every poll.

import { h } from "./dom.js";
import { age, bytes, rate } from "./format.js";
import { visibleSessions } from "./state.js";

/** Renders the table; `select(id)` opens a session. */
export function renderSessions(state, select) {
  const rows = visibleSessions();
  const total = state.sessions.size;
  document.getElementById("session-count").textContent =
    rows.length === total ? String(total) : `${rows.length} of ${total}`;
  const empty = document.getElementById("sessions-empty");
  empty.hidden = rows.length > 0;
  empty.textContent = total ? "No session matches the filter."
    : "No live sessions. Connect a client to a listener and it shows up here.";

  // A clustered gateway's sessions carry their `node`; a single gateway's column stays hidden.
  document.getElementById("sessions-table").classList.toggle("clustered", [...state.sessions.values()].some((s) => s.node));
  const body = document.getElementById("sessions-body");
  const existing = new Map([...body.children].map((tr) => [tr.dataset.session, tr]));
  let previous = null;
  for (const session of rows) {
    const next = row(session, state, select);
    let tr = existing.get(session.id);
    if (tr) {
      existing.delete(session.id);
      patchRow(tr, next);
    } else {
      tr = next;
    }
    const wanted = previous ? previous.nextSibling : body.firstChild;
    if (wanted !== tr) body.insertBefore(tr, wanted);
    previous = tr;
  }
  for (const tr of existing.values()) tr.remove();
}

function patchRow(tr, next) {
  if (tr.className !== next.className) tr.className = next.className;
  // The id link never changes and may hold focus: only its aria-current moves.
  const link = tr.querySelector("a.sid");
  const current = next.querySelector("a.sid").getAttribute("aria-current");
  if (current) link.setAttribute("aria-current", current); else link.removeAttribute("aria-current");
  const cells = [...next.children];
  for (let index = 1; index < cells.length; index++) {
    if (tr.children[index].outerHTML !== cells[index].outerHTML) tr.children[index].replaceWith(cells[index]);
  }
}

function row(session, state, select) {
  const r = state.rates.get(session.id);
  const opened = Date.parse(session.opened_at);
  const listener = state.listeners.get(session.listener);
  const hops = session.mediators.map((hop) => h("span", { class: `tag hop-${hop.state}`, title: `${hop.id} ${hop.direction} at position ${hop.position}` }, hop.mediator || hop.address));
  const splits = session.splits.map((split) => h("span", { class: `tag split split-${split.state}`, title: `${split.id} ${split.direction} → ${split.address}` }, `⤷ ${split.address}`));
  const tr = h("tr", {
    class: state.selected === session.id ? "selected" : "",
    dataset: { session: session.id },
    onclick: (event) => { if (!event.target.closest("a,button")) select(session.id); },
  },
  h("td", {}, h("a", { href: `#/sessions/${session.id}`, class: "sid", "aria-label": `Session ${session.id}`, "aria-current": state.selected === session.id ? "true" : null }, session.id)),
  h("td", { class: "col-node" }, session.node || "–"),
  h("td", { class: "col-listener" }, listener?.name || session.listener),
  h("td", { class: "mono" }, session.client),
  h("td", { class: "mono col-server" }, session.server),
  h("td", { class: "col-state" }, h("span", { class: `state state-${session.state}` }, session.state.replace("_", " "))),
  h("td", { class: "num" }, Number.isFinite(opened) ? age((Date.now() - opened) / 1000) : "–"),
  h("td", { class: "num" }, bytes(session.bytes.client_to_server)),
  h("td", { class: "num" }, bytes(session.bytes.server_to_client)),
  h("td", { class: "num", title: r ? `C→S ${rate(r.c2s)} · S→C ${rate(r.s2c)}` : null }, r ? rate(r.c2s + r.s2c) : "–"),
  h("td", { class: "mediation" }, hops.length || splits.length ? [hops, splits] : h("span", { class: "muted" }, "direct")));
  return tr;
}
