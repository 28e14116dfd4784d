// The console's entry point: loads the gateway's state, follows the events stream, polls
// the byte counters, and wires the forms and buttons to the API.

import * as api from "./api.js";
import { isCapturing, renderPeek, startCapture, stopCapture } from "./capture.js";
import { busy, renderDetail } from "./detail.js";
import { eventHandler, offsets } from "./events.js";
import { bytes } from "./format.js";
import { renderSessions } from "./sessions.js";
import { renderSidebar } from "./sidebar.js";
import { applySessionPoll, changed, closeSession, log, putSession, state, subscribe } from "./state.js";
import { connectEvents } from "./stream.js";
import { notify } from "./toasts.js";

const POLL_MS = 1500;
const LISTENER_POLL_MS = 5000;
const $ = (id) => document.getElementById(id);

// -- rendering -----------------------------------------------------------------------

const actions = {
  removeListener, filterListener, removeHop, removeSplit, failover, captureListener, rerender: changed,
};

subscribe((s) => {
  renderSidebar(s, actions);
  renderSessions(s, select);
  renderDetail(s, actions);
  renderCaptureButton(s);
  renderPeek(s.selected);
  renderMediatorOptions(s);
  renderListenerOptions(s);
  const status = $("stream-status");
  status.dataset.state = s.stream;
  status.textContent = { live: "live", connecting: "connecting", reconnecting: "reconnecting…", offline: "offline" }[s.stream] || s.stream;
  $("health").textContent = s.health ? `v${s.health.version}` : "";
});

function renderMediatorOptions(s) {
  const select = $("splice-mediator");
  const names = [...s.mediators.keys()].sort();
  const have = [...select.options].map((o) => o.value);
  if (have.join("\n") === names.join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(...names.map((name) => new Option(name, name)));
  if (names.includes(chosen)) select.value = chosen;
  select.disabled = names.length === 0;
}

function renderListenerOptions(s) {
  const select = $("listener-filter");
  const ids = [...s.listeners.values()].map((l) => [l.id, l.name ? `${l.name} (${l.id})` : l.id]);
  const signature = JSON.stringify(ids);
  if (select.dataset.signature !== signature) {
    select.dataset.signature = signature;
    select.replaceChildren(new Option("all", ""), ...ids.map(([id, label]) => new Option(label, id)));
  }
  select.value = s.filter.listener;
}

// -- selection (the URL hash is #/sessions/<id>) ------------------------------------

function select(id) {
  if (id) location.hash = `#/sessions/${id}`;
  else history.replaceState(null, "", location.pathname + location.search);
  route();
}

function route() {
  const match = /^#\/sessions\/(s\d+)$/.exec(location.hash);
  state.selected = match ? match[1] : null;
  if (state.selected && !state.sessions.has(state.selected) && !state.closed.has(state.selected)) {
    refreshSession(state.selected);
  }
  changed();
}

window.addEventListener("hashchange", route);

function filterListener(id) {
  state.filter.listener = id;
  changed();
}

// -- loading and polling -------------------------------------------------------------

async function loadStatic() {
  const [health, listeners, mediators, nodes] = await Promise.all([
    api.get("/api/v1/health"), api.get("/api/v1/listeners"), api.get("/api/v1/mediators"), api.get("/api/v1/nodes")]);
  state.health = health;
  state.listeners = new Map(listeners.listeners.map((l) => [l.id, l]));
  state.mediators = new Map(mediators.mediators.map((m) => [m.name, m]));
  state.nodes = nodes.nodes;
  state.nodesAt = Date.now();
  changed();
}

async function pollSessions() {
  const askedAt = performance.now();
  applySessionPoll(await api.allSessions(), askedAt);
}

function every(ms, task) {
  const run = async () => {
    try { await task(); } catch (error) { if (error.status !== 401) reportPollError(error); }
    setTimeout(run, ms);
  };
  setTimeout(run, ms);
}

let lastPollError = 0;
function reportPollError(error) {
  if (Date.now() - lastPollError > 15000) {
    lastPollError = Date.now();
    log("poll", error.detail || error.title, "error");
  }
}

async function refreshSession(id) {
  try {
    putSession(await api.get(`/api/v1/sessions/${id}`));
  } catch (error) {
    if (error.status !== 404) log("refresh", `${id}: ${error.detail || error.title}`, "error");
  }
}

// -- actions -------------------------------------------------------------------------

async function run(key, work, { success, form } = {}) {
  if (key) { busy.add(key); changed(); }
  const button = form?.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  try {
    const result = await work();
    if (success) notify(success(result), "ok");
    return result;
  } catch (error) {
    notify(error.detail ? `${error.title}: ${error.detail}` : error.title || String(error), "error");
    return undefined;
  } finally {
    if (key) busy.delete(key);
    if (button) button.disabled = false;
    changed();
  }
}

async function removeHop(sid, hop) {
  await run(`hop:${hop}`, async () => {
    const report = await api.del(`/api/v1/sessions/${sid}/mediators/${hop}`, { timeoutMs: 660000 });
    await refreshSession(sid);
    return report;
  }, { success: (r) => `Removed ${hop} at ${offsets(r.removed_at)}; drained ${Object.values(r.drained || {}).map(bytes).join(" / ") || "0 B"}` });
}

async function removeSplit(sid, split) {
  await run(`split:${split}`, async () => {
    await api.del(`/api/v1/sessions/${sid}/splits/${split}`);
    await refreshSession(sid);
  }, { success: () => `Removed split ${split}` });
}

async function failover(sid, split) {
  await run(`fo:${split}`, async () => putSession(await api.post(`/api/v1/sessions/${sid}/failover`, { split })),
    { success: () => `Session ${sid} failed over to ${split}` });
}

// -- captures --------------------------------------------------------------------------

function renderCaptureButton(s) {
  const button = $("capture-button");
  const open = s.selected && s.sessions.has(s.selected);
  const capturing = s.selected && isCapturing(`session:${s.selected}`);
  button.hidden = !open && !capturing;
  button.textContent = capturing ? "Stop capture" : "Capture";
  button.setAttribute("aria-pressed", capturing ? "true" : "false");
}

async function capture(key, path, filename, options) {
  if (isCapturing(key)) { stopCapture(key); return; }
  await run(null, () => startCapture(key, path, filename, { changed, ...options }),
    { success: (saved) => `Saved ${saved.filename} (${bytes(saved.bytes)})` });
}

$("capture-button").addEventListener("click", () => {
  const id = state.selected;
  const session = state.sessions.get(id);
  const clientPort = Number((session?.client || "").split(":").pop());
  capture(`session:${id}`, `/api/v1/sessions/${id}/capture`, `splicegate-${id}.pcapng`, { session: id, clientPort });
});

function captureListener(id) {
  capture(`listener:${id}`, `/api/v1/listeners/${id}/capture`, `splicegate-${id}.pcapng`, {});
}

let killArmed = null;
$("kill-button").addEventListener("click", async () => {
  const id = state.selected;
  const button = $("kill-button");
  if (killArmed !== id) {
    killArmed = id;
    button.textContent = "Confirm kill";
    button.classList.add("armed");
    setTimeout(() => { if (killArmed === id) disarmKill(); }, 4000);
    return;
  }
  disarmKill();
  await run(`kill:${id}`, async () => {
    await api.del(`/api/v1/sessions/${id}`);
    if (state.sessions.has(id)) closeSession(state.sessions.get(id), "killed");
  }, { success: () => `Killed session ${id}` });
});

function disarmKill() {
  killArmed = null;
  $("kill-button").textContent = "Kill session";
  $("kill-button").classList.remove("armed");
}

async function removeListener(id, closeSessions) {
  await run(`listener:${id}`, async () => {
    await api.del(`/api/v1/listeners/${id}${closeSessions ? "?close_sessions=true" : ""}`);
    state.listeners.delete(id);
  }, { success: () => `Removed listener ${id}${closeSessions ? " and closed its sessions" : ""}` });
}

$("splice-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const sid = state.selected;
  const body = { mediator: $("splice-mediator").value, direction: $("splice-direction").value, on_failure: $("splice-on-failure").value };
  if (!body.mediator) { notify("Register a mediator first (none to splice).", "error"); return; }
  const position = $("splice-position").value.trim();
  if (position !== "") body.position = Number(position);
  await run(null, async () => {
    const hop = await api.post(`/api/v1/sessions/${sid}/mediators`, body);
    await refreshSession(sid);
    return hop;
  }, { form: event.target, success: (hop) => `Spliced ${hop.mediator} as ${hop.id} at ${offsets(hop.spliced_at)}` });
});

$("split-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const sid = state.selected;
  const body = { address: $("split-address").value.trim(), direction: $("split-direction").value, on_slow: $("split-on-slow").value };
  if ($("split-failover").checked) body.failover = true;
  await run(null, async () => {
    const split = await api.post(`/api/v1/sessions/${sid}/splits`, body);
    await refreshSession(sid);
    return split;
  }, { form: event.target, success: (split) => `Split ${split.id} to ${split.address} from ${offsets(split.from_offset)}` });
});

$("listener-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { listen: $("listener-listen").value.trim(), upstream: $("listener-upstream").value.trim() };
  const name = $("listener-name").value.trim();
  if (name) body.name = name;
  const created = await run(null, async () => {
    const listener = await api.post("/api/v1/listeners", body);
    state.listeners.set(listener.id, listener);
    return listener;
  }, { form: event.target, success: (l) => `Listener ${l.id} on ${l.listen} → ${l.upstream}` });
  if (created) { $("listener-name").value = ""; $("listener-upstream").value = ""; }
});

$("session-filter").addEventListener("input", (event) => { state.filter.text = event.target.value; changed(); });
$("listener-filter").addEventListener("change", (event) => { state.filter.listener = event.target.value; changed(); });
$("detail-close").addEventListener("click", () => select(null));

document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, select, textarea");
  if (event.key === "/" && !typing) { event.preventDefault(); $("session-filter").focus(); }
  if (event.key === "Escape" && !typing && !$("token-dialog").open && state.selected) select(null);
});

// -- the token prompt ----------------------------------------------------------------

api.onTokenNeeded((reason) => new Promise((resolve, reject) => {
  const dialog = $("token-dialog");
  const input = $("token-input");
  $("token-reason").textContent = reason;
  input.value = "";
  const done = (value) => {
    dialog.removeEventListener("close", onClose);
    $("token-cancel").removeEventListener("click", onCancel);
    if (dialog.open) dialog.close();
    if (value) resolve(value); else reject(new api.ApiError(401, "Unauthorized", "no admin token given"));
  };
  const onClose = () => done(dialog.returnValue === "ok" ? input.value.trim() : "");
  const onCancel = () => done("");
  dialog.addEventListener("close", onClose);
  $("token-cancel").addEventListener("click", onCancel);
  dialog.showModal();
  input.focus();
}));

$("token-button").addEventListener("click", async () => {
  try {
    await api.askForToken(api.token() ? "Replace the admin token for this tab." : "Enter the admin token for this gateway.", { explicit: true });
    await start();
  } catch { /* cancelled */ }
});

// -- start ---------------------------------------------------------------------------

let events = null;

async function start() {
  try {
    await loadStatic();
    await pollSessions();
  } catch (error) {
    notify(error.detail ? `${error.title}: ${error.detail}` : error.title, "error");
    if (error.status === 401) { state.stream = "offline"; changed(); return; }
  }
  events?.close();
  events = connectEvents({
    onEvent: eventHandler({ refreshSession, refreshStatic: () => loadStatic().catch(() => {}) }),
    onStatus: (status) => { state.stream = status; changed(); },
    onOpen: () => { loadStatic().catch(() => {}); pollSessions().catch(() => {}); },
  });
}

route();
start();
every(POLL_MS, pollSessions);
every(LISTENER_POLL_MS, loadStatic);
setInterval(changed, 1000); // ages tick
