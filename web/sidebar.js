// The sidebar: listeners (with add and remove), the cluster's nodes, registered mediators,
// the event log.

import { isCapturing } from "./capture.js";
import { h, live, patch } from "./dom.js";
import { age, clock, idNumber } from "./format.js";

let confirming = null;

/** Renders the sidebar; `actions.removeListener(id, closeSessions)` and `actions.filterListener(id)`. */
export function renderSidebar(state, actions) {
  const listeners = [...state.listeners.values()].sort((a, b) => idNumber(a.id) - idNumber(b.id));
  document.getElementById("listener-count").textContent = String(listeners.length);
  patch(document.getElementById("listeners"), h("ul", { class: "items", id: "listener-list" },
    listeners.length ? listeners.map((l) => listenerItem(l, state, actions)) : h("li", { class: "empty" }, "No listeners.")));

  // A gateway on its own lists only itself: the panel is for clusters.
  const nodes = [...state.nodes].sort((a, b) => a.name.localeCompare(b.name));
  document.getElementById("nodes-panel").hidden = nodes.length < 2;
  document.getElementById("node-count").textContent = String(nodes.length);
  patch(document.getElementById("nodes"), h("ul", { class: "items compact", id: "node-list" },
    nodes.map((node) => nodeItem(node, state.nodesAt))));

  const mediators = [...state.mediators.values()].sort((a, b) => a.name.localeCompare(b.name));
  document.getElementById("mediator-count").textContent = String(mediators.length);
  patch(document.getElementById("mediators"), h("ul", { class: "items compact", id: "mediator-list" },
    mediators.length ? mediators.map(mediatorItem)
      : h("li", { class: "empty" }, "None registered (POST /api/v1/mediators, or the config file).")));

  patch(document.getElementById("event-log"), h("ol", { class: "log", id: "event-log-list" },
    state.log.map((entry) => h("li", { class: `log-${entry.level}`, dataset: { key: entry.key } },
      h("time", {}, clock(entry.at)), " ", h("b", {}, entry.kind), " ", entry.text))));
}

function listenerItem(listener, state, actions) {
  const active = state.filter.listener === listener.id;
  const templates = listener.mediators.length + listener.splits.length;
  const id = listener.id;
  return h("li", { class: active ? "item selected" : "item", dataset: { listener: id } },
    h("div", { class: "item-head" },
      h("button", {
        type: "button", class: "link", "data-focus": `lf-${id}`, "aria-pressed": active ? "true" : "false",
        title: "Show only this listener's sessions", onclick: () => actions.filterListener(active ? "" : id),
      }, h("b", {}, listener.name || id), listener.name ? h("span", { class: "muted" }, ` ${id}`) : null),
      h("span", { class: "spacer" }),
      live(`la-${id}`, `${listener.sessions.active} live`, { class: "pill", title: `${listener.sessions.total} sessions in all` })),
    h("div", { class: "mono small" }, listener.listen, h("span", { class: "muted" }, " → "), listener.upstream),
    h("div", { class: "small muted" },
      templates ? `${listener.mediators.length} mediator and ${listener.splits.length} split templates · ` : "",
      live(`lf-n-${id}`, `${listener.upstream_failures} upstream failures`)),
    bindStates(listener),
    confirming === id
      ? h("div", { class: "confirm", role: "group", "aria-label": `Remove listener ${id}` },
        h("button", { type: "button", class: "danger small-button", "data-focus": `lr1-${id}`, onclick: () => { confirming = null; actions.removeListener(id, false); } }, "Stop accepting"),
        h("button", { type: "button", class: "danger small-button", "data-close-sessions": true, onclick: () => { confirming = null; actions.removeListener(id, true); } }, "…and close sessions"),
        h("button", { type: "button", class: "quiet small-button", onclick: () => { confirming = null; actions.rerender(); } }, "Cancel"))
      : h("div", { class: "item-actions" },
        h("button", {
          type: "button", class: "quiet small-button", "data-focus": `lc-${id}`, "data-action": "capture-listener",
          "aria-label": `${isCapturing(`listener:${id}`) ? "Stop capturing" : "Capture"} listener ${listener.name || id}`,
          "aria-pressed": isCapturing(`listener:${id}`) ? "true" : "false",
          title: "Stream a pcapng capture of every session of this listener to a download",
          onclick: () => actions.captureListener(id),
        }, isCapturing(`listener:${id}`) ? "Stop capture" : "Capture"),
        h("button", {
          type: "button", class: "quiet small-button", "data-focus": `lr-${id}`, "data-action": "remove-listener",
          "aria-label": `Remove listener ${listener.name || id}`,
          onclick: () => { confirming = id; actions.rerender(); requestAnimationFrame(() => document.querySelector(`[data-focus="lr1-${id}"]`)?.focus()); },
        }, "Remove…")));
}

function mediatorItem(mediator) {
  const where = mediator.kind === "tcp" ? mediator.address : (mediator.command || []).join(" ");
  return h("li", { class: "item", dataset: { mediator: mediator.name }, title: `${mediator.kind} ${where}` },
    h("div", { class: "item-head" }, h("b", {}, mediator.name),
      h("span", { class: "mono small muted ellipsis" }, where), h("span", { class: "spacer" }),
      live(`mu-${mediator.name}`, mediator.in_use ? `${mediator.in_use} in use` : "idle",
        { class: mediator.in_use ? "pill on" : "pill" })));
}

/** In a cluster, where the listener is bound, and where its bind failed and why. */
function bindStates(listener) {
  const binds = listener.nodes || [];
  if (binds.length < 2 && !binds.some((bind) => bind.state !== "bound")) return null;
  const bound = binds.filter((bind) => bind.state === "bound").map((bind) => bind.node);
  const failed = binds.filter((bind) => bind.state !== "bound");
  return h("div", { class: "small", dataset: { binds: listener.id } },
    bound.length ? h("span", { class: "muted" }, `bound on ${bound.join(", ")}`) : null,
    ...failed.map((bind) => h("span", { class: "bind-failed", title: bind.error || "" },
      `${bound.length ? " · " : ""}failed on ${bind.node}${bind.error ? `: ${bind.error}` : ""}`)));
}

function nodeItem(node, readAt) {
  const heard = (readAt - Date.parse(node.last_heartbeat)) / 1000;
  return h("li", { class: "item", dataset: { node: node.name }, title: `${node.admin_url} · ${node.version}` },
    h("div", { class: "item-head" }, h("b", {}, node.name),
      node.self ? h("span", { class: "muted small" }, " (this node)") : null,
      h("span", { class: "spacer" }),
      h("span", { class: "pill", title: "live sessions at its last heartbeat" }, `${node.sessions} sessions`)),
    h("div", { class: "small muted" }, `heard ${age(heard)} ago · up ${age((readAt - Date.parse(node.started_at)) / 1000)}`));
}
