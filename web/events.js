// What each event of the stream does to the console's state.

import { direction, exact } from "./format.js";
import { changed, closeSession, log, putSession, state, touch } from "./state.js";
import { notify } from "./toasts.js";

/** "C→S 6, S→C 6" for an offsets object keyed by direction. */
export function offsets(object) {
  return Object.entries(object || {}).map(([dir, n]) => `${dir === "client_to_server" ? "C→S" : "S→C"} ${exact(n)}`).join(", ");
}

/**
 * The stream's message handler. `refreshSession(id)` re-reads one session (topology events
 * are applied at once, then confirmed from the API); `refreshStatic()` re-reads listeners
 * and mediators, whose session and use counts follow sessions and hops.
 */
export function eventHandler({ refreshSession, refreshStatic }) {
  const pendingRefresh = new Map();
  const refreshSoon = (id) => {
    touch(id);
    clearTimeout(pendingRefresh.get(id));
    pendingRefresh.set(id, setTimeout(() => { pendingRefresh.delete(id); refreshSession(id); }, 50));
  };
  let staticTimer = null;
  const refreshStaticSoon = () => {
    clearTimeout(staticTimer);
    staticTimer = setTimeout(refreshStatic, 300);
  };

  return function onEvent(event) {
    const sid = typeof event.session === "string" ? event.session : event.session?.id;
    if (/^(session|hop)\./.test(event.type || "")) refreshStaticSoon();
    switch (event.type) {
      case "listener.added":
        state.listeners.set(event.listener.id, event.listener);
        log(event.type, `${event.listener.id} ${event.listener.listen} → ${event.listener.upstream}`);
        break;
      case "listener.removed":
        state.listeners.delete(event.listener.id);
        if (state.filter.listener === event.listener.id) state.filter.listener = "";
        log(event.type, event.listener.id);
        break;
      case "session.opened":
        putSession(event.session);
        log(event.type, `${sid} ${event.session.client}`);
        break;
      case "session.closed":
        closeSession(event.session, event.reason);
        log(event.type, `${sid} ${event.reason}`, event.reason === "completed" || event.reason === "killed" ? "info" : "warn");
        break;
      case "hop.spliced": {
        const session = state.sessions.get(sid);
        if (session && !session.mediators.some((hop) => hop.id === event.hop.id)) {
          session.mediators = [...session.mediators, event.hop].sort((a, b) => a.position - b.position);
        }
        refreshSoon(sid);
        log(event.type, `${sid} ${event.hop.id} ${event.hop.mediator || event.hop.address} ${direction(event.hop.direction)} at ${offsets(event.hop.spliced_at)}`);
        break;
      }
      case "hop.removed": {
        const session = state.sessions.get(sid);
        if (session) session.mediators = session.mediators.filter((hop) => hop.id !== event.hop.id);
        refreshSoon(sid);
        log(event.type, `${sid} ${event.hop.id} at ${offsets(event.hop.removed_at)}`);
        break;
      }
      case "hop.failed":
        refreshSoon(sid);
        log(event.type, `${sid} ${event.hop.id}: ${event.reason} (${event.on_failure})`, "error");
        notify(`Hop ${event.hop.id} of ${sid} failed: ${event.reason} (${event.on_failure === "bypass" ? "bypassed" : "session closed"})`, "error");
        break;
      case "split.added":
      case "split.dropped": {
        const session = state.sessions.get(sid);
        if (session) session.splits = [...session.splits.filter((s) => s.id !== event.split.id), event.split];
        refreshSoon(sid);
        const dropped = event.type === "split.dropped";
        log(event.type, `${sid} ${event.split.id} → ${event.split.address}${dropped && event.split.reason ? `: ${event.split.reason}` : ""}`, dropped ? "warn" : "info");
        if (dropped) notify(`Split ${event.split.id} of ${sid} dropped${event.split.reason ? `: ${event.split.reason}` : ""}`, "warn");
        break;
      }
      case "split.removed": {
        const session = state.sessions.get(sid);
        if (session) session.splits = session.splits.filter((s) => s.id !== event.split.id);
        refreshSoon(sid);
        log(event.type, `${sid} ${event.split.id}`);
        break;
      }
      case "session.failed_over":
        refreshSoon(sid);
        log(event.type, `${sid} → ${event.server} (${event.split.id}, ${event.reason})`, "warn");
        break;
      default:
        log(event.type || "event", sid || "");
    }
    changed();
  }
}
