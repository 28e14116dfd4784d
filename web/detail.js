// The session view: a header, and the byte path of each direction drawn as a grid whose
// columns are the stack positions (client, hop 0, hop 1, …, server), so a `both` hop sits
// in the same column in both rows. Splits hang off the endpoint their copy is taken at.

import { h, live, patch } from "./dom.js";
import { age, bytes, clock, covers, direction, exact, rate } from "./format.js";

/** Keys of actions in flight (`hop:h1`, `split:x2`, …): their buttons show progress. */
export const busy = new Set();

/** Renders the detail panel for `state.selected`. */
export function renderDetail(state, actions) {
  const id = state.selected;
  const open = id ? state.sessions.get(id) : null;
  const ended = id && !open ? state.closed.get(id) : null;
  const session = open || ended?.session;
  const panel = document.getElementById("detail");
  panel.dataset.session = session ? session.id : "";
  document.getElementById("detail-empty").hidden = Boolean(session);
  document.getElementById("detail-body").hidden = !session;
  document.getElementById("detail-close").hidden = !id;
  const kill = document.getElementById("kill-button");
  kill.hidden = !open;
  kill.disabled = busy.has(`kill:${id}`);
  if (!id) {
    document.getElementById("detail-heading").textContent = "Session";
    document.getElementById("detail-meta").textContent = "";
    return;
  }
  document.getElementById("detail-heading").textContent = `Session ${id}`;
  if (!session) {
    document.getElementById("detail-meta").textContent = "not found (already closed?)";
    return;
  }
  const listener = state.listeners.get(session.listener);
  const opened = Date.parse(session.opened_at);
  const r = state.rates.get(session.id);
  document.getElementById("detail-meta").textContent = [
    `${listener?.name ? `${listener.name} (${session.listener})` : session.listener}`,
    ended ? "closed" : session.state.replace("_", " "),
    Number.isFinite(opened) ? `opened ${clock(new Date(opened))}, ${age((Date.now() - opened) / 1000)} ago` : "",
    r && !ended ? `${rate(r.c2s + r.s2c)}` : "",
  ].filter(Boolean).join(" · ");

  const banner = document.getElementById("detail-closed");
  banner.hidden = !ended;
  banner.textContent = ended ? `Closed at ${clock(ended.at)}: ${ended.reason || "gone"}. Figures below are the last seen.` : "";
  document.getElementById("detail-actions").hidden = Boolean(ended);
  patch(document.getElementById("path"), path(session, Boolean(ended), actions));
}

function path(session, ended, actions) {
  const hops = [...session.mediators].sort((a, b) => a.position - b.position);
  const grid = h("div", { class: "path", role: "group", "aria-label": `Path of session ${session.id}` },
    h("div", { class: "cell corner" }),
    endpointHead("client", session.client),
    hops.map((hop) => [h("div", { class: "cell" }), hopHead(session, hop, ended, actions)]),
    h("div", { class: "cell" }),
    endpointHead("server", session.server),
    row(session, hops, "client_to_server", ended, actions),
    row(session, hops, "server_to_client", ended, actions));
  grid.style.gridTemplateColumns = ["max-content", "minmax(10em, 1.2fr)",
    ...hops.flatMap(() => ["1.6em", "minmax(9.5em, 1fr)"]), "1.6em", "minmax(10em, 1.2fr)"].join(" ");
  return grid;
}

function endpointHead(kind, address) {
  return h("div", { class: `cell head endpoint ${kind}` },
    h("div", { class: "title" }, kind === "client" ? "Client" : "Server"), h("div", { class: "mono small" }, address));
}

function hopHead(session, hop, ended, actions) {
  const key = `hop:${hop.id}`;
  const removing = busy.has(key) || hop.state === "draining";
  return h("div", { class: `cell head hop hop-${hop.state}`, dataset: { hop: hop.id } },
    h("div", { class: "head-line" },
      h("span", { class: "title" }, h("span", { class: "muted" }, `${hop.id} `), hop.mediator || "ad hoc"),
      h("span", { class: "spacer" }),
      ended ? null : h("button", {
        type: "button", class: "small-button", "data-action": "remove-hop", "data-focus": key,
        "aria-label": `Remove hop ${hop.id} (${hop.mediator || hop.address})`, disabled: removing,
        onclick: () => actions.removeHop(session.id, hop.id),
      }, removing ? "Draining…" : "Remove")),
    h("div", { class: "mono small muted" }, hop.address),
    h("div", { class: "small" }, `pos ${hop.position} · ${direction(hop.direction)} · `,
      h("span", { class: `state state-${hop.state}` }, hop.state),
      h("span", { class: "muted" }, hop.on_failure === "bypass" ? " · bypass on failure" : "")));
}

function row(session, hops, dir, ended, actions) {
  const forward = dir === "client_to_server";
  const arrow = () => h("div", { class: `cell conn ${forward ? "right" : "left"}`, "aria-hidden": "true" }, h("span", {}, forward ? "→" : "←"));
  const delivered = session.bytes[dir];
  const splits = session.splits.filter((split) => covers(split.direction, dir));
  const receiver = h("div", { class: "cell endpoint receiver" },
    h("div", { class: "small" }, "received ", live(`rx-${dir}`, bytes(delivered), { class: "figure", title: `${exact(delivered)} bytes` })),
    splits.map((split) => tap(session, split, dir, ended, actions)));
  const sender = h("div", { class: "cell endpoint sender small muted" }, "sends");
  return [
    h("div", { class: "cell label" }, h("span", { class: "long" }, direction(dir)),
      h("span", { class: "short", "aria-hidden": "true" }, forward ? "C→S" : "S→C")),
    forward ? sender : receiver,
    hops.map((hop) => [arrow(), leg(hop, dir)]),
    arrow(),
    forward ? receiver : sender,
  ];
}

function leg(hop, dir) {
  if (!covers(hop.direction, dir)) return h("div", { class: "cell leg pass", title: `${hop.id} does not mediate ${direction(dir)}` }, "passes");
  const figures = hop.bytes?.[dir] || {};
  return h("div", { class: `cell leg hop-${hop.state}`, dataset: { hop: hop.id, dir } },
    h("div", { class: "small" }, "at ", h("span", { class: "figure" }, exact(hop.spliced_at?.[dir]))),
    h("div", { class: "small" }, "in ", live(`in-${hop.id}-${dir}`, bytes(figures.in), { class: "figure" }),
      " · out ", live(`out-${hop.id}-${dir}`, bytes(figures.out), { class: "figure" })));
}

function tap(session, split, dir, ended, actions) {
  const figures = split.bytes?.[dir] || {};
  const key = `split:${split.id}`;
  const showButtons = !ended && split.state === "active" && (split.direction !== "both" || dir === "client_to_server");
  const canFailover = dir === "client_to_server" && split.on_slow === "block";
  return h("div", { class: `tap split-${split.state}`, dataset: { split: split.id, dir } },
    h("div", {}, h("span", { class: "muted" }, `⤷ ${split.id} `), h("span", { class: "mono" }, split.address),
      " ", h("span", { class: `state state-${split.state}` }, split.state),
      split.failover ? h("span", { class: "tag" }, "replica") : null),
    h("div", { class: "small" }, "from ", h("span", { class: "figure" }, exact(split.from_offset?.[dir])),
      " · sent ", live(`sent-${split.id}-${dir}`, bytes(figures.sent), { class: "figure" }),
      figures.dropped ? [" · dropped ", live(`drop-${split.id}-${dir}`, bytes(figures.dropped), { class: "figure warn" })] : null,
      figures.discarded ? [" · replies ", live(`disc-${split.id}-${dir}`, bytes(figures.discarded), { class: "figure" })] : null,
      split.reason ? h("span", { class: "warn" }, ` · ${split.reason}`) : null),
    showButtons ? h("div", { class: "tap-actions" },
      h("button", {
        type: "button", class: "small-button", "data-action": "remove-split", "data-focus": key, disabled: busy.has(key),
        "aria-label": `Remove split ${split.id} to ${split.address}`, onclick: () => actions.removeSplit(session.id, split.id),
      }, "Remove"),
      canFailover ? h("button", {
        type: "button", class: "small-button danger", "data-action": "failover", "data-focus": `fo:${split.id}`,
        disabled: busy.has(`fo:${split.id}`), "aria-label": `Fail over session ${session.id} to ${split.address}`,
        onclick: () => actions.failover(session.id, split.id),
      }, "Fail over") : null) : null);
}
