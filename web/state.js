// What the console knows about the gateway: merged from full polls and from events.
//
// Polls are authoritative for numbers; events are faster for appearance, disappearance
// and topology. A poll that was asked before an event must not undo it, so each session
// remembers when an event last touched it and closed sessions stay closed.

import { DIRECTIONS, idNumber } from "./format.js";

export const state = {
  health: null,
  listeners: new Map(),
  mediators: new Map(),
  /** The cluster's live nodes (`GET /api/v1/nodes`), and when they were read. */
  nodes: [],
  nodesAt: 0,
  sessions: new Map(),
  /** Sessions that ended, id → {session, reason, at}, kept for the detail view. */
  closed: new Map(),
  /** Session id → {c2s, s2c} bytes per second from the last two polls. */
  rates: new Map(),
  /** Session id → last poll sample {t, c2s, s2c}. */
  samples: new Map(),
  /** Session id → performance.now() of the last event touching it. */
  touched: new Map(),
  selected: null,
  filter: { text: "", listener: "" },
  stream: "connecting",
  log: [],
};

const listeners = new Set();
let scheduled = false;

/** Calls `render` (batched to one animation frame) whenever the state changes. */
export function subscribe(render) {
  listeners.add(render);
}

/** Marks the state changed. */
export function changed() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    for (const render of listeners) render(state);
  });
}

/** Applies a full session list fetched starting at `askedAt` (performance.now()). */
export function applySessionPoll(sessions, askedAt) {
  const now = performance.now();
  const seen = new Set();
  for (const session of sessions) {
    if (state.closed.has(session.id)) continue;
    seen.add(session.id);
    sample(session, now);
    if ((state.touched.get(session.id) ?? -Infinity) > askedAt) {
      // An event arrived after this poll was asked: keep its topology, take the numbers.
      const known = state.sessions.get(session.id);
      if (known) { known.bytes = session.bytes; continue; }
    }
    state.sessions.set(session.id, session);
  }
  for (const id of [...state.sessions.keys()]) {
    if (!seen.has(id) && (state.touched.get(id) ?? -Infinity) <= askedAt) forget(id);
  }
  changed();
}

function sample(session, now) {
  const previous = state.samples.get(session.id);
  const current = { t: now, c2s: session.bytes.client_to_server, s2c: session.bytes.server_to_client };
  if (previous && current.t - previous.t > 200) {
    const seconds = (current.t - previous.t) / 1000;
    state.rates.set(session.id, {
      c2s: Math.max(0, current.c2s - previous.c2s) / seconds,
      s2c: Math.max(0, current.s2c - previous.s2c) / seconds,
    });
  }
  state.samples.set(session.id, current);
}

function forget(id) {
  state.sessions.delete(id);
  state.rates.delete(id);
  state.samples.delete(id);
  state.touched.delete(id);
}

/** Records that an event touched session `id` now. */
export function touch(id) {
  state.touched.set(id, performance.now());
}

/** A session ended (event or observed gone). */
export function closeSession(session, reason) {
  const known = state.sessions.get(session.id) || session;
  state.closed.set(session.id, { session: { ...known, ...session }, reason, at: new Date() });
  while (state.closed.size > 500) state.closed.delete(state.closed.keys().next().value);
  forget(session.id);
  changed();
}

/** Replaces one session's object (from an event or a GET). */
export function putSession(session) {
  if (state.closed.has(session.id)) return;
  state.sessions.set(session.id, session);
  touch(session.id);
  changed();
}

/** Sessions passing the filter, newest first. */
export function visibleSessions() {
  const text = state.filter.text.trim().toLowerCase();
  const terms = text ? text.split(/\s+/) : [];
  return [...state.sessions.values()]
    .filter((s) => !state.filter.listener || s.listener === state.filter.listener)
    .filter((s) => terms.every((term) => haystack(s).includes(term)))
    .sort((a, b) => idNumber(b.id) - idNumber(a.id));
}

function haystack(session) {
  const listener = state.listeners.get(session.listener);
  return [session.id, session.node, session.listener, listener?.name, session.client, session.server, session.state,
    ...session.mediators.flatMap((hop) => [hop.id, hop.mediator, hop.address]),
    ...session.splits.flatMap((split) => [split.id, split.address])]
    .filter(Boolean).join(" ").toLowerCase();
}

/** Appends a line to the event log shown in the sidebar. */
export function log(kind, text, level = "info") {
  state.log.unshift({ at: new Date(), kind, text, level, key: `${Date.now()}-${Math.random()}` });
  state.log.length = Math.min(state.log.length, 60);
  changed();
}

export { DIRECTIONS };
