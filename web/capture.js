// Live captures from the console. A capture streams the gateway's pcapng into memory and is
// saved as a download when it ends (the session or listener went away) or when the operator
// stops it (cut at the last whole block). A session's capture also feeds the peek panel: the
// last bytes of each direction on the client leg, as text and hex.

import * as api from "./api.js";
import { h, patch } from "./dom.js";

const PEEK_BYTES = 256;

/** Running captures by key (`session:s1`, `listener:l1`). */
const running = new Map();
/** The last bytes seen per session: {c2s, s2c} as Uint8Arrays. */
const peeks = new Map();

/** Whether a capture runs under `key`. */
export function isCapturing(key) {
  return running.has(key);
}

/**
 * Starts capturing `path` under `key`; `changed()` is called as the capture starts, peeks
 * and ends. `clientPort` (a session capture) routes client-leg payloads to the peek.
 */
export async function startCapture(key, path, filename, { changed, session, clientPort }) {
  const controller = new AbortController();
  const capture = { controller, chunks: [], parser: new PcapngParser(), filename, stopped: false };
  running.set(key, capture);
  changed();
  let response;
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      const headers = { Accept: "application/x-pcapng" };
      if (api.token()) headers.Authorization = `Bearer ${api.token()}`;
      response = await fetch(path, { headers, signal: controller.signal, cache: "no-store" });
      if (response.status !== 401) break;
      await api.askForToken("This gateway needs an admin token.");
    }
    if (!response.ok) {
      let body = null;
      try { body = await response.json(); } catch { /* not JSON */ }
      throw new api.ApiError(response.status, body?.title || response.statusText, body?.detail || "");
    }
    const reader = response.body.getReader();
    let peekQueued = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      capture.chunks.push(value);
      for (const packet of capture.parser.feed(value)) {
        if (!session || packet.interfaceName !== "client" || packet.payload.length === 0) continue;
        const dir = packet.sourcePort === clientPort ? "c2s" : "s2c";
        const peek = peeks.get(session) || { c2s: new Uint8Array(0), s2c: new Uint8Array(0) };
        peek[dir] = tail(peek[dir], packet.payload);
        peeks.set(session, peek);
        if (!peekQueued) { peekQueued = true; requestAnimationFrame(() => { peekQueued = false; changed(); }); }
      }
    }
  } catch (error) {
    if (!capture.stopped) {
      running.delete(key);
      changed();
      throw error.name === "AbortError" ? new api.ApiError(0, "Capture stopped", "") : error;
    }
  }
  running.delete(key);
  save(capture);
  changed();
  return { filename, bytes: capture.parser.complete };
}

/** Stops a running capture; what came so far is saved. */
export function stopCapture(key) {
  const capture = running.get(key);
  if (!capture) return;
  capture.stopped = true;
  capture.controller.abort();
}

/** Renders the peek panel for the selected session. */
export function renderPeek(sessionId) {
  const panel = document.getElementById("peek");
  const peek = sessionId ? peeks.get(sessionId) : null;
  panel.hidden = !peek;
  if (!peek) return;
  patch(panel, h("div", { class: "peek-body" },
    h("h3", {}, "Peek ", h("span", { class: "muted small" }, `last ${PEEK_BYTES} bytes each way, client leg`)),
    direction("c2s", "client → server", peek.c2s),
    direction("s2c", "server → client", peek.s2c)));
}

function direction(key, label, bytes) {
  return h("div", { class: "peek-dir" },
    h("div", { class: "small muted" }, `${label} · ${bytes.length} B`),
    h("pre", { class: "peek-text", id: `peek-${key}-text` }, [...bytes].map((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a ? String.fromCharCode(b) : "·").join("")),
    h("pre", { class: "peek-hex", id: `peek-${key}-hex` }, hex(bytes)));
}

function hex(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    lines.push([...bytes.subarray(i, i + 16)].map((b) => b.toString(16).padStart(2, "0")).join(" "));
  }
  return lines.join("\n");
}

function tail(old, more) {
  const joined = new Uint8Array(Math.min(PEEK_BYTES, old.length + more.length));
  const fromMore = Math.min(more.length, joined.length);
  const fromOld = joined.length - fromMore;
  joined.set(old.subarray(old.length - fromOld), 0);
  joined.set(more.subarray(more.length - fromMore), fromOld);
  return joined;
}

function save(capture) {
  // Only whole blocks: a stop can cut the stream anywhere.
  const blob = new Blob(capture.chunks, { type: "application/x-pcapng" }).slice(0, capture.parser.complete, "application/x-pcapng");
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: capture.filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Reads pcapng blocks as they arrive: interface names and the TCP payload of each packet. */
class PcapngParser {
  constructor() {
    this.pending = new Uint8Array(0);
    this.interfaces = [];
    /** Bytes of whole blocks read so far. */
    this.complete = 0;
  }

  feed(chunk) {
    const joined = new Uint8Array(this.pending.length + chunk.length);
    joined.set(this.pending, 0);
    joined.set(chunk, this.pending.length);
    const view = new DataView(joined.buffer);
    const packets = [];
    let offset = 0;
    while (offset + 12 <= joined.length) {
      const type = view.getUint32(offset, true);
      const length = view.getUint32(offset + 4, true);
      if (length < 12 || offset + length > joined.length) break;
      if (type === 1) this.interfaces.push(this.name(joined, view, offset + 16, offset + length - 4));
      if (type === 6) {
        const captured = view.getUint32(offset + 20, true);
        const packet = tcp(joined.subarray(offset + 28, offset + 28 + captured));
        if (packet) packets.push({ interfaceName: this.interfaces[view.getUint32(offset + 8, true)], ...packet });
      }
      offset += length;
    }
    this.complete += offset;
    this.pending = joined.slice(offset);
    return packets;
  }

  name(bytes, view, start, end) {
    for (let at = start; at + 4 <= end;) {
      const code = view.getUint16(at, true);
      const length = view.getUint16(at + 2, true);
      if (code === 0) break;
      if (code === 2) return new TextDecoder().decode(bytes.subarray(at + 4, at + 4 + length));
      at += 4 + Math.ceil(length / 4) * 4;
    }
    return "";
  }
}

/** The source port and payload of a raw IPv4/IPv6 TCP packet, or null. */
function tcp(ip) {
  if (ip.length < 20) return null;
  const version = ip[0] >> 4;
  const header = version === 4 ? (ip[0] & 0x0f) * 4 : version === 6 ? 40 : -1;
  if (header < 0 || ip.length < header + 20) return null;
  const segment = ip.subarray(header);
  return { sourcePort: (segment[0] << 8) | segment[1], payload: segment.subarray((segment[12] >> 4) * 4) };
}
