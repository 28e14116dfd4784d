// The events stream (Server-Sent Events), reconnecting with the current token.

import * as api from "./api.js";

/** Opens /api/v1/events; returns {close}. */
export function connectEvents({ onEvent, onStatus, onOpen }) {
  let source = null;
  let closed = false;
  let retry = null;

  const open = () => {
    if (closed) return;
    source = new EventSource(api.eventsURL());
    source.onopen = () => { onStatus("live"); onOpen(); };
    source.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      onEvent(event);
    };
    source.onerror = () => {
      if (source.readyState === EventSource.CONNECTING) { onStatus("reconnecting"); return; }
      // Closed for good (e.g. a 401, or the gateway is gone): check auth, then reopen.
      onStatus("offline");
      source.close();
      clearTimeout(retry);
      retry = setTimeout(async () => {
        try { await api.get("/api/v1/listeners"); } catch { /* the prompt or the next retry handles it */ }
        open();
      }, 2000);
    };
  };
  open();
  return {
    close() { closed = true; clearTimeout(retry); source?.close(); },
  };
}
